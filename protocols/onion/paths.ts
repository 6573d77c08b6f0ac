/**
 * Paths of protocol version 2 (PROTOCOL-V2.md section 3), chosen from the live relay directory:
 *
 *   forward (a request, a deposit):  [SUBMIT to the entry relay] -> mix -> mix -> final relay (SERVICE)
 *   reply block made by a user:       mix -> mix -> entry relay (CLIENT) -> the user (REPLY)
 *
 * Mixes are distinct, and never the entry relay or the final relay. With too few relays a path gets
 * fewer mixes and the caller is told (`short`), so it can warn the user; it is never silent. Guards,
 * subnet and family rules are the paths issue's (issue 12); this module is where they go.
 */
import { randomInt } from 'node:crypto'
import type { KnownRelay } from './relay-directory.ts'
import { onionKeyFor } from './relay-directory.ts'

/** Mixes between the entry relay and the final relay, and on a reply block before the entry relay. */
export const DEFAULT_MIXES = 2

export interface PathRelay {
  /** Transport key (32 bytes): the Sphinx address. */
  address: Uint8Array
  /** The relay's onion key valid now. */
  onionKey: Uint8Array
  peerId: string
}

/** Fresh relays needed before stale ones are left out of paths altogether. */
export const MIN_FRESH_RELAYS = 4

/**
 * The relays usable now (a live descriptor with an onion key valid now), recently heard ones first.
 * With `freshWithinMs`, relays not heard from for longer are left out, as long as at least
 * MIN_FRESH_RELAYS others were (a dead relay stops announcing; a new client has heard few yet).
 */
export function pathRelays (relays: KnownRelay[], now = Date.now(), freshWithinMs?: number): PathRelay[] {
  if (freshWithinMs != null) {
    const fresh = relays.filter(r => now - r.lastSeen <= freshWithinMs)
    if (fresh.length >= MIN_FRESH_RELAYS) relays = fresh
  }
  const out: Array<PathRelay & { lastSeen: number }> = []
  for (const r of relays) {
    const key = onionKeyFor(r.record, now)
    if (key == null || r.record.identityKey.length !== 32) continue
    out.push({ address: r.record.identityKey, onionKey: key.key, peerId: r.record.peerId, lastSeen: r.lastSeen })
  }
  return out.sort((a, b) => b.lastSeen - a.lastSeen).map(({ lastSeen: _l, ...r }) => r)
}

export interface ChosenMixes {
  mixes: PathRelay[]
  /** Fewer mixes than asked for: too few relays. */
  short: boolean
}

/** Up to `count` distinct random mixes from `candidates`, none of them in `exclude` (peer ids). */
export function chooseMixes (candidates: PathRelay[], exclude: Iterable<string>, count = DEFAULT_MIXES): ChosenMixes {
  const skip = new Set(exclude)
  const pool = candidates.filter(r => !skip.has(r.peerId))
  for (let i = pool.length - 1; i > 0; i--) {
    const j = randomInt(i + 1)
    ;[pool[i], pool[j]] = [pool[j], pool[i]]
  }
  const mixes = pool.slice(0, count)
  return { mixes, short: mixes.length < count }
}

/** A random relay from `candidates` outside `exclude`, or undefined. */
export function chooseRelay (candidates: PathRelay[], exclude: Iterable<string> = []): PathRelay | undefined {
  const skip = new Set(exclude)
  const pool = candidates.filter(r => !skip.has(r.peerId))
  return pool.length === 0 ? undefined : pool[randomInt(pool.length)]
}
