/**
 * The mailbox service a relay composes (SPEC.md sections 3-7): it takes the `request` of a service-0x01
 * body and the body's reply block, if any, and answers through that reply block; it pushes waiting items
 * through reply blocks the owner stocked, one item per block.
 *
 * - `handle(request, replyBlock)` never throws: a request that does not decode, a reply block of the wrong
 *   size, a store failure or a sender that throws is a counted drop (`stats().drops`).
 * - A DEPOSIT's `stored` answer is handed to `sendThroughReplyBlock` only after the item's transaction
 *   committed and an fdatasync of the WAL covered it (off the event loop; `settled()` waits for the
 *   deposits under way). A store or sync failure sends nothing.
 * - Reply blocks live in memory only: at most `maxBlocksPerMailbox` per mailbox (the oldest is evicted) and
 *   `maxBlocksPerRelay` in all (further blocks are refused), each dropped `blockLifetimeMs` after it was
 *   stocked. A restarted relay holds no blocks: owners re-stock.
 * - Pushes take the oldest due item and the NEWEST held block first (the newest block is the likeliest to
 *   be alive: every relay on it still holds the epoch key it was built for).
 * - An item pushed and not acknowledged within `repushIntervalMs` goes again through a later block.
 * - A successful REGISTER is the owner (re)starting: it drops every block held for that mailbox (they may
 *   end at a transport key and entry relay of a previous run) and clears `last pushed at` of its items,
 *   so what went through those blocks is pushed again at once through the blocks stocked next.
 *   Only an authenticated ACK or the item age limit deletes an item.
 * - A timer (`sweepIntervalMs`, owned here, started by `start()`) expires items and idle mailboxes, drops
 *   dead blocks, re-pushes due items, and hands held name records to `onRecord` every `republishIntervalMs`.
 *
 * - Version 2 (SPEC.md section 11): an authenticated SYNC puts its mailbox in *steady* mode: the relay
 *   pushes through at most one held block every `pushPeriodMs` (the owner's figure from its latest SYNC),
 *   at fixed times from a random phase drawn at the first SYNC; each such push carries the oldest due
 *   item if one waits and a PADDING answer otherwise, so the pushes leave at the same times whether or
 *   not mail waits. In steady mode nothing else pushes: not a DEPOSIT, a STOCK nor the sweep. A REGISTER
 *   (a restarted owner, maybe an older version) ends steady mode; the owner's next SYNC starts it again.
 *   A tick with no block held pushes nothing (counted `steadyIdle`); a mailbox with no block and no SYNC
 *   for a block lifetime stops ticking.
 *
 * Payloads handed to `sendThroughReplyBlock` are the whole reply payload: `0x01 (service) ‖ answer`.
 */
import { randomBytes as cryptoRandomBytes } from 'node:crypto'
import {
  DEFAULT_BLOCK_LIFETIME_MS, DEFAULT_CLOCK_WINDOW_MS, DEFAULT_IDLE_AGE_MS, DEFAULT_ITEM_AGE_MS,
  DEFAULT_MAX_BLOCKS_PER_MAILBOX, DEFAULT_MAX_BLOCKS_PER_RELAY, DEFAULT_MAX_BYTES_PER_MAILBOX,
  DEFAULT_MAX_BYTES_PER_RELAY, DEFAULT_MAX_ITEMS_PER_MAILBOX, DEFAULT_MAX_ITEMS_PER_RELAY, DEFAULT_MAX_MAILBOXES,
  DEFAULT_REPUBLISH_INTERVAL_MS, DEFAULT_REPUSH_INTERVAL_MS, DEFAULT_SWEEP_INTERVAL_MS, ITEM_ID_BYTES, MAILBOX_SERVICE,
  MAX_ITEM, SURB_SIZE
} from './constants.ts'
import { decodeRequest, encodeAnswer, mailboxIdOf, verifySigned } from './codec.ts'
import type { AckRequest, DepositRequest, MailboxAnswer, RegisterRequest, RequestOp, StockRequest, SyncRequest } from './codec.ts'
import { InvalidMailboxOptionError } from './errors.ts'
import type { MailboxRow, MailboxStore, StoreLimits } from './store.ts'

