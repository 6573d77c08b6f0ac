/**
 * The user's side of its mailboxes (PROTOCOL-V2.md section 6; protocols/mailbox/SPEC.md):
 *
 * - keeps `want` mailboxes (default 2) on relays of the exit role (`pickRelay`), other than its entry relay, on
 *   different /16s where the network has them; each has its own Ed25519 key (node/mailbox-keys.ts), never the identity key;
 *   a mailbox of a previous run is never abandoned while its relay is down or is the entry relay (records
 *   naming it are out there, and items wait in it): it is registered and fetched again once it can be;
 * - holds at most `want` mailboxes in use (named in the record): once `want` are registered, one that
 *   could not be (its relay down, or our entry relay) and any beyond `want` (the newest) are retired.
 *   A retired mailbox is *draining*: no longer named in the record, but registered, stocked and so
 *   fetched whenever its relay is live, because senders holding an older record may deposit there until
 *   that record expires (`drainMs`). Past that, the first STOCKED answer saying nothing waits releases
 *   it: no more requests (the relay forgets an empty mailbox after its idle age) and its key is erased.
 *   One whose relay never comes back is erased `drainMs + itemAgeMs` after it was retired (its items
 *   have expired at the relay). So a user restarted any number of times holds `want` mailboxes plus
 *   those retired in the last `drainMs` (+ `itemAgeMs` while their relays are down), never more;
 * - REGISTERs each with the current signed name record (the relay republishes it while the user is
 *   away), through an onion request;
 * - keeps reply blocks STOCKed at each (the relay pushes what waits through them: the relay never learns
 *   where the user is), topping them up as pushes use them and as they age out. Its own count of the
 *   blocks a relay holds can only be a guess (a relay that restarted holds none; a push through a block
 *   over a dead relay uses the block up and never arrives), so every upkeep round STOCKs at least one
 *   block, and the relay's STOCKED answer (how many it holds) corrects the count; a STOCK with no
 *   answer counts the stock as gone. Blocks over a relay found dead are counted gone (`avoid`) and
 *   replaced by blocks that avoid it;
 * - hands every pushed item to `onItem` and ACKs it once `onItem` says it is safely handled;
 * - steady mode (`timing.pushPeriodMs` > 0; version 2, protocols/mailbox/SPEC.md section 11): after each
 *   REGISTER a SYNC with a reply block probes the relay; a SYNCED answer puts the mailbox in steady mode:
 *   a SYNC (3 fresh reply blocks, the ids to acknowledge, the push period) leaves at the times of a
 *   Poisson process of mean `syncGapMs` (each takes a cover tick, loop or drop, node/cover.ts), nothing else is
 *   sent to that relay until the next REGISTER, and the relay pushes one block a period, an item or
 *   PADDING (dropped here, counted). No answer to the probe (a version 1 relay drops the unknown op):
 *   that mailbox falls back to version 1 stocking and ACKs until its next REGISTER, counted
 *   (`stats.fallbackV1`) and said once per relay through `onWarning`;
 * - DEPOSITs items into other users' mailboxes (`deposit`), for messages and receipts.
 */
import { logger } from '@libp2p/logger'
import { randomBytes } from 'node:crypto'
import { buildAck, buildDeposit, buildRegister, buildStock, buildSync, decodeMailboxPayload, mailboxKeyPairFromSeed, generateMailboxKeyPair } from '../protocols/mailbox/client.ts'
import type { MailboxKeyPair } from '../protocols/mailbox/client.ts'
import type { MailboxAnswer } from '../protocols/mailbox/codec.ts'
import { DEFAULT_ITEM_AGE_MS, MAX_ACK_IDS, MAX_STOCK_BLOCKS_WITH_REPLY, SYNC_ACK_SLOTS, SYNC_BLOCKS } from '../protocols/mailbox/constants.ts'
import type { OnionClient } from '../protocols/onion/client.ts'
import { MAX_HOP_DELAY_MS } from '../protocols/onion/delays.ts'
import type { PathRelay } from '../protocols/onion/paths.ts'
import { drawByGroup, drawForPosition } from '../protocols/onion/paths.ts'
import { SERVICE_MAILBOX } from '../protocols/onion/service-body.ts'
import type { MailboxKey, MailboxKeys } from './mailbox-keys.ts'
import { relayRole } from './roles.ts'

export const DEFAULT_MAILBOXES = 2
/** Reply blocks kept stocked at each mailbox while online. */
export const DEFAULT_STOCK_LEVEL = 4
/** A stocked block is counted as gone after this (the relay drops it before a relay epoch ends). */
export const DEFAULT_STOCK_TTL_MS = 40 * 60_000
/** How often the stock is topped up and lapsed registrations renewed. */
export const DEFAULT_STOCK_INTERVAL_MS = 5 * 60_000
/** A request through the mixnet that gets no answer in this time has failed. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 15_000
/** A registration is renewed this often (the relay forgets an idle mailbox after days). */
export const DEFAULT_REREGISTER_MS = 6 * 3600_000
/**
 * A retired mailbox may still be named in records senders hold this long: a name record's lifetime
 * (chat-node NAME_TTL_MS, a week and 12 h). It is fetched at least until then.
 */
export const DEFAULT_DRAIN_MS = 7 * 24 * 3600_000 + 12 * 3600_000
/**
 * A DEPOSIT's answer that comes after the request timed out is still taken this long: the item was
 * committed when the relay answered, however slow the way back. The mixes hold a round trip at most
 * 5 delayed hops x MAX_HOP_DELAY_MS (2 min) = 10 min; one more minute for the links. Not longer: each
 * kept reply block holds a place among the client's MAX_REPLY_BLOCKS, and a retry every interval
 * makes another.
 */
