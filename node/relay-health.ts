/**
 * Which relays a user counts as alive (PROTOCOL-V2.md section 3, "Dead relays"). A user connects to no
 * relay but its entry relay, so it learns that another relay died only from what it sees:
 *
 * - silence: every relay announces its descriptor on gossip every announce interval. A relay not heard
 *   for SILENT_INTERVALS intervals before the latest announcement of any relay (so our own gossip feed
 *   works: when it stalls, nobody is found dead for it) is dead;
 * - failed paths: an onion request that got no answer counts against every relay on its path (forward
 *   hops and reply block); an answer clears every relay on its path. A relay on FAILURES_TO_SUSPECT
 *   failed paths with no answer through it since, not heard on gossip since the first of those failures
 *   while other relays were heard more than SUSPECT_INTERVALS intervals after it, is dead: a live relay
 *   on the same failed paths is told apart by its announcements, which go on;
 * - a failed dial (the entry relay): dead until the relay is heard on gossip again after the failure.
 *
 * Silence means something only once our gossip feed carries other relays' announcements: a client new
 * to its entry relay hears at first only the entry relay's own (gossipsub publishes its own messages to
 * every subscriber, forwards others' only to its mesh, which the client joins a heartbeat or more later).
 * So the two silence rules apply from the moment announcements of two distinct relays have been heard
 * (`heard`) since the feed (re)started (`feedRestarted`: a new entry relay, a reopened link), and a
 * relay's silence is counted from then at the earliest.
 *
 * A dead relay is left out of paths, reply blocks, exits and mailboxes (`filter`), and stays dead until
 * it is heard on gossip after it was found dead (a restarted relay announces itself at its start) or an
 * answer comes back over it. Nothing here sends a packet: liveness costs no traffic and tells no relay
 * anything.
 */
/** What liveness needs of a relay directory entry (protocols/onion/relay-directory.ts `KnownRelay`). */
export interface HeardRelay {
  record: { peerId: string }
  /** When its descriptor was last heard (gossip, or a relay list). */
  lastSeen: number
}

/** Announce intervals of silence after which a relay is dead (a lost announcement or two is not death). */
export const SILENT_INTERVALS = 3
/** Failed paths through a relay, with no answer through it since, before silence counts sooner. */
export const FAILURES_TO_SUSPECT = 3
/** A relay on failed paths is dead after this many announce intervals of silence since they began (one interval and a half: a live relay announces within one). */
export const SUSPECT_INTERVALS = 1.5

export interface RelayHealthInit {
  /** The relays' gossip announce interval. */
  announceIntervalMs: number
  now?: () => number
}

interface Evidence {
  /** Failed paths through the relay since the last answer through it. */
  failures: number
  /** When the first of those failures was seen. */
  since: number
  /** When the relay was found dead, and why: it stays dead until it is heard after that. */
  deadAt?: number
  reason?: DeathReason
}

export type DeathReason = 'silent' | 'no-answer' | 'dial-failed'

export class RelayHealth {
  private readonly init: RelayHealthInit
  private readonly now: () => number
  private readonly evidence = new Map<string, Evidence>()
  /** Relays heard on gossip since the feed (re)started, and when the second of them was. */
  private readonly heardSince = new Set<string>()
  private feedStart: number | undefined
  readonly stats = { answered: 0, unanswered: 0, dialFailures: 0 }

  constructor (init: RelayHealthInit) {
    this.init = init
    this.now = init.now ?? Date.now
  }

  /** An announcement of this relay arrived on gossip. */
  heard (peerId: string): void {
    if (this.feedStart != null) return
    this.heardSince.add(peerId)
    if (this.heardSince.size >= 2) this.feedStart = this.now()
  }

  /** Our gossip feed starts again (a new link to an entry relay): silence counts anew once it carries other relays. */
  feedRestarted (): void {
    this.heardSince.clear()
    this.feedStart = undefined
  }

  /** An answer came back over these relays (peer ids): each of them is alive. */
  answered (path: string[]): void {
    this.stats.answered++
    for (const peerId of path) this.evidence.delete(peerId)
  }

  /** No answer came back over these relays: one of them (at least) may be dead. */
  unanswered (path: string[]): void {
    this.stats.unanswered++
    const now = this.now()
    for (const peerId of new Set(path)) {
      const e = this.evidence.get(peerId) ?? { failures: 0, since: 0 }
      if (e.failures === 0) e.since = now
      e.failures++
      this.evidence.set(peerId, e)
    }
  }

  /** A dial to this relay failed. */
  dialFailed (peerId: string): void {
    this.stats.dialFailures++
    const e = this.evidence.get(peerId) ?? { failures: 0, since: 0 }
    e.deadAt = this.now()
    e.reason = 'dial-failed'
    this.evidence.set(peerId, e)
  }

  /**
   * Why `relay` counts as dead now, or undefined while it counts as alive. `freshest`: the latest
   * lastSeen of any relay. Silence is measured against `freshest`, not the clock: when our own gossip
   * feed stalls (a link down, a loaded machine), no relay is heard and none is found dead for it.
   */
  deathOf (relay: HeardRelay, freshest: number): DeathReason | undefined {
    const interval = this.init.announceIntervalMs
    const id = relay.record.peerId
    const e = this.evidence.get(id)
    if (e?.deadAt != null) {
      if (relay.lastSeen <= e.deadAt) return e.reason
      // heard after it was found dead: alive again, the evidence is spent
      this.evidence.delete(id)
      return undefined
    }
    if (this.feedStart == null) return undefined
    // silence is counted from the start of a feed that carries other relays, at the earliest
    const heardAt = Math.max(relay.lastSeen, this.feedStart)
    let reason: DeathReason | undefined
    if (freshest - heardAt > SILENT_INTERVALS * interval) reason = 'silent'
    else if (e != null && e.failures >= FAILURES_TO_SUSPECT && relay.lastSeen <= e.since && freshest - Math.max(e.since, this.feedStart) > SUSPECT_INTERVALS * interval) reason = 'no-answer'
    if (reason == null) return undefined
    this.evidence.set(id, { failures: e?.failures ?? 0, since: e?.since ?? 0, deadAt: this.now(), reason })
    return reason
  }

  /** `relays` without the dead ones. */
  filter<T extends HeardRelay> (relays: T[]): T[] {
    const freshest = relays.reduce((m, r) => Math.max(m, r.lastSeen), 0)
    return relays.filter(r => this.deathOf(r, freshest) == null)
  }

  /** The dead relays among `relays`, with why. */
  dead (relays: HeardRelay[]): Array<{ peerId: string, reason: DeathReason }> {
    const freshest = relays.reduce((m, r) => Math.max(m, r.lastSeen), 0)
    return relays.flatMap(r => { const reason = this.deathOf(r, freshest); return reason == null ? [] : [{ peerId: r.record.peerId, reason }] })
  }
}
