/**
 * The live relay directory a client keeps: verified relay descriptors heard on the gossipsub topic
 * `p2pchat/relays/2` (relays announce their signed descriptor at a steady interval), seeded from the
 * DHT provider lookup on a cold start. Expired descriptors are dropped; the time each relay was last
 * heard from is kept so that path selection can prefer relays recently seen alive.
 */
import { randomInt } from 'node:crypto'
import { logger } from '@libp2p/logger'
import { bytesEqual, decodeRecord, KIND_RELAY, relayKey, verifyRecord } from '../directory/record.ts'
import type { SignedRecord, OnionKeyEntry } from '../directory/record.ts'

export const RELAY_TOPIC = 'p2pchat/relays/2'
export const DEFAULT_ANNOUNCE_INTERVAL_MS = 30_000
/** A relay heard from within this many announce intervals counts as recently seen alive. */
const FRESH_INTERVALS = 3

export interface KnownRelay {
  record: SignedRecord
  lastSeen: number
}

export class NotEnoughRelaysError extends Error {
  readonly wanted: number
  readonly available: number
  constructor (wanted: number, available: number) {
    super(`not enough relays: a path needs ${wanted} distinct relays, ${available} known (wait for relay announcements, or start relays with --relay)`)
    this.name = 'NotEnoughRelaysError'
    this.wanted = wanted
    this.available = available
  }
}

export class RelayDirectory {
  private readonly relays = new Map<string, KnownRelay>()
  private readonly log = logger('p2pchat:relays')
  private readonly now: () => number
  private readonly announceIntervalMs: number
  readonly rejected: Record<string, number> = {}

  constructor (init: { now?: () => number, announceIntervalMs?: number } = {}) {
    this.now = init.now ?? Date.now
    this.announceIntervalMs = init.announceIntervalMs ?? DEFAULT_ANNOUNCE_INTERVAL_MS
  }

  /** Adds a descriptor heard on gossip or fetched from the DHT, after verifying it. Never throws. */
  add (bytes: Uint8Array, seenAt = this.now()): SignedRecord | undefined {
    return this.check(bytes, seenAt).record
  }

  /**
   * The gossip validator's answer for a descriptor (after `add`): accept one that verifies; ignore a
   * stale copy (an older sequence than the one held: outdated, not forged, so the honest peer that
   * relayed it late is not penalised, but it goes no further); reject anything that does not verify.
   */
  gossipVerdict (bytes: Uint8Array, seenAt = this.now()): 'accept' | 'ignore' | 'reject' {
    return this.gossipCheck(bytes, seenAt).verdict
  }

  /** `gossipVerdict` with the accepted descriptor (its relay was just heard from). */
  gossipCheck (bytes: Uint8Array, seenAt = this.now()): { verdict: 'accept' | 'ignore' | 'reject', record?: SignedRecord } {
    const { record, fault } = this.check(bytes, seenAt)
    return record != null ? { verdict: 'accept', record } : { verdict: fault === 'stale' ? 'ignore' : 'reject' }
  }

  private check (bytes: Uint8Array, seenAt: number): { record?: SignedRecord, fault?: string } {
    try {
      const claimed = decodeRecord(bytes)
      if (claimed.kind !== KIND_RELAY) throw new Error('kind')
      const held = this.relays.get(claimed.peerId)
      // A relay re-announces the same signed bytes every interval: those were verified when first
      // heard, so only their expiry can have changed. Skips an Ed25519 verification per announcement.
      if (held != null && held.record.expiry > this.now() && bytesEqual(held.record.bytes, bytes)) {
        held.lastSeen = seenAt
        return { record: held.record }
      }
      const rec = verifyRecord(relayKey(claimed.peerId), bytes, this.now())
      // an older descriptor than the one held (a stale copy gossiped again) is refused: it goes no
      // further on gossip, and it does not make its relay look alive
      if (held != null && held.record.expiry > this.now() && rec.sequence < held.record.sequence) throw new Error('stale')
      this.relays.set(rec.peerId, { record: rec, lastSeen: seenAt })
      return { record: rec }
    } catch (err) {
      const why = (err as { fault?: string }).fault ?? (err as Error).message
      this.rejected[why] = (this.rejected[why] ?? 0) + 1
      this.log('refused a relay descriptor: %s', why)
      return { fault: why }
    }
  }

  /** Live relays (expired ones are dropped here). */
  list (): KnownRelay[] {
    const now = this.now()
    for (const [id, r] of this.relays) if (r.record.expiry <= now) this.relays.delete(id)
    return [...this.relays.values()]
  }

  get size (): number { return this.list().length }

  /** Is a live descriptor of this relay (peer id) held? */
  has (peerId: string): boolean {
    const r = this.relays.get(peerId)
    return r != null && r.record.expiry > this.now()
  }

  /**
   * Chooses `n` distinct relays at random, excluding `exclude` (sender, recipient, relays that just
   * failed). Relays heard from recently are preferred; older ones fill in only when too few are fresh.
   */
  choosePath (n: number, exclude: Iterable<string> = []): KnownRelay[] {
    const skip = new Set(exclude)
    const now = this.now()
    const usable = this.list().filter(r => !skip.has(r.record.peerId) && onionKeyFor(r.record, now) != null)
    const fresh = shuffle(usable.filter(r => now - r.lastSeen <= FRESH_INTERVALS * this.announceIntervalMs))
    const stale = shuffle(usable.filter(r => now - r.lastSeen > FRESH_INTERVALS * this.announceIntervalMs))
    const chosen = [...fresh, ...stale].slice(0, n)
    if (chosen.length < n) throw new NotEnoughRelaysError(n, usable.length)
    return shuffle(chosen)
  }
}

/** The relay onion key valid now: the entry whose [notBefore, notAfter) holds `now`, else the newest already started. */
export function onionKeyFor (record: SignedRecord, now = Date.now()): OnionKeyEntry | undefined {
  const started = record.onionKeys.filter(k => k.notBefore <= now)
  return started.find(k => now < k.notAfter) ?? started.sort((a, b) => b.notBefore - a.notBefore)[0]
}

function shuffle<T> (items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = randomInt(i + 1)
    ;[items[i], items[j]] = [items[j], items[i]]
  }
  return items
}