export const DEFAULT_LATE_ANSWER_MS = 5 * MAX_HOP_DELAY_MS + 60_000

/** REGISTERs sent for one mailbox at start while none is answered (registerHedgeMs apart). */
export const REGISTER_SENDS = 3

export interface MailboxTiming {
  stockLevel: number
  stockTtlMs: number
  stockIntervalMs: number
  requestTimeoutMs: number
  reregisterMs: number
  lateAnswerMs: number
  /** How long a retired mailbox may still be named in a record someone holds (DEFAULT_DRAIN_MS). */
  drainMs: number
  /** How long a relay keeps an item (protocols/mailbox DEFAULT_ITEM_AGE_MS). */
  itemAgeMs: number
  /**
   * At start, a REGISTER not answered in this time is sent again over a new path, and again after as
   * long, REGISTER_SENDS in all (default a third of requestTimeoutMs, so the sends span the timeout of
   * the first): a restart during churn lost both its REGISTERs on paths through a relay killed a second
   * later, and waited the whole request timeout for them (24 s of a 36 s start in the lab); another lost
   * the second send too, to a relay killed just after it. The same mailbox, a newer timestamp each: the
   * relay takes whichever comes first and refuses older ones as stale; no new mailbox is made.
   */
  registerHedgeMs?: number
  /**
   * Steady mode (version 2): the relay pushes one block every this many ms, an item or PADDING; 0 or
   * absent: version 1 (stock and acknowledge as needed). The privacy level sets it (node/privacy.ts).
   */
  pushPeriodMs?: number
  /** Steady mode: the mean gap of the owner's SYNCs (a Poisson process); each brings SYNC_BLOCKS (3) blocks. */
  syncGapMs?: number
  /**
   * A DEPOSIT's answer comes back through a slow reply block (its mixes hold it longer: node/privacy.ts
   * `storedMixDelayMs`, onion SPEC.md section 15) and waits this much longer than requestTimeoutMs
   * (privacy.ts `storedAnswerAllowanceMs`). Absent or 0: an ordinary reply block, the ordinary timeout.
   */
  depositAllowanceMs?: number
}

export interface MailboxAddress {
  /** The relay's transport key (32 bytes). */
  relay: Uint8Array
  mailboxId: Uint8Array
}

export interface MailboxClientInit {
  onion: OnionClient
  keys: MailboxKeys
  /** The relays usable now. */
  relays: () => PathRelay[]
  /** The entry relay's peer id (never a mailbox of ours). */
  entryPeerId: () => string | undefined
  /**
   * The user's guards (peer ids, node/guards.ts): a new mailbox goes on none of them while another
   * relay is left. Any guard may become the entry relay (the first one down moves the link to the
   * next), and a mailbox on the entry relay cannot be registered or fetched (`register`): what waits
   * in it would wait until the link moves again, which for a guard can be weeks.
   */
  guards?: () => Iterable<string>
  /** The /16 (or another grouping) of a relay, for diversity; undefined when unknown. */
  subnetOf?: (relay: PathRelay) => string | undefined
  /**
   * When a reply block over these relays stops working: the earliest time one of them retires the
   * onion key the block was built with (from their descriptors). Without it, `stockTtlMs` after now.
   */
  blockExpiry?: (path: string[]) => number | undefined
  /** The current signed name record, handed to mailbox relays to republish. */
  record: () => Uint8Array
  /** A pushed item. Resolves true once it is safely handled (stored, or dropped as a replay): then it is acknowledged. */
  onItem: (item: Uint8Array, from: MailboxAddress) => Promise<boolean>
  want?: number
  timing?: Partial<MailboxTiming>
  now?: () => number
  onWarning?: (message: string) => void
  /** uniform in [0, 1) for the SYNC gaps (default crypto; tests seed it) */
  uniform?: () => number
  /** timers of the SYNC schedule (default setTimeout; tests pass a fake clock's) */
  timers?: { set: (fn: () => void, ms: number) => unknown, clear: (timer: unknown) => void }
}

export class MailboxUnavailableError extends Error {
  constructor (message: string) { super(message); this.name = 'MailboxUnavailableError' }
}

/** A reply block we believe a mailbox relay holds: when it stops working, and the relays it goes over. */
interface Stocked { expires: number, path: string[] }

/**
 * A mailbox in use. `acks`: item ids handled and not yet acknowledged; `ackQueued`: an ACK packet is
 * waiting to leave (behind cover traffic's ticks, node/cover.ts), so new ids wait for the next one.
 */
interface Live {
  key: MailboxKey
  pair: MailboxKeyPair
  stocked: Stocked[]
  registered: boolean
  acks?: Uint8Array[]
  ackQueued?: boolean
  waiting?: number
  /** the relay's mailbox version as found by the probe since the last REGISTER; undefined: not known yet */
  version?: 1 | 2
  /** a probe is under way */
  probing?: boolean
  /** the next steady SYNC's timer */
  syncTimer?: unknown
}

