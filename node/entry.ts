/**
 * The user's entry relay (PROTOCOL-V2.md section 2): the one relay a user keeps a connection to. Every
 * packet the user sends leaves through it (SUBMIT), and every packet for the user arrives through it
 * (DELIVER): a user needs no listening address and nobody ever dials it.
 *
 * The entry relay is kept while it is reachable: a dropped link is reopened to the same relay (a few
 * tries, growing pauses), and only a relay that stays unreachable is replaced by another. With a guard
 * list (node/guards.ts, Tor's guard-spec) the entry relay is always one of the user's guards: the first
 * reachable one in the order they were chosen; a guard whose link cannot be reopened is marked down (a
 * lost packet never is) and the next guard is used. When every guard held is down (tried in order, as
 * guard-spec says) and no other live relay of the entry role can be sampled as a new guard, or when no
 * relay of the entry role is live at all, the link falls back to another live relay for now, with a
 * warning: a user whose only guard died is not left without a link (issue 15, bug 4). While the link is
 * on such a fallback relay, the guards are looked at every `guardCheckMs`, and one is dialled only once
 * relay health counts it alive again (heard on gossip after it failed). A link on a guard ranked after
 * a primary guard that was down moves back to that guard once a retry on guard-spec's schedule reaches
 * it (`GuardSet.better`; the mailboxes are registered again through it; SPEC.md "Guards").
 * A failed dial is reported (`onDialFailed`: node/relay-health.ts leaves the relay out until it announces
 * itself again). With no relay reachable at all, connecting is tried again at growing pauses (up to
 * `reconnectMaxDelayMs`) until one answers or the node stops: a user whose relays all restarted gets
 * its link back without restarting.
 */
import { logger } from '@libp2p/logger'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { Libp2p } from '@libp2p/interface'
import { ClientLink } from '../protocols/onion/client-link.ts'
import type { EntryLink } from '../protocols/onion/client.ts'
import type { PathRelay } from '../protocols/onion/paths.ts'
import type { GuardSet } from './guards.ts'
import { relayRole } from './roles.ts'

/** Tries to reopen a dropped link to the same relay before another is chosen. */
export const ENTRY_RETRIES = 3
export const ENTRY_RETRY_DELAY_MS = 500
export const ENTRY_DIAL_TIMEOUT_MS = 10_000
/** With no relay reachable, connecting is tried again at pauses that double up to this (a relay's announce interval). */
export const ENTRY_RECONNECT_MAX_DELAY_MS = 30_000
/**
 * How often a link on a fallback relay looks for a guard alive again (a relay's announce interval: a
 * guard back from the dead is heard within one). A look that finds no guard alive dials nothing.
 */
export const ENTRY_GUARD_CHECK_MS = 30_000
/**
 * The entry relay as its latest descriptor has it is kept this long at most (`link` is read for every
 * packet; building it walks the whole directory). A descriptor of the entry relay heard, or a link
 * (re)opened, drops it at once; the bound catches an onion key that starts by the clock, not by a new
 * descriptor (relays keep the previous key for a grace period far longer than this).
 */
export const ENTRY_FRESH_MAX_AGE_MS = 1_000

export interface EntryInit {
  node: Libp2p
  relays: () => PathRelay[]
  /** The relay's published addresses (from its descriptor). */
  addrsOf: (peerId: string) => string[]
  /** A packet the entry relay delivered. */
  onDeliver: (packet: Uint8Array) => void
  /**
   * The entry relay changed, or its link was reopened (the relay may have restarted with new onion
   * keys): reply blocks through the old link may be dead.
   */
  onChange?: (relay: PathRelay) => void
  onWarning?: (message: string) => void
  /**
   * Every known relay, dead ones included: tried last, after the live ones (a user with no link hears
   * no announcement, so a relay found dead could never count as alive again without a dial).
   */
  allRelays?: () => PathRelay[]
  /** A dial to this relay failed (it may be dead). */
  onDialFailed?: (peerId: string) => void
  /** Prefer this relay (the previous run's). */
  preferred?: string
  /** Relays to choose only when no other is reachable (the user's mailbox relays). */
  avoid?: () => string[]
  retries?: number
  retryDelayMs?: number
  /** The user's guards: the entry relay is always one of them (while any entry-role relay is live). */
  guards?: GuardSet
  /** The longest pause between two rounds of connecting when no relay could be reached. */
  reconnectMaxDelayMs?: number
  /** How often a link on a fallback relay looks for a guard alive again (ENTRY_GUARD_CHECK_MS). */
  guardCheckMs?: number
  now?: () => number
}

export class NoRelayReachableError extends Error {
  constructor (message = 'no relay could be reached as an entry relay') { super(message); this.name = 'NoRelayReachableError' }
}

