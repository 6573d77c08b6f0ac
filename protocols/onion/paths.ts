/**
 * Paths of protocol version 2 (PROTOCOL-V2.md section 3; SPEC.md "Paths"), chosen from the live relay
 * directory:
 *
 *   forward (a request, a deposit):  [SUBMIT to the user's guard] -> mix -> mix -> final relay (SERVICE)
 *   reply block made by a user:       mix -> mix -> the user's guard (CLIENT) -> the user (REPLY)
 *
 * Rules (Tor's path-spec, adapted; SPEC.md "Path rules"):
 * - **Diversity.** At most one relay per network group on a path: an IPv4 /16 or an IPv6 /32 of the
 *   addresses in its descriptor (the addresses it is dialled at, never the source address of a
 *   connection), and at most one per declared family. The guard and the final relay count: a mix never
 *   shares a /16 or a family with them. A relay with no IP address in its descriptor (DNS names only)
 *   is in the one group `net:?`, so at most one such relay sits on a path.
 * - **Sampling by group.** A relay is chosen by drawing one of the eligible /16s (or /32s) uniformly,
 *   then a relay in it: an operator with a hundred relays in one /16 weighs what one relay does. For
 *   a position only one role may take (a guard, an exit: `drawForPosition`), each /16's weight is
 *   split over the roles its relays have, so a /16 of many relays is not more often eligible.
 * - **Disjoint paths.** Nothing in `exclude` (the guard, the final relay) is chosen, nor anything in
 *   `avoid` (a forward path's reply-block mixes) while others are left, and no chosen relay shares a
 *   group with either: forward and reply paths share no relay and no group but the guard.
 * - **Relaxing.** With too few groups, the group rule is dropped for the missing hops, then a forward
 *   path may reuse its reply block's mixes (`relaxed`); only with too few relays does the path get fewer
 *   mixes (`short`). The caller turns either into a visible warning event, never silently.
 */
import { randomInt } from 'node:crypto'
import { familyOfCached } from '../directory/family.ts'
import { subnetsOfAddrs } from '../directory/subnet.ts'
import type { KnownRelay } from './relay-directory.ts'
import { onionKeyFor } from './relay-directory.ts'

/** Mixes between the entry relay and the final relay, and on a reply block before the entry relay. */
export const DEFAULT_MIXES = 2
export { subnetOfAddr, subnetsOfAddrs, UNKNOWN_SUBNET } from '../directory/subnet.ts'

export interface PathRelay {
  /** Transport key (32 bytes): the Sphinx address. */
  address: Uint8Array
  /** The relay's onion key valid now. */
  onionKey: Uint8Array
  peerId: string
  /**
   * The network groups of the relay's descriptor addresses (`ip4:a.b`, `ip6:xxxx:xxxx`, or `net:?`),
   * the first one its sampling group. Absent: the relay is its own group (tests of the old shape).
   */
  subnets?: string[]
  /** Its declared family (operator key, hex), when it has one. */
  family?: string
}

/** Fresh relays needed before stale ones are left out of paths altogether. */
export const MIN_FRESH_RELAYS = 4

/** Everything a relay occupies on a path: its network groups and its family. */
export function groupsOf (r: PathRelay): string[] {
  const groups = r.subnets != null && r.subnets.length > 0 ? [...r.subnets] : [`peer:${r.peerId}`]
  if (r.family != null) groups.push(`family:${r.family}`)
  return groups
}

/** The group a relay is sampled under (its first address's /16). */
function samplingGroup (r: PathRelay): string {
  return r.subnets?.[0] ?? `peer:${r.peerId}`
}

/** Do two relays share a /16 (/32) or a family? */
export function sameGroup (a: PathRelay, b: PathRelay): boolean {
  const ga = new Set(groupsOf(a))
  return groupsOf(b).some(g => ga.has(g))
}

/**
 * The relays usable now (a live descriptor with an onion key valid now), recently heard ones first,
 * each with the network groups of its descriptor addresses and its verified family (family.ts, the
 * verdict cached per descriptor: `familyOfCached`); a relay whose family declaration does not verify is
 * left out.
 * With `verifiedGroup` (admission.ts `admitRelays`), a relay's first group is its verified /16.
 * With `freshWithinMs`, relays not heard from for longer are left out, as long as at least
 * MIN_FRESH_RELAYS others were (a dead relay stops announcing; a new client has heard few yet).
 */