/** A STOCK writes the owner's `last seen` only when the stored one is older than this (or 1 % of the idle age, if less): saves an fsync per STOCK. */
const LAST_SEEN_RESOLUTION_MS = 60_000

export interface MailboxServiceLimits extends StoreLimits {
  /** the largest item taken; larger ones are answered `too-large` (at most MAX_ITEM) */
  maxItemBytes: number
  itemAgeMs: number
  idleAgeMs: number
  /** owner timestamps further than this from the relay's clock are `stale` */
  clockWindowMs: number
  maxBlocksPerMailbox: number
  maxBlocksPerRelay: number
  blockLifetimeMs: number
  repushIntervalMs: number
  sweepIntervalMs: number
  republishIntervalMs: number
}

export const DEFAULT_LIMITS: Readonly<MailboxServiceLimits> = Object.freeze({
  maxItemsPerMailbox: DEFAULT_MAX_ITEMS_PER_MAILBOX,
  maxBytesPerMailbox: DEFAULT_MAX_BYTES_PER_MAILBOX,
  maxItemsPerRelay: DEFAULT_MAX_ITEMS_PER_RELAY,
  maxBytesPerRelay: DEFAULT_MAX_BYTES_PER_RELAY,
  maxMailboxes: DEFAULT_MAX_MAILBOXES,
  maxItemBytes: MAX_ITEM,
  itemAgeMs: DEFAULT_ITEM_AGE_MS,
  idleAgeMs: DEFAULT_IDLE_AGE_MS,
  clockWindowMs: DEFAULT_CLOCK_WINDOW_MS,
  maxBlocksPerMailbox: DEFAULT_MAX_BLOCKS_PER_MAILBOX,
  maxBlocksPerRelay: DEFAULT_MAX_BLOCKS_PER_RELAY,
  blockLifetimeMs: DEFAULT_BLOCK_LIFETIME_MS,
  repushIntervalMs: DEFAULT_REPUSH_INTERVAL_MS,
  sweepIntervalMs: DEFAULT_SWEEP_INTERVAL_MS,
  republishIntervalMs: DEFAULT_REPUBLISH_INTERVAL_MS
})

export interface MailboxServiceInit {
  /** opened and closed by the caller (`MailboxStore.open(MailboxStore.pathIn(dataDir))`) */
  store: MailboxStore
  /** builds a reply packet from `block` with `payload` and sends it to the block's first hop; may throw */
  sendThroughReplyBlock: (block: Uint8Array, payload: Uint8Array) => void
  /** a held mailbox's signed name record, to (re)publish; called on REGISTER with a new record and every republish interval */
  onRecord?: (mailboxId: Uint8Array, record: Uint8Array) => void
  limits?: Partial<MailboxServiceLimits>
  now?: () => number
  /** source of item ids (16 bytes) */
  randomBytes?: (n: number) => Uint8Array
  /** uniform in [0, 1): the phase of a steady mailbox's pushes (default crypto) */
  uniform?: () => number
  /** timers of the steady pushes (default setTimeout; tests pass a fake clock's, with `now` from the same clock) */
  timers?: { set: (fn: () => void, ms: number) => unknown, clear: (timer: unknown) => void }
}

/** A mailbox in steady mode (version 2): its next push time and period. */
interface Steady { periodMs: number, nextAt: number, lastSyncAt: number }

/** Steady ticks run back to back at most this often in one timer callback (a timer that fired very late). */
const MAX_TICKS_PER_WAKE = 1000

export interface MailboxStats {
  /** requests by op and outcome, e.g. requests.deposit['mailbox-full'] */
  requests: Record<RequestOp, Record<string, number>>
  /** drops by reason: decode reasons, 'reply-block', 'store-error', 'send-failed', 'block-evicted', ... */
  drops: Record<string, number>
  pushes: number
  /** version 2: steady pushes that carried nothing (PADDING) */
  paddingPushes: number
  /** version 2: steady ticks with no block held (nothing pushed) */
  steadyIdle: number
  /** version 2: mailboxes in steady mode now */
  steadyMailboxes: number
  expiredItems: number
  removedMailboxes: number
  mailboxes: number
  items: number
  bytes: number
  blocks: number
}

interface HeldBlock { block: Uint8Array, expiresAt: number }

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')

function sameBytes (a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0
}