export class EntryRelay {
  private readonly init: EntryInit
  private readonly log = logger('p2pchat:entry')
  private current: { relay: PathRelay, link: ClientLink } | undefined
  private stopped = false
  private reconnecting: Promise<void> | undefined
  /** The current relay as its latest descriptor has it, and when that was looked up (see `fresh`). */
  private freshCache: { peerId: string, relay: PathRelay, at: number } | undefined
  private guardTimer: ReturnType<typeof setInterval> | undefined
  private upgrading: Promise<unknown> | undefined
  private readonly now: () => number
  /** Counted for tests and diagnostics: directory walks for `fresh`, links to a fallback relay, guards dialled to leave one, moves back to a guard. */
  readonly stats = { freshLookups: 0, guardRetries: 0, guardSwitches: 0, fallbacks: 0 }

  constructor (init: EntryInit) {
    this.init = init
    this.now = init.now ?? Date.now
  }

  /** The live link, as the onion client uses it; undefined while (re)connecting. */
  get link (): EntryLink | undefined {
    const c = this.current
    if (c == null || !c.link.isOpen) return undefined
    return { relay: this.fresh(c.relay), submit: (address, packet) => c.link.submit(address, packet) }
  }

  get relay (): PathRelay | undefined { const c = this.current; return c == null ? undefined : this.fresh(c.relay) }

  /**
   * A descriptor of this relay (peer id) was heard or the relay list changed: the cached view of the
   * entry relay is dropped if it is that relay (every relay's, without an argument).
   */
  relaysChanged (peerId?: string): void {
    if (peerId == null || this.freshCache?.peerId === peerId) this.freshCache = undefined
  }

  /**
   * The relay as its latest descriptor has it (a restarted relay announces new onion keys): looked up
   * in the directory at most every ENTRY_FRESH_MAX_AGE_MS, and again after `relaysChanged`.
   */
  private fresh (relay: PathRelay): PathRelay {
    if (this.init.allRelays == null) return relay
    const now = this.now()
    const c = this.freshCache
    if (c != null && c.peerId === relay.peerId && now - c.at < ENTRY_FRESH_MAX_AGE_MS && now >= c.at) return c.relay
    this.stats.freshLookups++
    const found = this.init.allRelays().find(r => r.peerId === relay.peerId) ?? relay
    this.freshCache = { peerId: relay.peerId, relay: found, at: now }
    return found
  }

  /**
   * Connects to the first reachable guard (see the module comment), else, with a warning, to another
   * live relay: the preferred one (the previous run's) if it is live and of the entry role, else the
   * entry-role relays first and the user's mailbox relays last.
   */
  async connect (signal?: AbortSignal): Promise<PathRelay> {
    const live = this.init.relays()
    const candidates = [...live, ...(this.init.allRelays?.() ?? []).filter(r => !live.some(l => l.peerId === r.peerId))]
    if (candidates.length === 0) throw new NoRelayReachableError('no relay known yet')
    const guards = this.init.guards
    const tried = new Set<string>()
    if (guards != null) {
      const avoid = new Set(this.init.avoid?.() ?? [])
      // guards.order may sample a new guard among live entry-role relays; a second round takes one
      // sampled after the first round's guards were marked down (bounded: the sample is capped)
      for (let round = 0; round < 2; round++) {
        // a guard that holds one of the user's mailboxes goes last: as the entry relay it would see both
        // the user's address and the pushes to its mailbox (it is used only when no other guard is up)
        const order = guards.order(candidates, avoid, live).filter(r => !tried.has(r.peerId))
        const ranked = [...order.filter(r => !avoid.has(r.peerId)), ...order.filter(r => avoid.has(r.peerId))]
        if (ranked.length === 0) break
        const got = await this.connectToGuard(guards, ranked, signal)
        if (got != null) {
          // on a guard ranked after a primary guard that is down: retried on its schedule (backToGuard)
          if (guards.primary(candidates)[0] !== got.peerId) this.watchGuards()
          return got
        }
        for (const r of ranked) tried.add(r.peerId)
      }
      // live relays first, then dead ones (connectToAny): with no link nothing is heard, so a relay
      // found dead counts as alive again only after a dial
      const others = candidates.filter(r => !tried.has(r.peerId))
      if (others.length === 0) throw new NoRelayReachableError(`none of the ${tried.size} guards could be reached, and no other relay is known`)
      // a fallback relay is used until a guard is alive again (watchGuards), not made a guard
      const got = await this.connectToAny(others, live, signal)
      this.stats.fallbacks++
      this.init.onWarning?.(tried.size > 0
        ? `none of your ${tried.size} guards could be reached: connected to a relay that is not one of your guards for now, until a guard answers again (start more relays of the entry role)`
        : 'no relay of the entry role is live, so no guard can be chosen: connected to another relay for now (start more relays)')
      this.watchGuards()
      return got
    }
    return await this.connectToAny(candidates, live, signal)
  }