function hex (b: Uint8Array): string { return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex') }

export class MailboxClient {
  private readonly init: MailboxClientInit
  private readonly timing: MailboxTiming
  private readonly now: () => number
  private readonly live = new Map<string, Live>()
  private readonly log = logger('p2pchat:mailboxes')
  private timer: unknown
  private stopped = false
  readonly stats = { pushes: 0, acked: 0, stocked: 0, registered: 0, failures: 0, retired: 0, released: 0, syncs: 0, padding: 0, fallbackV1: 0 }
  /** relays (peer ids) already warned about as version 1 only */
  private readonly warnedV1 = new Set<string>()
  private readonly uniform: () => number
  private readonly timers: { set: (fn: () => void, ms: number) => unknown, clear: (timer: unknown) => void }
  /** The start's REGISTERs under way (`registerHedged`): each told of relays found dead (`avoid`). */
  private readonly hedges = new Map<Live, (dead: Set<string>) => void>()
  /** DEPOSITs waiting for their answer: each told of relays found dead (`avoid`), to give up early. */
  private readonly deposits = new Set<(dead: Set<string>) => void>()

  constructor (init: MailboxClientInit) {
    this.init = init
    this.now = init.now ?? Date.now
    this.uniform = init.uniform ?? (() => randomBytes(6).readUIntBE(0, 6) / 2 ** 48)
    this.timers = init.timers ?? {
      set: (fn, ms) => { const t = setTimeout(fn, ms); t.unref(); return t },
      clear: (t) => { clearTimeout(t as ReturnType<typeof setTimeout>) }
    }
    this.timing = {
      stockLevel: DEFAULT_STOCK_LEVEL,
      stockTtlMs: DEFAULT_STOCK_TTL_MS,
      stockIntervalMs: DEFAULT_STOCK_INTERVAL_MS,
      requestTimeoutMs: DEFAULT_REQUEST_TIMEOUT_MS,
      reregisterMs: DEFAULT_REREGISTER_MS,
      lateAnswerMs: DEFAULT_LATE_ANSWER_MS,
      drainMs: DEFAULT_DRAIN_MS,
      itemAgeMs: DEFAULT_ITEM_AGE_MS,
      ...init.timing
    }
  }

  private relay (address: Uint8Array): PathRelay | undefined {
    return this.init.relays().find(r => Buffer.compare(r.address, address) === 0)
  }

  /** The relays of the mailboxes held, in use or draining (peer ids): the entry relay should be none of them. */
  relayPeerIds (): string[] {
    return this.init.keys.all().flatMap(k => { const r = this.relay(k.relay); return r == null ? [] : [r.peerId] })
  }

  /** The mailboxes to name in the name record: registered ones in use (not draining). */
  addresses (): MailboxAddress[] {
    return [...this.live.values()].filter(l => l.registered && l.key.retiredAt == null).map(l => ({ relay: l.key.relay, mailboxId: l.key.id }))
  }

  /** Retired mailboxes still fetched (until nothing can wait in them). */
  draining (): MailboxAddress[] {
    return [...this.live.values()].filter(l => l.key.retiredAt != null).map(l => ({ relay: l.key.relay, mailboxId: l.key.id }))
  }

  /**
   * Once `want` mailboxes in use are registered: retires those in use that are not (their relay down,
   * or our entry relay) and those beyond `want`, the newest first (the oldest are in the most records).
   */
  private retireExtras (want: number): void {
    const inUse = [...this.live.values()].filter(l => l.key.retiredAt == null)
    const registered = inUse.filter(l => l.registered).sort((a, b) => a.key.createdAt - b.key.createdAt)
    if (registered.length < want) return
    const extra = [...inUse.filter(l => !l.registered), ...registered.slice(want)]
    const now = this.now()
    for (const l of extra) {
      this.log('mailbox %s retired (%s): still fetched while something may wait in it', hex(l.key.id).slice(0, 8), l.registered ? 'one too many' : 'not registered')
      this.init.keys.retire(l.key.id, now)
      l.key.retiredAt = now
      this.stats.retired++
    }
  }

  /**
   * Draining mailboxes past `drainMs` (no record names them any more): released once a STOCKED (or
   * REGISTERED) answer said nothing waits; erased unasked `drainMs + itemAgeMs` after retirement
   * (whatever waited there has expired). Their keys are erased.
   */
  private release (): void {
    const now = this.now()
    for (const [id, l] of this.live) {
      const retiredAt = l.key.retiredAt
      if (retiredAt == null || retiredAt + this.timing.drainMs > now) continue
      const empty = l.registered && l.waiting === 0
      if (!empty && retiredAt + this.timing.drainMs + this.timing.itemAgeMs > now) continue
      this.live.delete(id)
      this.log('mailbox %s released: drained', id.slice(0, 8))
      this.init.keys.remove(l.key.id)
      this.stats.released++
    }
  }

  /**
   * Makes sure `want` mailboxes are registered (reusing the stored ones whose relays are still live),
   * then stocks them. Resolves with their addresses; throws MailboxUnavailableError when none could be
   * registered.
   * `chosen`: called once, as the first REGISTERs of this start leave: the mailboxes they name (the
   * record they carry, `init.record()`) are known from then on, so the caller may publish that record
   * while they are answered (node/chat-node.ts `join`).
   */
  async start (opts: { chosen?: () => void } = {}): Promise<MailboxAddress[]> {
    let told = false
    const chosen = (): void => { if (!told) { told = true; opts.chosen?.() } }
    this.stopped = false
    const want = this.init.want ?? DEFAULT_MAILBOXES
    // Every mailbox of ours is kept in use, also one whose relay is not live now (killed, restarting, or
    // not yet heard on gossip) or is our entry relay: senders holding a record of ours that names it keep
    // depositing there, so it is fetched again once it can be (upkeep registers it then; `register`
    // refuses one on our entry relay). Meanwhile it is not named in the record and others replace it.
    // retired ones too, while something may wait in them (draining); older ones are erased
    this.init.keys.erase(this.now() - this.timing.drainMs - this.timing.itemAgeMs)
    for (const key of this.init.keys.all()) {
      this.log('mailbox %s on relay %s kept from the last run%s', hex(key.id).slice(0, 8), hex(key.relay).slice(0, 8), key.retiredAt != null ? ' (retired, draining)' : '')
      this.live.set(hex(key.id), { key, pair: mailboxKeyPairFromSeed(key.seed), stocked: [], registered: false })
    }
    // the record is published beside these REGISTERs only when they are likely to hold (every mailbox
    // in use is one of them, on a live relay other than the entry relay); else after the start, as before
    if (this.allIn([...this.live.values()]) && [...this.live.values()].some(l => l.key.retiredAt == null)) chosen()
    await Promise.all([...this.live.values()].map(async l => await this.registerHedged(l).catch((err: Error) => { this.log('registering a kept mailbox failed: %s', err.message) })))
    // the mailboxes still missing are registered at once, not one after another: a REGISTER whose path
    // crosses a relay that just died waits the whole request timeout, and a restart during churn met
    // two of them in a row (33 s of a 42 s start in the lab)
    for (let round = 0; round < want * 3 && this.addresses().length < want; round++) {
      const batch: Live[] = []
      for (let k = this.addresses().length; k < want; k++) {
        const relay = this.pickRelay()
        if (relay == null) break
        const pair = generateMailboxKeyPair()
        const key = this.init.keys.add({ id: pair.mailboxId, relay: relay.address, seed: pair.seed, publicKey: pair.publicKey }, this.now())
        this.log('mailbox %s made on relay %s', hex(key.id).slice(0, 8), hex(relay.address).slice(0, 8))
        const l: Live = { key, pair, stocked: [], registered: false }
        this.live.set(hex(key.id), l)
        batch.push(l)
      }
      if (batch.length === 0) {
        // every candidate already holds a mailbox of ours: one that did not answer in time (a loaded
        // network) is asked again rather than the start failing
        const pending = [...this.live.values()].filter(l => !l.registered && l.key.retiredAt == null)
        if (pending.length === 0) break
        await this.register(pending[round % pending.length]).catch((err: Error) => { this.log('registering a mailbox again failed: %s', err.message) })
        continue
      }
      if (this.allIn(batch)) chosen()
      await Promise.all(batch.map(async l => { await this.registerHedged(l).catch((err: Error) => { this.log('registering a mailbox failed: %s', err.message) }) }))
    }
    this.retireExtras(want)
    const addresses = this.addresses()
    if (addresses.length === 0) throw new MailboxUnavailableError('no relay accepted a mailbox (too few relays, or none answered)')
    if (addresses.length < want) this.init.onWarning?.(`only ${addresses.length} of ${want} mailboxes could be registered: messages to you depend on fewer relays`)
    // steady mode: the probes go on in the background (a round trip through the level's delays each:
    // ~15-20 s at `high`, which awaited here made 20 users' start 715 s in bench/anonymity.ts)
    if (this.steady) this.probeAll()
    else await this.topUp()
    const upkeep = (): void => {
      this.timer = this.timers.set(() => {
        if (this.stopped) return
        this.tick().catch(err => { this.log('mailbox upkeep: %s', (err as Error).message) })
        upkeep()
      }, this.timing.stockIntervalMs)
    }
    upkeep()
    return addresses
  }

  /**
   * Every mailbox in use (not retired) is registered or about to be in `wave`, and the relays of
   * `wave`'s can take a REGISTER (live, not our entry relay): the record `init.record()` gives now is
   * the one the start ends with, unless a REGISTER is refused or unanswered.
   */
  private allIn (wave: Live[]): boolean {
    const entry = this.init.entryPeerId()
    return [...this.live.values()].every(l => l.key.retiredAt != null || l.registered || wave.includes(l)) &&
      wave.every(l => { const relay = this.relay(l.key.relay); return l.key.retiredAt != null || (relay != null && relay.peerId !== entry) })
  }

  stop (): void {
    this.stopped = true
    if (this.timer != null) this.timers.clear(this.timer)
    this.timer = undefined
    for (const l of this.live.values()) this.stopSyncs(l)
  }

  /** Steady mode is asked for (the level sets a push period). */
  private get steady (): boolean {
    return (this.timing.pushPeriodMs ?? 0) > 0
  }

  /**
   * The version probe (steady mode): a SYNC with a reply block. SYNCED: version 2, steady SYNCs from
   * now on. No answer or another answer: version 1 for this mailbox until its next REGISTER (counted,
   * said once per relay), stocked the version 1 way.
   */
  private async probe (l: Live): Promise<void> {
    if (!this.steady || l.probing === true || l.version != null || !l.registered || this.stopped) return
    const relay = this.relay(l.key.relay)
    if (relay == null) return
    l.probing = true
    try {
      const answer = await this.ask(relay, this.syncRequest(l, relay))
      if (answer.kind !== 'synced') throw new MailboxUnavailableError(`the probe was answered ${answer.kind}`)
      l.version = 2
      l.waiting = answer.waiting
      this.scheduleSync(l)
    } catch (err) {
      if (!l.registered || this.stopped) return
      l.version = 1
      this.stats.fallbackV1++
      this.log('mailbox relay %s: no SYNCED answer (%s): version 1 until the next REGISTER', relay.peerId, (err as Error).name)
      if (!this.warnedV1.has(relay.peerId)) {
        this.warnedV1.add(relay.peerId)
        this.init.onWarning?.(`mailbox relay ${relay.peerId.slice(-8)} did not answer a version 2 SYNC: that mailbox is fetched the version 1 way (stock and ACK as needed), which shows the relay when you receive mail`)
      }
      await this.topUp()
    } finally {
      l.probing = false
    }
  }

  /** A SYNC of `l`: 3 fresh reply blocks, up to 22 ids to acknowledge (taken from `l.acks`). */
  private syncRequest (l: Live, relay: PathRelay): Uint8Array {
    const blocks: Uint8Array[] = []
    for (let i = 0; i < SYNC_BLOCKS; i++) {
      const block = this.init.onion.replyBlock((payload) => { this.onPush(l, payload, block.id) }, this.timing.stockTtlMs, [relay.peerId])
      blocks.push(block.surb)
    }
    const ids = (l.acks ?? []).splice(0, SYNC_ACK_SLOTS)
    this.stats.acked += ids.length
    this.stats.syncs++
    return buildSync(l.pair, blocks, ids, this.timing.pushPeriodMs ?? 0, this.now())
  }

  /** The next steady SYNC of `l`, an exponential gap of mean `syncGapMs` from now. */
  private scheduleSync (l: Live): void {
    this.stopSyncs(l)
    if (this.stopped || l.version !== 2) return
    const mean = this.timing.syncGapMs ?? 3 * (this.timing.pushPeriodMs ?? 0)
    // whole ms: timers and the signed timestamps are integers
    const gap = Math.max(1, Math.round(-Math.log(1 - this.uniform()) * mean))
    l.syncTimer = this.timers.set(() => {
      l.syncTimer = undefined
      if (this.stopped || l.version !== 2 || this.live.get(hex(l.key.id)) !== l) return
      const relay = this.relay(l.key.relay)
      if (relay != null) {
        try {
          // no answer asked: the relay answers with its pushes; the packet takes a cover tick
          this.init.onion.send(relay, SERVICE_MAILBOX, this.syncRequest(l, relay))
        } catch (err) {
          this.stats.failures++
          this.log('a steady SYNC could not be sent: %s', (err as Error).message)
        }
      }
      this.scheduleSync(l)
    }, gap)
  }

  private stopSyncs (l: Live): void {
    if (l.syncTimer != null) this.timers.clear(l.syncTimer)
    l.syncTimer = undefined
  }

  /**
   * A relay for a new mailbox: of the exit role, the position complementary to the guard's
   * (protocols/onion/SPEC.md "Grinding roles": an operator that grinds its relays to the entry role
   * then holds no mailbox, and no split of its /16s between the roles beats its share of /16s squared);
   * not the entry relay, not one we already use, another /16 where possible. Drawn by /16 with the
   * position weights (paths.ts `drawForPosition` over all relays: a hundred relays in one /16 weigh
   * what one relay does); an exit in a /16 we use before a relay of the entry role; only when no exit
   * is left, any relay, with a warning: one that is not a guard of ours before one in a /16 we do not
   * use, and a guard (never the entry relay) only when nothing else is left, with a second warning.
   * A guard may become the entry relay, and a mailbox there cannot be fetched (the lab's churn lost 8
   * to 10 messages this way: a mailbox placed on the second guard, which became the entry relay when
   * the first went down, held every message deposited in it until the end of the run).
   */
  private pickRelay (): PathRelay | undefined {
    const entry = this.init.entryPeerId()
    const used = new Set([...this.live.values()].map(l => hex(l.key.relay)))
    const usedSubnets = new Set([...this.live.values()].map(l => { const r = this.relay(l.key.relay); return r == null ? undefined : this.init.subnetOf?.(r) }).filter(s => s != null))
    const guards = new Set(this.init.guards?.() ?? [])
    const all = this.init.relays()
    const isCandidate = (r: PathRelay): boolean => r.peerId !== entry && !used.has(hex(r.address))
    const isFresh = (r: PathRelay): boolean => { const s = this.init.subnetOf?.(r); return s == null || !usedSubnets.has(s) }
    const notGuard = (r: PathRelay): boolean => !guards.has(r.peerId)
    const isExit = (r: PathRelay): boolean => relayRole(r.peerId) === 'exit'
    // guards are of the entry role (node/guards.ts): `notGuard` only matters for a guard list of old
    const exit = drawForPosition(all, isExit, r => isCandidate(r) && notGuard(r) && isFresh(r)) ?? drawForPosition(all, isExit, r => isCandidate(r) && notGuard(r))
    if (exit != null) return exit
    const candidates = all.filter(isCandidate)
    const unguarded = candidates.filter(notGuard)
    const pool = [unguarded.filter(isFresh), unguarded, candidates.filter(isFresh), candidates].find(p => p.length > 0) ?? []
    if (pool.length > 0) this.init.onWarning?.('too few exit relays: a mailbox goes on a relay of the entry role, where an operator of many relays that made them all entry relays can hold both ends of a message\'s path (start more relays)')
    if (pool.length > 0 && !pool.some(notGuard)) this.init.onWarning?.('too few relays: a mailbox goes on one of your guards; while that guard is your entry relay the mailbox cannot be fetched, and messages in it wait until your link moves (start more relays)')
    return drawByGroup(pool)
  }

  /**
   * `onLate`: an answer that comes after the timeout (SPEC.md section 3, DEPOSIT: "late answers").
   * `onSent`: the relays (peer ids) the request's path and reply block cross, once it is built.
   * `slow`: the answer comes through a slow reply block and gets `depositAllowanceMs` more time.
   */
  private async ask (relay: PathRelay, request: Uint8Array, opts: { onLate?: (answer: MailboxAnswer) => void, onSent?: (path: string[]) => void, slow?: boolean } = {}): Promise<MailboxAnswer> {
    const { onLate, onSent } = opts
    const slow = opts.slow === true && (this.timing.depositAllowanceMs ?? 0) > 0
    const late = onLate == null
      ? undefined
      : {
          ms: this.timing.lateAnswerMs,
          onAnswer: (payload: Uint8Array) => {
            const d = decodeMailboxPayload(payload)
            if (d.ok) onLate(d.answer)
            else this.log('a late mailbox answer did not decode: %s', d.reason)
          }
        }
    const timeoutMs = this.timing.requestTimeoutMs + (slow ? this.timing.depositAllowanceMs ?? 0 : 0)
    const payload = await this.init.onion.request(relay, SERVICE_MAILBOX, request, { timeoutMs, late, onSent, ...(slow ? { slowReply: true } : {}) })
    const decoded = decodeMailboxPayload(payload)
    if (!decoded.ok) throw new MailboxUnavailableError(`a mailbox answer did not decode: ${decoded.reason}`)
    return decoded.answer
  }

  /**
   * `register`, sent again over a new path every registerHedgeMs while none is answered, and at once
   * when a relay on the path of a send still unanswered is found dead (`avoid`; the next timed send
   * then waits registerHedgeMs from this one): REGISTER_SENDS in all, however they came. Resolves with
   * the first success, rejects once every send made failed (at once when the first fails before a
   * second is sent, or when a later send finds the mailbox's relay gone).
   */
  private async registerHedged (l: Live): Promise<void> {
    const hedgeMs = this.timing.registerHedgeMs ?? Math.ceil(this.timing.requestTimeoutMs / 3)
    await new Promise<void>((resolve, reject) => {
      let pending = 0
      let sent = 0
      let timer: ReturnType<typeof setTimeout> | undefined
      /** the relays each unanswered send's path crosses (dropped once one of them is found dead) */
      const paths: string[][] = []
      const end = (): void => { clearTimeout(timer); this.hedges.delete(l) }
      const done = (): void => { end(); resolve() }
      const fail = (err: unknown): void => { if (--pending === 0) { end(); reject(err) } }
      const send = (why?: string): void => {
        pending++
        const nth = ++sent
        if (why != null) this.log('REGISTER %s: sending it again over a new path (%d of %d)', why, nth, REGISTER_SENDS)
        // a re-send that finds the mailbox's relay gone silent since the first send (killed as the start
        // began, in the lab's churn): the start does not wait out the first send's timeout for it (the
        // relay's return took 18 s of a 26 s restart) but registers another mailbox; this one is retired
        // and still fetched (draining): upkeep registers it again once its relay is back
        this.register(l, (path) => { paths.push(path) }).then(done, (err: unknown) => { if (nth > 1 && this.relay(l.key.relay) == null) { end(); reject(err) } else fail(err) })
        clearTimeout(timer)
        if (nth < REGISTER_SENDS) {
          timer = setTimeout(() => {
            if (this.stopped || l.registered || !this.live.has(hex(l.key.id))) return
            send(`unanswered after ${hedgeMs} ms`)
          }, hedgeMs)
        }
      }
      // a relay found dead on the path of a send still under way: that send is lost, the next goes now
      // (the lab's churn: sends went 1.2-1.4 s after a relay was killed, before the client could know it,
      // and the next waited for the hedge tick)
      this.hedges.set(l, (dead) => {
        const lost = paths.filter(p => p.some(r => dead.has(r)))
        if (lost.length === 0) return
        for (const p of lost) paths.splice(paths.indexOf(p), 1)
        if (sent < REGISTER_SENDS && !this.stopped && !l.registered && this.live.has(hex(l.key.id))) send(`lost on a path through a relay found dead (${lost.length})`)
      })
      send()
    })
  }

  private async register (l: Live, onSent?: (path: string[]) => void): Promise<void> {
    const relay = this.relay(l.key.relay)
    if (relay == null) throw new MailboxUnavailableError('the mailbox relay is not live')
    // never (re)start a mailbox on our own entry relay (it would see our packets and our mailbox's):
    // it waits, kept, until our entry relay is another one (a new entry relay registers every mailbox)
    if (!l.registered && relay.peerId === this.init.entryPeerId()) throw new MailboxUnavailableError('the mailbox relay is our entry relay')
    const t0 = Date.now()
    const answer = await this.ask(relay, buildRegister(l.pair, this.init.record(), this.now()), { onSent }).catch((err: Error) => {
      this.log('REGISTER at %s: no answer after %d ms (%s)', relay.peerId, Date.now() - t0, err.name)
      throw err
    })
    if (answer.kind !== 'registered') {
      // stale: the relay holds a newer REGISTER of ours (two were under way and the mixes reordered
      // them) or our clocks differ; the mailbox is still ours and items may wait in it: kept, and
      // registered again by upkeep with a fresh timestamp (retiring it lost every item in it)
      if (answer.kind === 'refused' && answer.reason === 'stale') throw new MailboxUnavailableError('mailbox refused: stale')
      this.log('mailbox %s: REGISTER answered %s', hex(l.key.id).slice(0, 8), answer.kind === 'refused' ? `refused (${answer.reason})` : answer.kind)
      if (answer.kind === 'refused') this.init.keys.retire(l.key.id, this.now())
      this.live.delete(hex(l.key.id))
      throw new MailboxUnavailableError(`mailbox refused: ${answer.kind === 'refused' ? answer.reason : answer.kind}`)
    }
    l.registered = true
    l.waiting = answer.waiting
    this.log('mailbox %s registered on relay %s, %d items waiting%s', hex(l.key.id).slice(0, 8), hex(l.key.relay).slice(0, 8), answer.waiting, l.key.retiredAt != null ? ' (retired, draining)' : '')
    // a REGISTER ends the relay's steady mode: probe again
    l.version = undefined
    this.stopSyncs(l)
    // the relay forgets the blocks stocked before a REGISTER (they may end at a previous run's address)
    l.stocked = []
    this.init.keys.markRegistered(l.key.id, this.now())
    l.key.registeredAt = this.now()
    this.stats.registered++
  }

  /**
   * Re-registers every mailbox (with the record as it is now: new onion keys, a new entry relay), then
   * stocks them again: a REGISTER makes the relay drop the blocks it held and push what waits anew.
   */
  async refreshRecord (): Promise<void> {
    await Promise.all([...this.live.values()].map(async l => await this.register(l).catch(() => {})))
    if (this.steady) this.probeAll()
    else await this.topUp()
  }

  /** Probes every registered mailbox whose relay's version is not known yet, without waiting. */
  private probeAll (): void {
    for (const l of this.live.values()) this.probe(l).catch((err: Error) => { this.log('probe: %s', err.message) })
  }

  private async tick (): Promise<void> {
    if (this.stopped) return
    const now = this.now()
    for (const l of [...this.live.values()]) {
      if (!l.registered || (l.key.registeredAt ?? 0) + this.timing.reregisterMs < now) await this.register(l).catch(() => {})
    }
    this.retireExtras(this.init.want ?? DEFAULT_MAILBOXES)
    this.release()
    // at least one block each round: the relay's answer tells how many it really holds (and how many items wait)
    if (this.steady) this.probeAll()
    await this.topUp(1)
  }

  /**
   * Relays found dead (peer ids): a REGISTER of the start under way over one of them is sent again over
   * a new path at once (`registerHedged`); blocks over them are counted gone, and the stock is topped up
   * with blocks that avoid them (the relay pushes through its newest blocks first).
   */
  avoid (dead: Set<string>): void {
    for (const resend of [...this.hedges.values()]) resend(dead)
    for (const giveUp of [...this.deposits]) giveUp(dead)
    let dropped = 0
    for (const l of this.live.values()) {
      const before = l.stocked.length
      l.stocked = l.stocked.filter(b => !b.path.some(p => dead.has(p)))
      dropped += before - l.stocked.length
    }
    if (dropped > 0) this.topUp().catch(() => {})
  }

  /** Stocks every registered mailbox up to the stock level, and at least `atLeast` blocks each. */
  async topUp (atLeast = 0): Promise<void> {
    const now = this.now()
    for (const l of this.live.values()) {
      l.stocked = l.stocked.filter(b => b.expires > now)
      // steady mode: only a mailbox found to be on a version 1 relay is stocked this way
      if (!l.registered || (this.steady && l.version !== 1)) continue
      let missing = Math.max(atLeast, this.timing.stockLevel - l.stocked.length)
      while (missing > 0 && !this.stopped) {
        const n = Math.min(missing, MAX_STOCK_BLOCKS_WITH_REPLY)
        try {
          this.stock(l, n)
        } catch (err) {
          this.stats.failures++
          this.log('stocking failed: %s', (err as Error).message)
          break
        }
        missing -= n
      }
    }
  }

  private stock (l: Live, n: number): void {
    const relay = this.relay(l.key.relay)
    if (relay == null) throw new MailboxUnavailableError('the mailbox relay is not live')
    const blocks: Uint8Array[] = []
    const made: Stocked[] = []
    for (let i = 0; i < n; i++) {
      const block = this.init.onion.replyBlock((payload) => { this.onPush(l, payload, block.id) }, this.timing.stockTtlMs, [relay.peerId])
      blocks.push(block.surb)
      made.push({ expires: Math.min(this.now() + this.timing.stockTtlMs, this.init.blockExpiry?.(block.path) ?? Number.POSITIVE_INFINITY), path: block.path })
    }
    // the STOCKED answer says how many blocks the relay holds for us: if it holds fewer than we count
    // (it restarted, or pushes through blocks over a dead relay used them up), our count follows it and
    // the stock is topped up. No answer at all: nothing is known to be held, the next round stocks anew.
    this.init.onion.request(relay, SERVICE_MAILBOX, buildStock(l.pair, blocks, this.now()), { timeoutMs: this.timing.requestTimeoutMs }).then(payload => {
      const d = decodeMailboxPayload(payload)
      if (!d.ok || d.answer.kind !== 'stocked') return
      l.waiting = d.answer.waiting
      if (d.answer.blocks < l.stocked.length) {
        l.stocked = l.stocked.sort((a, b) => b.expires - a.expires).slice(0, d.answer.blocks)
        this.topUp().catch(() => {})
      }
    }, (err: Error) => {
      this.stats.failures++
      this.log('a STOCK got no answer: %s', err.name)
      l.stocked = l.stocked.filter(b => !made.includes(b))
    })
    l.stocked.push(...made)
    this.stats.stocked += n
  }

  private onPush (l: Live, payload: Uint8Array, _blockId: Uint8Array): void {
    // a stopping client takes nothing more: the user's process no longer shows what it would store (the
    // CLI has detached), and an item taken and acknowledged now would be in the store but never shown
    // (the churn lab saw one: receipted, never printed). Not acknowledged, it is pushed to the next run.
    if (this.stopped) return
    const decoded = decodeMailboxPayload(payload)
    if (decoded.ok && decoded.answer.kind === 'padding' && Buffer.compare(decoded.answer.mailboxId, l.key.id) === 0) {
      // a steady push with nothing in it: it only keeps the relay's pushes steady
      this.stats.padding++
      l.waiting = decoded.answer.waiting
      return
    }
    // a block was used: the relay pushes through its newest block first
    if (l.version !== 2 && l.stocked.length > 0) l.stocked.splice(l.stocked.indexOf(l.stocked.reduce((a, b) => b.expires > a.expires ? b : a)), 1)
    if (!decoded.ok || decoded.answer.kind !== 'push' || Buffer.compare(decoded.answer.mailboxId, l.key.id) !== 0) {
      this.log('dropped a push that did not decode')
      return
    }
    const push = decoded.answer
    this.stats.pushes++
    if (l.version === 2) l.waiting = push.waiting
    this.init.onItem(push.item, { relay: l.key.relay, mailboxId: l.key.id }).then(handled => {
      if (handled) this.ack(l, push.itemId)
    }).catch(err => { this.log('handling a pushed item failed: %s', (err as Error).message) })
    // steady mode: the next SYNC brings blocks; nothing is sent because of a push
    if (l.version === 2) return
    // refill when half the stock is used, not after every push: one STOCK of several blocks instead of
    // one packet per push (with cover traffic each packet waits for a cover tick: a backlog pushed at
    // once would otherwise need two packets per item)
    const now = this.now()
    if (l.stocked.filter(b => b.expires > now).length <= Math.floor(this.timing.stockLevel / 2)) this.topUp().catch(() => {})
  }

  /**
   * Acknowledges `itemId`: ids handled while an ACK of this mailbox waits to leave (cover traffic) go
   * together in the next one (up to MAX_ACK_IDS each), so a backlog is acknowledged in a few packets.
   */
  private ack (l: Live, itemId: Uint8Array): void {
    ;(l.acks ??= []).push(itemId)
    // steady mode: the ids ride in the next SYNC (22 at most each)
    if (l.version === 2) return
    if (l.ackQueued !== true) this.flushAcks(l)
  }

  private flushAcks (l: Live): void {
    const relay = this.relay(l.key.relay)
    if (relay == null || l.acks == null || l.acks.length === 0) return
    const ids = l.acks.splice(0, MAX_ACK_IDS)
    l.ackQueued = true
    try {
      this.init.onion.send(relay, SERVICE_MAILBOX, buildAck(l.pair, ids, this.now()), {
        departed: () => {
          l.ackQueued = false
          if (!this.stopped) this.flushAcks(l)
        }
      })
      this.stats.acked += ids.length
    } catch (err) {
      // not sent: the relay pushes the items again later, and they are acknowledged then
      l.ackQueued = false
      this.log('acknowledging failed: %s', (err as Error).message)
    }
  }

  /**
   * DEPOSITs `item` in someone's mailbox and waits for the relay's answer: 'stored' once it is written
   * durably there; 'full' / 'unknown-mailbox' / 'too-large' are for the caller to try the other mailbox.
   * Throws MailboxUnavailableError (relay unknown, or a relay on the request's path or reply block
   * found dead while it waited: `avoid`), AnswerTimeoutError (after requestTimeoutMs +
   * depositAllowanceMs: the answer comes through a slow reply block), NoEntryRelayError.
   * `onLate`: after either error, the answer if it still comes within `lateAnswerMs` (a 'stored' then
   * means the item was stored after all: a network slower than the timeout is slow, not failing).
   */
  async deposit (to: MailboxAddress, item: Uint8Array, onLate?: (kind: MailboxAnswer['kind']) => void): Promise<MailboxAnswer['kind']> {
    const relay = this.relay(to.relay)
    if (relay == null) throw new MailboxUnavailableError('that mailbox\'s relay is not among the live relays')
    // The answer (STORED) comes back slowly: the relay pushes the item to its owner as it answers, and
    // the sender's ✓ must not arrive in step with that push (onion SPEC.md section 15). So that the
    // longer wait does not hold up trying the other mailbox when the way there is broken, a relay on
    // the path found dead ends the wait at once; an answer still coming is taken as a late one.
    let path: string[] = []
    let gaveUp = false
    let giveUp: ((dead: Set<string>) => void) | undefined
    const late = onLate == null ? undefined : (a: MailboxAnswer): void => { onLate(a.kind) }
    const asked = this.ask(relay, buildDeposit(to.mailboxId, item), { onLate: late, onSent: (p) => { path = p }, slow: true })
    const broken = new Promise<never>((_resolve, reject) => {
      giveUp = (dead) => {
        if (!path.some(p => dead.has(p))) return
        gaveUp = true
        reject(new MailboxUnavailableError('a relay on the way to that mailbox was found dead'))
      }
      this.deposits.add(giveUp)
    })
    asked.then(a => { if (gaveUp) late?.(a) }, () => {})
    try {
      return (await Promise.race([asked, broken])).kind
    } finally {
      if (giveUp != null) this.deposits.delete(giveUp)
    }
  }
}