function checkLimits (limits: MailboxServiceLimits): void {
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value < 1) throw new InvalidMailboxOptionError(`${name} must be a positive integer`)
  }
  if (limits.maxItemBytes > MAX_ITEM) throw new InvalidMailboxOptionError(`maxItemBytes must be at most ${MAX_ITEM}`)
}

export class MailboxService {
  readonly limits: Readonly<MailboxServiceLimits>
  readonly #store: MailboxStore
  readonly #send: (block: Uint8Array, payload: Uint8Array) => void
  readonly #onRecord: ((mailboxId: Uint8Array, record: Uint8Array) => void) | undefined
  readonly #now: () => number
  readonly #random: (n: number) => Uint8Array
  /** mailbox id (hex) -> blocks, oldest first (pushes take from the end, evictions and expiry from the front) */
  readonly #blocks = new Map<string, HeldBlock[]>()
  #blockCount = 0
  /** deposits waiting for their sync (`settled()`) */
  readonly #depositing = new Set<Promise<void>>()
  #timer: ReturnType<typeof setInterval> | undefined
  #lastRepublish = Number.NEGATIVE_INFINITY
  readonly #requests: Record<RequestOp, Record<string, number>> = { deposit: {}, register: {}, stock: {}, ack: {}, sync: {} }
  readonly #uniform: () => number
  readonly #timers: { set: (fn: () => void, ms: number) => unknown, clear: (timer: unknown) => void }
  /** mailbox id (hex) -> steady schedule (version 2) */
  readonly #steady = new Map<string, Steady>()
  #steadyTimer: unknown
  #steadyTimerAt = Number.POSITIVE_INFINITY
  #paddingPushes = 0
  #steadyIdle = 0
  readonly #drops: Record<string, number> = {}
  #pushes = 0
  #expiredItems = 0
  #removedMailboxes = 0

