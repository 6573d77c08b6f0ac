/**
 * Relay admission (SPEC.md "Path rules" 5; ../directory/ATTEST.md): which relays a client puts on
 * paths, from what the other relays attest in their descriptors (field 0x81). A relay X is admitted when,
 * counting the attesting relays by network group (one vote per /16, IPv6 /32):
 *
 * - its **attested age** (now - when the group's attesters first stored a descriptor of X) is at least
 *   `minAgeMs`: each group's age is the lower median of its members' ages, X's age the lower median of
 *   the groups' ages, so one lying attester (or one lying /16 of them) cannot make a fresh relay look
 *   old: it takes more than half of the attesting groups;
 * - more than half of the attesting groups say a **loop probe** through X came back;
 * - more than half of the attesting groups **reached X at an address in the same /16** (a new,
 *   Noise-authenticated connection to an address of its descriptor): that /16 becomes X's sampling group
 *   on paths, whatever else X's descriptor claims (claims only add constraints on X);
 * - at least MIN_ATTESTING_GROUPS groups vote;
 * - at most MAX_ADMITTED_PER_GROUP relays of one verified /16 are admitted, the oldest attested first.
 *
 * Who votes for X: every other relay with a live descriptor and a well-formed field 0x81, except X itself,
 * relays of X's declared family and relays in X's own /16 (an operator's own /16 does not vouch for its
 * relays): the /16 X's descriptor names first and, counted again without it, the /16 the others reached
 * X at. Not every /16 X names: naming the honest relays' /16s would silence them. An attester's group is the /16 of its own first descriptor address,
 * and it votes only while that /16 is itself verified by the others (the votes are recounted without the
 * attesters whose /16 did not verify, until nothing changes). A group's member that does not name X in a
 * COMPLETE list says "not known" (age 0, no probe, no address); in a partial list it abstains.
 *
 * Not protected (SPEC.md): an adversary whose relays hold (or claim and vouch for each other in) more
 * /16s than the honest relays outvotes them; there is no root of trust besides the count of /16s.
 */
import { attestationsOf, relayTag } from '../directory/attest.ts'
import type { Attestation } from '../directory/attest.ts'
import { familyOfCached } from '../directory/family.ts'
import { subnetsOfAddrs } from '../directory/subnet.ts'
import type { KnownRelay } from './relay-directory.ts'

/**
 * Attested age a relay needs by default: a day. An adversary must keep new relays up, announced and
 * answering probes for a day before they carry traffic, and relays that come and go (laptops) stay out.
 */
export const DEFAULT_MIN_RELAY_AGE_MS = 24 * 3600_000
/** Groups that must vote before a relay is admitted: with one, a single lying /16 would decide. */
export const MIN_ATTESTING_GROUPS = 2
/**
 * Admitted relays a client needs before it leaves the others out: the smallest network the path rules
 * need (SPEC.md: guard, two forward mixes, a final relay, two reply-block mixes in six /16s). Below it the
 * client uses every relay, with a warning (a new network, the demo).
 */
export const MIN_ADMITTED_RELAYS = 6
/**
 * Admitted relays per verified /16 (IPv6 /32), the oldest attested first: a few, as in a newcomer's first
 * relay list (relay-list.ts MAX_PER_SUBNET), so a large operator in one /16 fills a few places.
 */
export const MAX_ADMITTED_PER_GROUP = 4
/** Rounds of recounting without attesters whose own /16 did not verify (each round drops at least one). */
const MAX_ROUNDS = 8

export interface AdmissionConfig {
  minAgeMs: number
  now: number
}

export interface RelayVerdict {
  peerId: string
  /** Attested age (ms); 0 when too few groups vote. */
  ageMs: number
  probed: boolean
  /** The verified /16 (IPv6 /32): X's sampling group on paths. */
  group?: string
  /** Groups that voted. */
  groups: number
  admitted: boolean
  /** Why not admitted: too few groups voted, too young, no probe back, no address reached, or its /16 has MAX_ADMITTED_PER_GROUP older relays. */
  reason?: 'few-attesters' | 'age' | 'probe' | 'address' | 'group-full'
}

interface Attester {
  peerId: string
  group: string
  family: string | undefined
  complete: boolean
  byTag: Map<string, Attestation>
}

/** Lower median: with n values, more than half of them must be raised to raise it. */
function lowerMedian (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor((sorted.length - 1) / 2)]
}

function majority<T> (values: Array<T | undefined>, total: number): T | undefined {
  const counts = new Map<T, number>()
  for (const v of values) if (v !== undefined) counts.set(v, (counts.get(v) ?? 0) + 1)
  for (const [v, n] of counts) if (n * 2 > total) return v
  return undefined
}

interface Facts { tag: string, family: string | undefined, claimed: string[] }

/**
 * What admission needs of a descriptor, computed once per verified record (records are immutable):
 * paths are chosen often and a family check is an Ed25519 verification.
 */
const factsOf = ((cache: WeakMap<object, Facts>) => (r: KnownRelay): Facts => {
  let f = cache.get(r.record)
  if (f == null) {
    let family: string | undefined
    try { family = familyOfCached(r.record) } catch { family = undefined }
    f = { tag: relayTag(r.record.identityKey), family, claimed: subnetsOfAddrs(r.record.addrs) }
    cache.set(r.record, f)
  }
  return f
})(new WeakMap())