export function pathRelays (relays: KnownRelay[], now = Date.now(), freshWithinMs?: number, verifiedGroup?: Map<string, string>): PathRelay[] {
  if (freshWithinMs != null) {
    const fresh = relays.filter(r => now - r.lastSeen <= freshWithinMs)
    if (fresh.length >= MIN_FRESH_RELAYS) relays = fresh
  }
  const out: Array<PathRelay & { lastSeen: number }> = []
  for (const r of relays) {
    const key = onionKeyFor(r.record, now)
    if (key == null || r.record.identityKey.length !== 32) continue
    let family: string | undefined
    try {
      family = familyOfCached(r.record) // verified once per descriptor, not at every call
    } catch {
      continue // a family declaration that does not verify: the relay lies about its operator; left out
    }
    // an admitted relay (admission.ts) is sampled under the /16 other relays reached it at; the other
    // groups its descriptor claims still count against it (they only add constraints)
    const claimed = subnetsOfAddrs(r.record.addrs)
    const verified = verifiedGroup?.get(r.record.peerId)
    const subnets = verified == null ? claimed : [verified, ...claimed.filter(g => g !== verified)]
    out.push({ address: r.record.identityKey, onionKey: key.key, peerId: r.record.peerId, subnets, family, lastSeen: r.lastSeen })
  }
  return out.sort((a, b) => b.lastSeen - a.lastSeen).map(({ lastSeen: _l, ...r }) => r)
}

export interface ChosenMixes {
  mixes: PathRelay[]
  /** Fewer mixes than asked for: too few relays. */
  short: boolean
  /** Some mix shares a /16 or a family with another relay of the path: too few groups. */
  relaxed: boolean
}

/** `pool` by sampling group (`samplingGroup`: a relay's first /16), in first-seen order. */
function bySamplingGroup<T extends PathRelay> (pool: T[]): Map<string, T[]> {
  const byGroup = new Map<string, T[]>()
  for (const r of pool) {
    const g = samplingGroup(r)
    const list = byGroup.get(g)
    if (list == null) byGroup.set(g, [r]); else list.push(r)
  }
  return byGroup
}

/**
 * Draws a relay from `pool` by group: a group uniformly among the pool's sampling groups, then a relay
 * uniformly within it. Undefined for an empty pool.
 */
export function drawByGroup<T extends PathRelay> (pool: T[]): T | undefined {
  if (pool.length === 0) return undefined
  const groups = [...bySamplingGroup(pool).values()]
  const members = groups[randomInt(groups.length)]
  return members[randomInt(members.length)]
}

/**
 * Draws a relay for a position that only relays of one role may take (a guard: the entry role; a
 * directory exit: the exit role; node/roles.ts), by group, with Tor's position weighting (dir-spec
 * "bandwidth weights": a relay that may serve two positions has its weight split between them), the
 * group instead of bandwidth being the unit: every group of `pool` weighs one in all, split evenly
 * over the roles its relays have. A group whose relays all `fit` weighs one for the position, a group
 * with relays of both roles one half, a group with none nothing; then a relay that fits (and is
 * `allowed`) is drawn uniformly within the group drawn. Undefined when no relay qualifies.
 *
 * Why not `drawByGroup` over the relays that fit: roles follow from peer ids, one in two, so a /16
 * with one relay (an honest operator) can take the position one time in two while a /16 with ten
 * relays (a large operator) almost always can: the large operator's share of the position's groups
 * would be about twice its share of all groups (bench/path-security.ts measures both). With the split,
 * a group of n relays of random roles weighs 2^-n + (1 - 2^(1-n)) / 2 = 1/2 in expectation whatever
 * n is: adding relays to a /16 gains nothing. An operator who grinds peer ids so that all its relays
 * have the role (two tries per relay) weighs one per /16: at most twice its share (SPEC.md).
 *
 * `pool` must hold the relays of both roles (the weights come from them); `allowed` only narrows
 * which relay of a group may be drawn (the user's mailbox relays, its own entry relay), not the
 * group's weight.
 */