  /**
   * Without a guard: the preferred relay (the previous run's) if it is of the entry role, then live
   * relays before dead ones, entry-role relays before exits, the user's mailbox relays last.
   */
  private async connectToAny (candidates: PathRelay[], live: PathRelay[], signal?: AbortSignal): Promise<PathRelay> {
    const preferred = candidates.find(r => r.peerId === (this.current?.relay.peerId ?? this.init.preferred))
    const avoid = new Set(this.init.avoid?.() ?? [])
    const rest = shuffle(candidates.filter(r => r !== preferred))
    const rank = (r: PathRelay): number => (live.includes(r) ? 0 : 4) + (relayRole(r.peerId) === 'entry' ? 0 : 2) + (avoid.has(r.peerId) ? 1 : 0)
    const order = [...(preferred != null && relayRole(preferred.peerId) === 'entry' ? [preferred] : []), ...rest.sort((a, b) => rank(a) - rank(b))]
    if (preferred != null && !order.includes(preferred)) order.push(preferred)
    for (const relay of order) {
      signal?.throwIfAborted()
      if (this.stopped) break
      try {
        await this.open(relay, { signal })
        if (relayRole(relay.peerId) !== 'entry') this.init.onWarning?.('no entry relay could be reached: connected to an exit relay, which may then run a lookup of your own nick and see that you are its client (start more relays)')
        return relay
      } catch (err) {
        signal?.throwIfAborted()
        this.init.onDialFailed?.(relay.peerId)
        this.log('entry relay unreachable: %s', why(err))
      }
    }
    throw new NoRelayReachableError()
  }

  /** The first guard of `order` whose link comes up, or undefined; each failure marks that guard down. */
  private async connectToGuard (guards: GuardSet, order: PathRelay[], signal?: AbortSignal): Promise<PathRelay | undefined> {
    for (const relay of order) {
      signal?.throwIfAborted()
      if (this.stopped) break
      try {
        await this.open(relay, { signal })
        guards.succeeded(relay.peerId)
        return relay
      } catch (err) {
        signal?.throwIfAborted()
        if (this.stopped) break // a link that came up as the node stopped: the guard did not fail
        guards.failed(relay.peerId)
        this.init.onDialFailed?.(relay.peerId)
        this.log('a guard could not be reached: %s', why(err))
      }
    }
    return undefined
  }

  /**
   * While the link is on a fallback relay (no guard), or on a guard ranked after a primary guard that
   * was down, looks for a better guard every guardCheckMs (backToGuard).
   */
  private watchGuards (): void {
    if (this.init.guards == null || this.guardTimer != null || this.stopped) return
    this.guardTimer = setInterval(() => {
      if (this.upgrading != null || this.reconnecting != null) return
      this.upgrading = this.backToGuard().catch(err => { this.log('looking for a guard: %s', why(err)) }).finally(() => { this.upgrading = undefined })
    }, this.init.guardCheckMs ?? ENTRY_GUARD_CHECK_MS)
    this.guardTimer.unref()
  }

  /**
   * Moves the link from a fallback relay to a guard (`GuardSet.order`, one sampled if an entry-role
   * relay is live again) that relay health counts alive (heard on gossip since it failed), the first
   * that answers; or from a guard to a primary guard ranked before it that was down and is due for a
   * retry (`GuardSet.better`: guard-spec uses the first reachable primary guard). The old link is
   * closed and its connection hung up once the new one is up; a failed try marks the guard down again
   * (its next retry waits for the schedule). Dials nothing while no better guard is alive and due; the
   * timer stops once the link is on the first primary guard. Resolves true when it moved.
   */
  async backToGuard (): Promise<boolean> {
    const guards = this.init.guards
    const c = this.current
    if (guards == null || c == null || this.stopped) return false
    const live = this.init.relays()
    const liveIds = new Set(live.map(r => r.peerId))
    const candidates = [...live, ...(this.init.allRelays?.() ?? []).filter(r => !liveIds.has(r.peerId))]
    const avoid = new Set(this.init.avoid?.() ?? [])
    if (guards.has(c.relay.peerId)) {
      const better = guards.better(c.relay.peerId, candidates, avoid, live)
      if (better == null) {
        if (guards.primary(candidates)[0] === c.relay.peerId) { clearInterval(this.guardTimer); this.guardTimer = undefined }
        return false
      }
      return await this.moveToGuard(guards, c, [better])
    }
    const order = guards.order(candidates, avoid, live).filter(r => liveIds.has(r.peerId))
    return await this.moveToGuard(guards, c, [...order.filter(r => !avoid.has(r.peerId)), ...order.filter(r => avoid.has(r.peerId))])
  }

