/**
 * The user's entry relay (PROTOCOL-V2.md section 2): the one relay a user keeps a connection to. Every
 * packet the user sends leaves through it (SUBMIT), and every packet for the user arrives through it
 * (DELIVER): a user needs no listening address and nobody ever dials it.
 *
 * The entry relay is kept while it is reachable: a dropped link is reopened to the same relay (a few
 * tries, growing pauses), and only a relay that stays unreachable is replaced by another. With a guard
 * list (node/guards.ts, Tor's guard-spec) the entry relay is always one of the user's guards: the first
 * reachable one in the order they were chosen; a guard whose link cannot be reopened is marked down (a
 * lost packet never is) and the next guard is used. Only when no relay of the entry role is live at all
 * does the link fall back to any relay, with a warning.
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

  constructor (init: EntryInit) {
    this.init = init
  }

  /** The live link, as the onion client uses it; undefined while (re)connecting. */
  get link (): EntryLink | undefined {
    const c = this.current
    if (c == null || !c.link.isOpen) return undefined
    return { relay: this.fresh(c.relay), submit: (address, packet) => c.link.submit(address, packet) }
  }

  get relay (): PathRelay | undefined { const c = this.current; return c == null ? undefined : this.fresh(c.relay) }

  /** The relay as its latest descriptor has it (a restarted relay announces new onion keys). */
  private fresh (relay: PathRelay): PathRelay {
    return this.init.allRelays?.().find(r => r.peerId === relay.peerId) ?? relay
  }

  /** Connects to the preferred relay if it is live, else to a random live relay. */
  async connect (signal?: AbortSignal): Promise<PathRelay> {
    const live = this.init.relays()
    const candidates = [...live, ...(this.init.allRelays?.() ?? []).filter(r => !live.some(l => l.peerId === r.peerId))]
    if (candidates.length === 0) throw new NoRelayReachableError('no relay known yet')
    const guards = this.init.guards
    if (guards != null) {
      // a guard that holds one of the user's mailboxes goes last: as the entry relay it would see both
      // the user's address and the pushes to its mailbox (it is used only when no other guard is up)
      const avoid = new Set(this.init.avoid?.() ?? [])
      const order = guards.order(candidates, avoid)
      const ranked = [...order.filter(r => !avoid.has(r.peerId)), ...order.filter(r => avoid.has(r.peerId))]
      if (ranked.length > 0) return await this.connectToGuard(guards, ranked, signal)
      this.init.onWarning?.('no relay of the entry role is live, so no guard can be chosen: connecting to any relay for now (start more relays)')
    }
    const preferred = candidates.find(r => r.peerId === (this.current?.relay.peerId ?? this.init.preferred))
    // entry-role relays first (roles.ts: they are never exits), the mailbox relays last
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
        this.init.onDialFailed?.(relay.peerId)
        this.log('entry relay %s unreachable: %s', relay.peerId, (err as Error).message)
      }
    }
    throw new NoRelayReachableError()
  }

  /** The first guard of `order` whose link comes up; each failure marks that guard down. */
  private async connectToGuard (guards: GuardSet, order: PathRelay[], signal?: AbortSignal): Promise<PathRelay> {
    for (const relay of order) {
      signal?.throwIfAborted()
      if (this.stopped) break
      guards.attempted(relay.peerId)
      try {
        await this.open(relay, { signal })
        guards.succeeded(relay.peerId)
        return relay
      } catch (err) {
        signal?.throwIfAborted()
        guards.failed(relay.peerId)
        this.init.onDialFailed?.(relay.peerId)
        this.log('guard %s unreachable: %s', relay.peerId, (err as Error).message)
      }
    }
    throw new NoRelayReachableError(`none of the ${order.length} guards tried could be reached`)
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
    const changed = this.current?.relay.peerId !== relay.peerId
    this.current = { relay, link }
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
        this.log('reopening the entry link failed (%d/%d): %s', i, retries, (err as Error).message)
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
        this.log('no entry relay (round %d): %s', round, (err as Error).message)
      }
      await new Promise(resolve => { const t = setTimeout(resolve, delay); t.unref() })
      delay = Math.min(maxDelay, delay * 2)
    }
  }

  async stop (): Promise<void> {
    this.stopped = true
    const c = this.current
    this.current = undefined
    await c?.link.close().catch(() => {})
  }
}

function shuffle<T> (items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[items[i], items[j]] = [items[j], items[i]]
  }
  return items
}