/**
 * The verdict on every relay of `relays` (live descriptors, verified): see the module comment. Never
 * throws; a malformed attestation field only silences its attester.
 */
export function judgeRelays (relays: KnownRelay[], cfg: AdmissionConfig): Map<string, RelayVerdict> {
  const attesters: Attester[] = []
  for (const r of relays) {
    let att
    try { att = attestationsOf(r.record) } catch { continue }
    if (att == null) continue
    attesters.push({
      peerId: r.record.peerId,
      group: factsOf(r).claimed[0],
      family: factsOf(r).family,
      complete: att.complete,
      byTag: new Map(att.entries.map(e => [e.tag, e]))
    })
  }
  let voting = attesters
  let verdicts = new Map<string, RelayVerdict>()
  for (let round = 0; round < MAX_ROUNDS; round++) {
    verdicts = new Map(relays.map(r => [r.record.peerId, judgeOne(r, voting, cfg)]))
    const still = voting.filter(a => verdicts.get(a.peerId)?.group === a.group)
    if (still.length === voting.length) break
    voting = still
  }
  // at most MAX_ADMITTED_PER_GROUP per /16: the oldest attested (then the lowest peer id: every client agrees)
  const byGroup = new Map<string, RelayVerdict[]>()
  for (const v of verdicts.values()) {
    if (!v.admitted || v.group == null) continue
    const list = byGroup.get(v.group)
    if (list == null) byGroup.set(v.group, [v]); else list.push(v)
  }
  for (const list of byGroup.values()) {
    list.sort((a, b) => b.ageMs - a.ageMs || (a.peerId < b.peerId ? -1 : 1))
    for (const v of list.slice(MAX_ADMITTED_PER_GROUP)) { v.admitted = false; v.reason = 'group-full' }
  }
  return verdicts
}

function judgeOne (relay: KnownRelay, attesters: Attester[], cfg: AdmissionConfig): RelayVerdict {
  // X's own /16 does not vouch for X: first the one its descriptor names first, then (counted again)
  // also the one the others reached it at. Not every /16 it names: naming the honest /16s would
  // silence their relays.
  const own = factsOf(relay).claimed[0]
  const first = countVotes(relay, attesters, cfg, new Set([own]))
  if (first.group == null || first.group === own) return first
  return countVotes(relay, attesters, cfg, new Set([own, first.group]))
}

function countVotes (relay: KnownRelay, attesters: Attester[], cfg: AdmissionConfig, silent: Set<string>): RelayVerdict {
  const peerId = relay.record.peerId
  const facts = factsOf(relay)
  const tag = facts.tag
  const family = facts.family
  const byGroup = new Map<string, Array<{ age: number, probed: boolean, reached?: string }>>()
  for (const a of attesters) {
    if (a.peerId === peerId || silent.has(a.group) || (family != null && a.family === family)) continue
    const e = a.byTag.get(tag)
    let vote: { age: number, probed: boolean, reached?: string }
    if (e != null) vote = { age: Math.max(0, cfg.now - e.firstSeen), probed: e.probed, reached: e.reached }
    else if (a.complete) vote = { age: 0, probed: false }
    else continue
    const list = byGroup.get(a.group)
    if (list == null) byGroup.set(a.group, [vote]); else list.push(vote)
  }
  const groups = [...byGroup.values()].map(votes => ({
    age: lowerMedian(votes.map(v => v.age)),
    probed: votes.filter(v => v.probed).length * 2 > votes.length,
    reached: majority(votes.map(v => v.reached), votes.length)
  }))
  const n = groups.length
  if (n < MIN_ATTESTING_GROUPS) return { peerId, ageMs: 0, probed: false, groups: n, admitted: false, reason: 'few-attesters' }
  const ageMs = lowerMedian(groups.map(g => g.age))
  const probed = groups.filter(g => g.probed).length * 2 > n
  const group = majority(groups.map(g => g.reached), n)
  const reason = group == null ? 'address' : !probed ? 'probe' : ageMs < cfg.minAgeMs ? 'age' : undefined
  return { peerId, ageMs, probed, ...(group != null ? { group } : {}), groups: n, admitted: reason == null, ...(reason != null ? { reason } : {}) }
}

export interface Admission {
  /** The relays to build paths from: the admitted ones, or every one when `relaxed`. */
  relays: KnownRelay[]
  /** Verified /16 of each admitted relay (its sampling group on paths). */
  groupOf: Map<string, string>
  admitted: number
  /** Fewer than MIN_ADMITTED_RELAYS admitted: every relay is used, and the caller warns. */
  relaxed: boolean
  verdicts: Map<string, RelayVerdict>
}

/** The relays a client builds paths from (see judgeRelays), relaxing below `minAdmitted`. */
export function admitRelays (relays: KnownRelay[], cfg: AdmissionConfig & { minAdmitted?: number }): Admission {
  const verdicts = judgeRelays(relays, cfg)
  const admitted = relays.filter(r => verdicts.get(r.record.peerId)?.admitted === true)
  const groupOf = new Map<string, string>()
  for (const r of admitted) groupOf.set(r.record.peerId, verdicts.get(r.record.peerId)?.group as string)
  const relaxed = admitted.length < (cfg.minAdmitted ?? MIN_ADMITTED_RELAYS)
  return { relays: relaxed ? relays : admitted, groupOf, admitted: admitted.length, relaxed, verdicts }
}