  /** The link moved from `c` to the first of `order` that answers; each that does not is marked down. */
  private async moveToGuard (guards: GuardSet, c: { relay: PathRelay, link: ClientLink }, order: PathRelay[]): Promise<boolean> {
    for (const relay of order) {
      if (this.stopped || this.current !== c) return false
      this.stats.guardRetries++
      try {
        await this.open(relay)
      } catch (err) {
        if (this.stopped) return false
        guards.failed(relay.peerId)
        this.init.onDialFailed?.(relay.peerId)
        this.log('a guard alive again could not be reached: %s', why(err))
        continue
      }
      guards.succeeded(relay.peerId)
      this.stats.guardSwitches++
      this.log('moved the link to a guard (from %s)', guards.has(c.relay.peerId) ? 'a later guard' : 'a fallback relay')
      if (guards.primary([...this.init.relays(), ...(this.init.allRelays?.() ?? [])])[0] === relay.peerId) {
        clearInterval(this.guardTimer)
        this.guardTimer = undefined
      }
      await c.link.close().catch(() => {})
      await this.init.node.hangUp(peerIdFromString(c.relay.peerId)).catch(() => {})
      return true
    }
    return false
  }

  private async open (relay: PathRelay, { signal, reopened = false }: { signal?: AbortSignal, reopened?: boolean } = {}): Promise<void> {
    const peer = peerIdFromString(relay.peerId)
    const addrs = this.init.addrsOf(relay.peerId).map(a => multiaddr(a))
    if (addrs.length > 0) await this.init.node.peerStore.merge(peer, { multiaddrs: addrs })
    const dialSignal = AbortSignal.timeout(ENTRY_DIAL_TIMEOUT_MS)
    const link = await ClientLink.open(this.init.node, peer, {
      signal: signal != null ? AbortSignal.any([signal, dialSignal]) : dialSignal,
      onDeliver: this.init.onDeliver,
      onClose: () => { this.lost(relay) }
    })
    if (this.stopped) { await link.close().catch(() => {}); throw new NoRelayReachableError('stopped') }
    const previous = this.current
    const changed = previous?.relay.peerId !== relay.peerId
    this.current = { relay, link }
    this.freshCache = undefined
    // a link to another relay still open (a move back to a guard racing a reopen): one link at a time
    if (changed && previous != null && previous.link.isOpen) previous.link.close().catch(() => {})
    if (changed || reopened) this.init.onChange?.(relay)
  }

  private lost (relay: PathRelay): void {
    if (this.stopped || this.current?.relay.peerId !== relay.peerId) return
    this.reconnecting ??= this.reopen(relay).finally(() => { this.reconnecting = undefined })
  }

  private async reopen (relay: PathRelay): Promise<void> {
    const retries = this.init.retries ?? ENTRY_RETRIES
    for (let i = 1; i <= retries && !this.stopped; i++) {
      await new Promise(resolve => setTimeout(resolve, (this.init.retryDelayMs ?? ENTRY_RETRY_DELAY_MS) * i))
      if (this.stopped) return
      try {
        await this.open(this.fresh(relay), { reopened: true })
        return
      } catch (err) {
        this.log('reopening the entry link failed (%d/%d): %s', i, retries, why(err))
      }
    }
    if (this.stopped) return
    this.init.onDialFailed?.(relay.peerId)
    this.init.guards?.failed(relay.peerId)
    this.init.onWarning?.(this.init.guards?.has(relay.peerId) === true ? 'the guard in use is unreachable; using the next guard' : 'the entry relay is unreachable; choosing another')
    this.current = undefined
    const maxDelay = this.init.reconnectMaxDelayMs ?? ENTRY_RECONNECT_MAX_DELAY_MS
    let delay = this.init.retryDelayMs ?? ENTRY_RETRY_DELAY_MS
    for (let round = 0; !this.stopped; round++) {
      try {
        await this.connect()
        return
      } catch (err) {
        if (round === 0) this.init.onWarning?.(`no entry relay: ${(err as Error).message}; trying again until one answers`)
        this.log('no entry relay (round %d): %s', round, why(err))
      }
      await new Promise(resolve => { const t = setTimeout(resolve, delay); t.unref() })
      delay = Math.min(maxDelay, delay * 2)
    }
  }

  async stop (): Promise<void> {
    this.stopped = true
    clearInterval(this.guardTimer)
    this.guardTimer = undefined
    const c = this.current
    this.current = undefined
    await c?.link.close().catch(() => {})
  }
}

/** A failure's kind for the debug log: its name and code, never its message (which names addresses). */
function why (err: unknown): string {
  const e = err as { name?: string, code?: string }
  return [e.name, e.code].filter(x => x != null).join(' ')
}

function shuffle<T> (items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[items[i], items[j]] = [items[j], items[i]]
  }
  return items
}