  constructor (init: MailboxServiceInit) {
    this.limits = Object.freeze({ ...DEFAULT_LIMITS, ...init.limits })
    checkLimits(this.limits)
    this.#store = init.store
    this.#send = init.sendThroughReplyBlock
    this.#onRecord = init.onRecord
    this.#now = init.now ?? Date.now
    this.#random = init.randomBytes ?? ((n) => new Uint8Array(cryptoRandomBytes(n)))
    this.#uniform = init.uniform ?? (() => cryptoRandomBytes(6).readUIntBE(0, 6) / 2 ** 48)
    this.#timers = init.timers ?? {
      set: (fn, ms) => { const t = setTimeout(fn, ms); t.unref(); return t },
      clear: (t) => { clearTimeout(t as ReturnType<typeof setTimeout>) }
    }
  }

  /** Runs one sweep and starts the sweep timer. A second call does nothing. */
  start (): void {
    if (this.#timer != null) return
    // blocks live in memory only: whatever was pushed before this start went through blocks that are
    // gone, or may never have arrived; push it again through the first blocks stocked now
    try { this.#store.unmarkAllPushed() } catch { this.#drop('store-error') }
    this.sweep()
    this.#timer = setInterval(() => { this.sweep() }, this.limits.sweepIntervalMs)
    this.#timer.unref()
  }

  /** Stops the timer and forgets the stocked blocks (they are memory only). Safe to call twice. */
  stop (): void {
    if (this.#timer != null) clearInterval(this.#timer)
    this.#timer = undefined
    this.#blocks.clear()
    this.#blockCount = 0
    this.#steady.clear()
    if (this.#steadyTimer != null) this.#timers.clear(this.#steadyTimer)
    this.#steadyTimer = undefined
    this.#steadyTimerAt = Number.POSITIVE_INFINITY
  }

  stats (): MailboxStats {
    let totals = { mailboxes: 0, items: 0, bytes: 0 }
    try {
      totals = this.#store.totals()
    } catch {
      // a closed store reports zeros
    }
    const requests = Object.fromEntries(Object.entries(this.#requests).map(([op, m]) => [op, { ...m }])) as Record<RequestOp, Record<string, number>>
    return {
      requests,
      drops: { ...this.#drops },
      pushes: this.#pushes,
      paddingPushes: this.#paddingPushes,
      steadyIdle: this.#steadyIdle,
      steadyMailboxes: this.#steady.size,
      expiredItems: this.#expiredItems,
      removedMailboxes: this.#removedMailboxes,
      ...totals,
      blocks: this.#blockCount
    }
  }

  /** Blocks held now for one mailbox (after dropping expired ones). */
  blocksHeld (mailboxId: Uint8Array): number {
    return this.#liveBlocks(hex(mailboxId)).length
  }

  /**
   * One service-0x01 request. Never throws. Every answer but a deposit's is sent before it returns; a
   * deposit's STORED waits for its item to be on disk (MailboxStore.deposit: `settled()` waits for it).
   */
  handle (request: Uint8Array, replyBlock: Uint8Array | undefined): void {
    try {
      if (replyBlock != null && (!(replyBlock instanceof Uint8Array) || replyBlock.length !== SURB_SIZE)) {
        this.#drop('reply-block')
        return
      }
      const decoded = decodeRequest(request)
      if (!decoded.ok) {
        this.#drop(decoded.reason)
        return
      }
      if (decoded.request.op === 'deposit') {
        const handled = this.#deposit(decoded.request, replyBlock)
        this.#depositing.add(handled)
        handled.finally(() => this.#depositing.delete(handled)).catch(() => {})
        return
      }
      if (!('signed' in decoded)) return
      switch (decoded.request.op) {
        case 'register': this.#register(decoded.request, decoded.signed, replyBlock); break
        case 'stock': this.#stock(decoded.request, decoded.signed, replyBlock); break
        case 'ack': this.#ack(decoded.request, decoded.signed, replyBlock); break
        case 'sync': this.#sync(decoded.request, decoded.signed, replyBlock); break
      }
    } catch {
      // a store failure (disk full, busy, closed): counted
      this.#drop('store-error')
    }
  }

  /** Resolves once every deposit handed to `handle` so far is answered (or dropped). Never rejects. */
  async settled (): Promise<void> {
    await Promise.all([...this.#depositing])
  }

  /** Expiry, dead blocks, re-pushes, republishing. Called by the timer; public so tests drive it with their clock. Never throws. */
  sweep (): void {
    try {
      const now = this.#now()
      const gone = this.#store.expire(now, this.limits.itemAgeMs, this.limits.idleAgeMs)
      this.#expiredItems += gone.items
      this.#removedMailboxes += gone.mailboxes.length
      for (const id of gone.mailboxes) {
        this.#forgetBlocks(hex(id))
        this.#steady.delete(hex(id))
      }
      for (const key of [...this.#blocks.keys()]) {
        // a steady mailbox is pushed only at its ticks
        if (!this.#steady.has(key) && this.#liveBlocks(key).length > 0) this.#push(Buffer.from(key, 'hex'))
      }
      if (now - this.#lastRepublish >= this.limits.republishIntervalMs) {
        this.#lastRepublish = now
        for (const m of this.#store.mailboxes()) this.#record(m.id, m.record)
      }
    } catch {
      this.#drop('store-error')
    }
  }

  // ---- operations ----

  /** Never rejects: a store failure (disk full, busy, closed, a failed sync) is a counted drop, never answered STORED. */
  async #deposit (req: DepositRequest, replyBlock: Uint8Array | undefined): Promise<void> {
    if (req.item.length > this.limits.maxItemBytes) {
      this.#count('deposit', 'too-large')
      this.#answer(replyBlock, { kind: 'too-large', mailboxId: req.mailboxId })
      return
    }
    try {
      const { result, durable } = this.#store.commitDeposit(req.mailboxId, this.#random(ITEM_ID_BYTES), req.item, this.#now(), this.limits)
      // the push leaves at the commit, not after its fsync (~1.5 ms, a third of a hop on the way to the
      // recipient): a crash before the sync may lose an item already pushed, but never one answered STORED,
      // so its sender sends it again and the recipient drops the copy by its message id (SPEC.md section 7)
      if (result === 'stored' && !this.#steady.has(hex(req.mailboxId))) {
        // a push that fails (its `pushed` mark not written) leaves the item for the next one
        try { this.#push(req.mailboxId) } catch { this.#drop('store-error') }
      }
      await durable
      this.#count('deposit', result)
      // the item is committed and on disk before any answer leaves
      const kind = result === 'stored' ? 'stored' : result === 'unknown-mailbox' ? 'unknown-mailbox' : 'full'
      this.#answer(replyBlock, { kind, mailboxId: req.mailboxId })
    } catch {
      this.#drop('store-error')
    }
  }

  #register (req: RegisterRequest, signed: Uint8Array, replyBlock: Uint8Array | undefined): void {
    const refuse = (reason: 'key-mismatch' | 'bad-signature' | 'stale' | 'relay-full'): void => {
      this.#count('register', reason)
      this.#answer(replyBlock, { kind: 'refused', mailboxId: req.mailboxId, reason })
    }
    if (!sameBytes(mailboxIdOf(req.publicKey), req.mailboxId)) return refuse('key-mismatch')
    if (!verifySigned(signed, req.signature, req.publicKey)) return refuse('bad-signature')
    const now = this.#now()
    if (Math.abs(req.timestamp - now) > this.limits.clockWindowMs) return refuse('stale')
    const before = this.#store.getMailbox(req.mailboxId)
    const result = this.#store.register({ id: req.mailboxId, publicKey: req.publicKey, record: req.record, timestamp: req.timestamp }, now, this.limits)
    if (result === 'stale' || result === 'relay-full') return refuse(result)
    this.#count('register', result)
    // A REGISTER is the owner starting (or re-signing its record): blocks stocked before it may end at an
    // address of a previous run (a client's transport key and entry relay change every run). Pushing an
    // item through such a block loses it until the re-push interval; the owner stocks anew right after.
    this.#forgetBlocks(hex(req.mailboxId))
    // a (re)starting owner may run version 1: steady pushing waits for its next SYNC
    this.#steady.delete(hex(req.mailboxId))
    // and what was pushed through them may never have arrived: push it again through the new blocks
    this.#store.unmarkPushed(req.mailboxId)
    if (before == null || !sameBytes(before.record, req.record)) this.#record(req.mailboxId, req.record)
    this.#answer(replyBlock, {
      kind: 'registered',
      mailboxId: req.mailboxId,
      limits: {
        maxItems: this.limits.maxItemsPerMailbox,
        maxBytes: this.limits.maxBytesPerMailbox,
        itemAgeMs: this.limits.itemAgeMs,
        idleAgeMs: this.limits.idleAgeMs
      },
      waiting: this.#waiting(req.mailboxId)
    })
    this.#push(req.mailboxId)
  }

  /** Checks an owner request against the held mailbox; answers and counts a refusal. The mailbox when authentic and fresh. */
  #authenticate (op: 'stock' | 'ack' | 'sync', req: StockRequest | AckRequest | SyncRequest, signed: Uint8Array, replyBlock: Uint8Array | undefined): MailboxRow | undefined {
    const mailbox = this.#store.getMailbox(req.mailboxId)
    if (mailbox == null) {
      this.#count(op, 'unknown-mailbox')
      this.#answer(replyBlock, { kind: 'unknown-mailbox', mailboxId: req.mailboxId })
      return undefined
    }
    const reason = !verifySigned(signed, req.signature, mailbox.publicKey)
      ? 'bad-signature'
      : Math.abs(req.timestamp - this.#now()) > this.limits.clockWindowMs ? 'stale' : undefined
    if (reason == null) return mailbox
    this.#count(op, reason)
    this.#answer(replyBlock, { kind: 'refused', mailboxId: req.mailboxId, reason })
    return undefined
  }

  #stock (req: StockRequest, signed: Uint8Array, replyBlock: Uint8Array | undefined): void {
    const mailbox = this.#authenticate('stock', req, signed, replyBlock)
    if (mailbox == null) return
    const key = this.#takeBlocks(mailbox, req.mailboxId, req.blocks)
    this.#count('stock', 'stocked')
    if (!this.#steady.has(key)) this.#push(req.mailboxId)
    this.#answer(replyBlock, {
      kind: 'stocked',
      mailboxId: req.mailboxId,
      waiting: this.#waiting(req.mailboxId),
      blocks: Math.min(0xff, this.#liveBlocks(key).length)
    })
  }

  /** Version 2: blocks for the steady pushes, items to delete, the push period. Pushes nothing now. */
  #sync (req: SyncRequest, signed: Uint8Array, replyBlock: Uint8Array | undefined): void {
    const mailbox = this.#authenticate('sync', req, signed, replyBlock)
    if (mailbox == null) return
    const key = this.#takeBlocks(mailbox, req.mailboxId, req.blocks)
    const deleted = req.itemIds.length > 0 ? this.#store.ack(req.mailboxId, req.itemIds, this.#now()) : 0
    const now = this.#now()
    const steady = this.#steady.get(key)
    if (steady == null) {
      // the first tick at a random phase within one period, then one every period
      this.#steady.set(key, { periodMs: req.pushPeriodMs, nextAt: now + Math.floor(this.#uniform() * req.pushPeriodMs), lastSyncAt: now })
    } else {
      steady.periodMs = req.pushPeriodMs
      steady.lastSyncAt = now
    }
    this.#count('sync', 'synced')
    this.#armSteady()
    this.#answer(replyBlock, {
      kind: 'synced',
      mailboxId: req.mailboxId,
      deleted: Math.min(0xff, deleted),
      waiting: this.#waiting(req.mailboxId),
      blocks: Math.min(0xff, this.#liveBlocks(key).length)
    })
  }

  /** Holds `blocks` for a mailbox (STOCK and SYNC), within the per-mailbox and per-relay limits; its key. */
  #takeBlocks (mailbox: MailboxRow, mailboxId: Uint8Array, blocks: Uint8Array[]): string {
    const now = this.#now()
    if (now - mailbox.lastSeen >= Math.min(LAST_SEEN_RESOLUTION_MS, this.limits.idleAgeMs / 100)) this.#store.touch(mailboxId, now)
    const key = hex(mailboxId)
    const held = this.#liveBlocks(key)
    for (const block of blocks) {
      if (held.some(h => sameBytes(h.block, block))) {
        this.#drop('block-duplicate')
        continue
      }
      if (held.length >= this.limits.maxBlocksPerMailbox) {
        held.shift()
        this.#blockCount--
        this.#drop('block-evicted')
      }
      if (this.#blockCount >= this.limits.maxBlocksPerRelay) {
        this.#drop('blocks-relay-full')
        continue
      }
      held.push({ block, expiresAt: now + this.limits.blockLifetimeMs })
      this.#blockCount++
    }
    if (held.length > 0) this.#blocks.set(key, held)
    return key
  }

  #ack (req: AckRequest, signed: Uint8Array, replyBlock: Uint8Array | undefined): void {
    if (this.#authenticate('ack', req, signed, replyBlock) == null) return
    const deleted = this.#store.ack(req.mailboxId, req.itemIds, this.#now())
    this.#count('ack', 'acked')
    this.#answer(replyBlock, { kind: 'acked', mailboxId: req.mailboxId, deleted, waiting: this.#waiting(req.mailboxId) })
  }

  // ---- pushing ----

  /**
   * Pushes due items through this mailbox's live blocks: one item per block, oldest item first, newest
   * block first (the newest is the likeliest to be alive: every relay on it still has the epoch key).
   */
  #push (mailboxId: Uint8Array): void {
    const key = hex(mailboxId)
    const blocks = this.#liveBlocks(key)
    if (blocks.length === 0) return
    const now = this.#now()
    const due = this.#store.due(mailboxId, now - this.limits.repushIntervalMs, blocks.length)
    if (due.length === 0) return
    this.#store.markPushed(due.map(i => i.itemId), now)
    const others = Math.max(0, this.#waiting(mailboxId) - 1)
    for (const item of due) {
      const held = blocks.pop()
      if (held == null) break
      this.#blockCount--
      this.#pushes++
      this.#answer(held.block, { kind: 'push', mailboxId, itemId: item.itemId, item: item.bytes, waiting: Math.min(0xffff, others) })
    }
    if (blocks.length === 0) this.#blocks.delete(key)
  }

  // ---- steady pushing (version 2) ----

  /** Sets the one steady timer to the earliest tick due. */
  #armSteady (): void {
    let earliest = Number.POSITIVE_INFINITY
    for (const s of this.#steady.values()) earliest = Math.min(earliest, s.nextAt)
    if (earliest === this.#steadyTimerAt) return
    if (this.#steadyTimer != null) this.#timers.clear(this.#steadyTimer)
    this.#steadyTimer = undefined
    this.#steadyTimerAt = earliest
    if (!Number.isFinite(earliest)) return
    this.#steadyTimer = this.#timers.set(() => {
      this.#steadyTimer = undefined
      this.#steadyTimerAt = Number.POSITIVE_INFINITY
      this.pumpSteady()
    }, Math.max(0, earliest - this.#now()))
  }

  /** Runs every steady tick due by now, then re-arms the timer. The timer calls it; public for tests. Never throws. */
  pumpSteady (): void {
    const now = this.#now()
    for (const [key, s] of [...this.#steady]) {
      for (let i = 0; i < MAX_TICKS_PER_WAKE && s.nextAt <= now; i++) {
        try {
          this.#steadyTick(key)
        } catch {
          this.#drop('store-error')
        }
        s.nextAt += s.periodMs
      }
      // far behind (a relay asleep for longer than 1000 periods): continue from now, no burst
      if (s.nextAt <= now) s.nextAt = now + s.periodMs
      if (this.#liveBlocks(key).length === 0 && now - s.lastSyncAt > this.limits.blockLifetimeMs) this.#steady.delete(key)
    }
    this.#armSteady()
  }

  /** One steady tick: through the newest held block, the oldest due item, or PADDING when none is due. */
  #steadyTick (key: string): void {
    const blocks = this.#liveBlocks(key)
    const held = blocks.pop()
    if (held == null) {
      this.#steadyIdle++
      return
    }
    this.#blockCount--
    if (blocks.length === 0) this.#blocks.delete(key)
    const mailboxId = new Uint8Array(Buffer.from(key, 'hex'))
    const now = this.#now()
    const due = this.#store.due(mailboxId, now - this.limits.repushIntervalMs, 1)
    const others = Math.min(0xffff, Math.max(0, this.#waiting(mailboxId) - due.length))
    if (due.length === 0) {
      this.#paddingPushes++
      this.#answer(held.block, { kind: 'padding', mailboxId, waiting: others })
      return
    }
    this.#store.markPushed([due[0].itemId], now)
    this.#pushes++
    this.#answer(held.block, { kind: 'push', mailboxId, itemId: due[0].itemId, item: due[0].bytes, waiting: others })
  }

  /** The blocks of one mailbox still alive at the current time (the same array the map holds). */
  #liveBlocks (key: string): HeldBlock[] {
    const held = this.#blocks.get(key)
    if (held == null) return []
    const now = this.#now()
    let dead = 0
    while (dead < held.length && held[dead].expiresAt <= now) dead++
    if (dead > 0) {
      held.splice(0, dead)
      this.#blockCount -= dead
      this.#drop('block-expired', dead)
    }
    if (held.length === 0) {
      this.#blocks.delete(key)
      return []
    }
    return held
  }

  /** Drops every block held for one mailbox (a REGISTER, or the mailbox removed). */
  #forgetBlocks (key: string): void {
    const held = this.#blocks.get(key)
    if (held == null) return
    this.#blockCount -= held.length
    this.#blocks.delete(key)
  }

  #waiting (mailboxId: Uint8Array): number {
    return Math.min(0xffff, this.#store.getMailbox(mailboxId)?.itemCount ?? 0)
  }

  // ---- output and counters ----

  #answer (block: Uint8Array | undefined, answer: MailboxAnswer): void {
    if (block == null) return
    const body = encodeAnswer(answer)
    const payload = new Uint8Array(1 + body.length)
    payload[0] = MAILBOX_SERVICE
    payload.set(body, 1)
    try {
      this.#send(block, payload)
    } catch {
      this.#drop('send-failed')
    }
  }

  #record (mailboxId: Uint8Array, record: Uint8Array): void {
    if (this.#onRecord == null) return
    try {
      this.#onRecord(mailboxId, record)
    } catch {
      this.#drop('record-callback-failed')
    }
  }

  #count (op: RequestOp, outcome: string): void {
    this.#requests[op][outcome] = (this.#requests[op][outcome] ?? 0) + 1
  }

  #drop (reason: string, n = 1): void {
    this.#drops[reason] = (this.#drops[reason] ?? 0) + n
  }
}
