/**
 * Which relays a user counts as alive (PROTOCOL-V2.md section 3, "Dead relays"). A user connects to no
 * relay but its entry relay, so it learns that another relay died only from what it sees:
 *
 * - silence: every relay announces its descriptor on gossip every announce interval. A relay not heard
 *   for SILENT_INTERVALS intervals, while another relay was heard within them (so our own gossip feed
 *   works), is dead;
 * - failed paths: an onion request that got no answer counts against every relay on its path (forward
 *   hops and reply block); an answer clears every relay on its path. A relay on FAILURES_TO_SUSPECT
 *   failed paths with no answer through it since, and not heard on gossip since the first of those
 *   failures for more than SUSPECT_INTERVALS intervals, is dead: a live relay on the same failed paths
 *   is told apart by its announcements, which go on;
 * - a failed dial (the entry relay): dead until the relay is heard on gossip again after the failure.
 *
 * A dead relay is left out of paths, reply blocks, exits and mailboxes (`filter`), and is alive again as
 * soon as it announces itself after the evidence (a restarted relay does so at its start). Nothing here
 * sends a packet: liveness costs no traffic and tells no relay anything.
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
  /** When a dial to it last failed. */
  dialFailedAt?: number
}

export type DeathReason = 'silent' | 'no-answer' | 'dial-failed'

export class RelayHealth {
  private readonly init: RelayHealthInit
  private readonly now: () => number
  private readonly evidence = new Map<string, Evidence>()
  readonly stats = { answered: 0, unanswered: 0, dialFailures: 0 }

  constructor (init: RelayHealthInit) {
    this.init = init
    this.now = init.now ?? Date.now
  }

  /** An answer came back over these relays (peer ids): each of them is alive. */
  answered (path: string[]): void {
    this.stats.answered++
    for (const peerId of path) {
      const e = this.evidence.get(peerId)
      if (e == null) continue
      if (e.dialFailedAt == null) this.evidence.delete(peerId)
      else { e.failures = 0; e.since = 0 }
    }
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
    e.dialFailedAt = this.now()
    this.evidence.set(peerId, e)
  }

  /** Why `relay` counts as dead now, or undefined while it counts as alive. `freshest`: the latest lastSeen of any relay. */
  deathOf (relay: HeardRelay, freshest: number): DeathReason | undefined {
    const now = this.now()
    const interval = this.init.announceIntervalMs
    const e = this.evidence.get(relay.record.peerId)
    if (e?.dialFailedAt != null) {
      if (relay.lastSeen <= e.dialFailedAt) return 'dial-failed'
      // heard again after the failed dial: that evidence is spent
      e.dialFailedAt = undefined
      if (e.failures === 0) this.evidence.delete(relay.record.peerId)
    }
    // our own feed works when some relay was heard within the silence window
    const feedWorks = now - freshest <= SILENT_INTERVALS * interval
    if (feedWorks && now - relay.lastSeen > SILENT_INTERVALS * interval) return 'silent'
    if (e != null && e.failures >= FAILURES_TO_SUSPECT && relay.lastSeen <= e.since && now - e.since > SUSPECT_INTERVALS * interval) return 'no-answer'
    return undefined
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
