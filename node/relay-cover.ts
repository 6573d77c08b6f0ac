/**
 * A relay's own loop cover (issue 11 item 2, "Relays may send loop cover of their own"; Loopix section
 * 4.3, the mix nodes' loops): a Poisson stream of packets this relay builds through two other relays
 * and back to itself (this relay -> mix -> mix -> this relay, each mix holding it for an exponential
 * delay of `meanDelayMs`), so that the links between relays carry traffic when no user's does, and a
 * relay that swallows packets (or a link that drops them) shows as loops that do not come back.
 *
 * Format: a Sphinx forward packet (SPEC.md section 3) whose last hop is this relay, SERVICE_DROP with an
 * empty request, a random 16-byte final id; when it comes back (`delivered(id)` true) the caller drops
 * it before the services see it. The mixes are drawn uniformly from the live relays other than this one
 * with an onion key valid now, outside this relay's /16 where the network has such relays.
 *
 * Limits: off when `perMinute` is 0 (the default of RelayNodeOptions: a network at `fast`, tests that
 * count packets); at most MAX_PENDING loops awaited at once (the oldest forgotten first, counted lost);
 * a loop not back within LOOP_TIMEOUT_MS is counted lost. Gaps come from a `Uniform` and times from a
 * `Clock` so a test's schedule is reproducible. Counted: sent, back, lost, failed (could not be built:
 * fewer than two other relays).
 */
import { randomBytes } from 'node:crypto'
import { logger } from '@libp2p/logger'
import { subnetsOfAddrs } from '../protocols/directory/subnet.ts'
import { CoverTraffic } from './cover.ts'
import { cryptoUniform, hopDelays } from '../protocols/onion/delays.ts'
import type { Uniform } from '../protocols/onion/delays.ts'
import { onionKeyFor } from '../protocols/onion/relay-directory.ts'
import type { KnownRelay } from '../protocols/onion/relay-directory.ts'
import { realClock } from '../protocols/onion/scheduler.ts'
import type { Clock } from '../protocols/onion/scheduler.ts'
import { encodeServiceBody, SERVICE_DROP } from '../protocols/onion/service-body.ts'
import { createPacket } from '../protocols/onion/sphinx.ts'
import type { Hop } from '../protocols/onion/sphinx.ts'

/**
 * Loops awaited at once: at 6 a minute and a 20 s timeout about 2 are out; 64 leaves room for a far
 * higher configured rate without memory growing with a lost network.
 */
export const MAX_PENDING = 64
/** A loop not back in this time is lost: two mixing delays (30 means of 500 ms would be 15 s) and three links. */
export const LOOP_TIMEOUT_MS = 30_000

/** The mean delay a loop asks of each mix: the `standard` level's (node/privacy.ts), so it looks like a user's packet there. */
export const RELAY_LOOP_DELAY_MS = 500

export class NotEnoughRelaysError extends Error {
  constructor () { super('fewer than two other relays with a valid onion key: no loop'); this.name = 'NotEnoughRelaysError' }
}

export interface RelayCoverInit {
  /** Loops a minute (0: off). */
  perMinute: number
  /** The mean delay each mix is asked to hold a loop, ms (a user's `standard` level: 500). */
  meanDelayMs: number
  selfPeerId: string
  /** This relay's transport key, current onion key and addresses: the loop's last hop. */
  self: () => { address: Uint8Array, onionKey: Uint8Array, addrs: string[] }
  /** Sends a packet this relay built to its first hop (OnionService.send). */
  send: (firstHop: Uint8Array, packet: Uint8Array) => void
  relays: () => KnownRelay[]
  clock?: Clock
  uniform?: Uniform
}

export interface RelayCoverStats { sent: number, back: number, lost: number, failed: number }

export class RelayCover {
  private readonly init: RelayCoverInit
  private readonly clock: Clock
  private readonly cover: CoverTraffic | undefined
  private readonly pending = new Map<string, number>()
  private readonly delay: () => number
  private readonly uniform: Uniform
  private readonly log = logger('p2pchat:relay:cover')
  readonly stats: RelayCoverStats = { sent: 0, back: 0, lost: 0, failed: 0 }

  /** Loops a minute (0: off). */
  get perMinute (): number { return this.init.perMinute }

  constructor (init: RelayCoverInit) {
    if (!(init.perMinute >= 0)) throw new RangeError('a loop rate is >= 0 per minute')
    this.init = init
    this.clock = init.clock ?? realClock
    this.uniform = init.uniform ?? cryptoUniform()
    this.delay = hopDelays(init.meanDelayMs, this.uniform)
    this.cover = init.perMinute > 0
      ? new CoverTraffic({ loopPerMinute: init.perMinute, dropPerMinute: 0, sendLoop: () => { this.loop() }, sendDrop: () => {}, clock: this.clock, uniform: this.uniform })
      : undefined
  }

  /** True when the relay sends loops (a rate above 0). */
  get on (): boolean { return this.cover != null }

  start (): void { this.cover?.start() }

  stop (): void {
    this.cover?.stop()
    this.pending.clear()
  }

  /** One loop: this relay -> mix -> mix -> this relay. Throws NotEnoughRelaysError (counted `failed`). */
  private loop (): void {
    this.expire()
    const now = Date.now()
    const self = this.init.self()
    const ours = new Set(subnetsOfAddrs(self.addrs))
    const others = this.init.relays().filter(r => r.record.peerId !== this.init.selfPeerId && onionKeyFor(r.record, now) != null)
    const apart = others.filter(r => !subnetsOfAddrs(r.record.addrs).some(g => ours.has(g)))
    const pool = apart.length >= 2 ? apart : others
    if (pool.length < 2) { this.stats.failed++; throw new NotEnoughRelaysError() }
    const u = this.uniform
    const a = pool[Math.floor(u() * pool.length)]
    const rest = pool.filter(r => r !== a)
    const b = rest[Math.floor(u() * rest.length)]
    const hop = (r: KnownRelay): Hop => ({ address: r.record.identityKey, onionKey: (onionKeyFor(r.record, now) as { key: Uint8Array }).key, delayMs: this.delay() })
    const id = randomBytes(16)
    const { firstHop, packet } = createPacket([hop(a), hop(b), { address: self.address, onionKey: self.onionKey }],
      encodeServiceBody({ service: SERVICE_DROP, replyBlock: undefined, request: new Uint8Array(0) }), { id })
    if (this.pending.size >= MAX_PENDING) {
      const oldest = this.pending.keys().next().value
      if (oldest != null) { this.pending.delete(oldest); this.stats.lost++ }
    }
    this.pending.set(Buffer.from(id).toString('hex'), this.clock.now())
    this.stats.sent++
    try {
      this.init.send(firstHop, packet)
    } catch (err) {
      this.log('sending a loop failed: %s', (err as Error).name)
    }
  }

  /** Loops out longer than LOOP_TIMEOUT_MS are lost (counted). */
  private expire (): void {
    const now = this.clock.now()
    for (const [k, at] of this.pending) {
      if (now - at < LOOP_TIMEOUT_MS) break
      this.pending.delete(k)
      this.stats.lost++
    }
  }

  /** A packet delivered to this relay with final id `id`: true when it was one of its loops (then dropped). */
  delivered (id: Uint8Array): boolean {
    const key = Buffer.from(id).toString('hex')
    if (!this.pending.delete(key)) return false
    this.stats.back++
    return true
  }
}