export function drawForPosition<T extends PathRelay> (pool: T[], fits: (r: T) => boolean, allowed: (r: T) => boolean = () => true): T | undefined {
  const byGroup = bySamplingGroup(pool)
  // weights in halves: 2 for a group whose relays all fit, 1 for a group of both roles
  const weighted: Array<{ weight: number, members: T[] }> = []
  let total = 0
  for (const members of byGroup.values()) {
    const fitting = members.filter(fits)
    const usable = fitting.filter(allowed)
    if (usable.length === 0) continue
    const weight = fitting.length === members.length ? 2 : 1
    weighted.push({ weight, members: usable })
    total += weight
  }
  if (total === 0) return undefined
  let x = randomInt(total)
  for (const { weight, members } of weighted) {
    if (x < weight) return members[randomInt(members.length)]
    x -= weight
  }
  return undefined // not reached: x < total
}

/**
 * Up to `count` distinct mixes from `candidates`, by group (`drawByGroup`), none of them in `exclude`
 * and, while the candidates allow it, none sharing a /16 or a family with each other or with a relay
 * in `exclude` or `avoid` (peer ids are looked up in `candidates`; pass a PathRelay for a relay that
 * may not be there, such as a recipient's mailbox relay). `avoid` (a request's reply-block mixes) is
 * given up before a hop is: first the group rule is dropped, then an avoided relay is taken, and only
 * then is the path short; each of the first two sets `relaxed`.
 */
export function chooseMixes (candidates: PathRelay[], exclude: Iterable<string | PathRelay>, count = DEFAULT_MIXES, avoid: Iterable<string | PathRelay> = []): ChosenMixes {
  const { skip, taken } = excluded(candidates, exclude)
  const soft = excluded(candidates, avoid)
  for (const g of soft.taken) taken.add(g)
  const mixes: PathRelay[] = []
  let relaxed = false
  for (let i = 0; i < count; i++) {
    const open = candidates.filter(r => !skip.has(r.peerId))
    const preferred = open.filter(r => !soft.skip.has(r.peerId))
    let pick = drawByGroup(preferred.filter(r => !groupsOf(r).some(g => taken.has(g))))
    if (pick == null) {
      pick = drawByGroup(preferred) ?? drawByGroup(open)
      if (pick == null) break
      relaxed = true
    }
    mixes.push(pick)
    skip.add(pick.peerId)
    for (const g of groupsOf(pick)) taken.add(g)
  }
  return { mixes, short: mixes.length < count, relaxed }
}

/**
 * A relay from `candidates` by group, outside `exclude` and, where possible, sharing no group with
 * it; undefined when every candidate is excluded. `relaxed` says it shares a group.
 */
export function chooseRelayChecked (candidates: PathRelay[], exclude: Iterable<string | PathRelay> = []): { relay: PathRelay | undefined, relaxed: boolean } {
  const { skip, taken } = excluded(candidates, exclude)
  const open = candidates.filter(r => !skip.has(r.peerId))
  const diverse = drawByGroup(open.filter(r => !groupsOf(r).some(g => taken.has(g))))
  if (diverse != null) return { relay: diverse, relaxed: false }
  const any = drawByGroup(open)
  return { relay: any, relaxed: any != null }
}

/** A relay from `candidates` outside `exclude` (by group, diverse from `exclude` where possible), or undefined. */
export function chooseRelay (candidates: PathRelay[], exclude: Iterable<string | PathRelay> = []): PathRelay | undefined {
  return chooseRelayChecked(candidates, exclude).relay
}

function excluded (candidates: PathRelay[], exclude: Iterable<string | PathRelay>): { skip: Set<string>, taken: Set<string> } {
  const skip = new Set<string>()
  const taken = new Set<string>()
  const byId = new Map(candidates.map(r => [r.peerId, r]))
  for (const e of exclude) {
    const relay = typeof e === 'string' ? byId.get(e) : e
    skip.add(typeof e === 'string' ? e : e.peerId)
    if (relay != null) for (const g of groupsOf(relay)) taken.add(g)
  }
  return { skip, taken }
}
