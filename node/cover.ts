/**
 * Client cover traffic (issue 11; Loopix section 4.2): two independent Poisson processes, loop cover
 * (a packet through a full path that comes back to the sender: mix, mix, entry relay, the sender; it
 * also tells the client its paths work) and drop cover (a packet to a random relay's drop service,
 * SERVICE 0x03, discarded there). A real packet does not add to the rate: it waits for the next tick
 * of either stream and goes in that packet's place, so the stream of packets a user's entry relay sees
 * has the same rate and the same exponential gaps whether the user chats or idles.
 *
 * A loop tick that carried a real packet leaves its loop owed: the owed loop goes at the next drop
 * tick with no real packet waiting, in that drop's place. So every tick still sends exactly one packet
 * at the times the two streams drew (the outbound stream is unchanged), the user sends as many loops
 * as its loop stream drew (an owed one a few seconds late: 60/drop s after the queue emptied, on
 * average), and the drops that real packets and owed loops replace are as many as the real packets,
 * as before. What changes is only which tick carries what, invisible outside (every packet is the same
 * size and sealed), and the wait: a real packet waits 60/(loop + drop) s on average for its tick, not
 * 60/drop (2.7 s instead of 3.5 s at `standard`). A real packet's wait before it leaves hides nothing
 * from the entry relay (it sees only when the packet leaves), so a shorter wait costs no anonymity;
 * the per-hop delays after it are what mixes (protocols/onion/SPEC.md section 15).
 *
 * Answer cover (`waiveLoop`, node/answer-cover.ts): before a loop goes (at its tick, or an owed one in
 * a drop tick) the hook may waive it, and a drop goes in its place: the outgoing stream is unchanged,
 * and the loop that does not come back makes room for an answer the user expects (a STORED, a receipt).
 *
 * Two lanes, one rate: a packet the user is waiting for (a message's DEPOSIT, the lookup before it:
 * lane `first`) leaves before mailbox upkeep, receipts and directory chores (lane `next`) queued earlier.
 * The order of real packets inside the ticks is invisible outside (every packet is the same size and
 * sealed), so the lanes change no rate and reveal nothing; they only keep a backlog of upkeep (STOCKs
 * after a burst of pushes, receipts owed) from delaying what the user typed. A backlog of N packets
 * still takes N ticks to drain (N x 60 / (loop + drop) s on average): the price of a rate that does not
 * rise with activity (SPEC.md section 15.4 has the measured figures).
 *
 * A level may trade that away (`backlog`, only `low` does): once more than `above` real packets wait,
 * until none does, the drop stream runs at `factor` times its rate (still Poisson: the armed gap is redrawn at the new
 * rate, memoryless), for at most `forGaps` mean base gaps; then the base rate until the queue has been
 * empty once. Every raised tick carries a real packet, so the extra bytes never exceed the user's real
 * packets; but the entry relay sees the rate rise, which tells it the user has a burst to send (SPEC
 * section 15.4, README "not protected").
 *
 * Limits: at most MAX_WAITING real packets wait for a tick (beyond: refused, counted `queue-full`, and
 * the caller's own error handling applies). A real packet still waiting when cover stops is abandoned
 * (its `abandon` runs: a request fails at once instead of waiting for a tick that never comes). Times
 * come from a `Clock` so tests drive them by hand, and gaps from a `Uniform` so a test's schedule is
 * reproducible.
 *
 * Used by node/chat-node.ts at every privacy level but `fast` (node/privacy.ts has the rates); a real
 * packet's wait for its tick is not counted in its request's timeout (protocols/onion/client.ts starts
 * the timer when the packet leaves).
 */
import { cryptoUniform } from '../protocols/onion/delays.ts'
import type { Uniform } from '../protocols/onion/delays.ts'
import { realClock } from '../protocols/onion/scheduler.ts'
import type { Clock } from '../protocols/onion/scheduler.ts'

/** Real packets waiting for a cover tick at most: a burst beyond this is refused, not queued without end. */
export const MAX_WAITING = 256

/**
 * Loops owed at most (loop ticks that carried a real packet, their loop not yet sent in a drop tick's
 * place): one per real packet that took a loop tick, so at most MAX_WAITING plus what a standing
 * backlog adds; beyond, an owed loop is forgotten (counted `loopsForgone`) rather than kept without end.
 */
export const MAX_OWED_LOOPS = 256

export interface CoverInit {
  /** Loop cover packets per minute (0: none). */
  loopPerMinute: number
  /** Drop cover packets per minute (0: real packets go at once, loop ticks carry none). */
  dropPerMinute: number
  /** Builds and submits one loop packet; throws when it cannot (counted). */
  sendLoop: () => void
  /** Builds and submits one drop-cover packet; throws when it cannot (counted). */
  sendDrop: () => void
  /** A bounded raise of the drop rate while a backlog waits (off when absent); see the module comment. */
  backlog?: BacklogRate
  /**
   * Asked before each loop is sent (at its tick, or an owed one in a drop tick): true sends a drop
   * in its place (answer cover, node/answer-cover.ts: a loop that does not come back makes room for an
   * expected answer). The outgoing stream is unchanged. Absent: every loop is sent.
   */
  waiveLoop?: (now: number) => boolean
  clock?: Clock
  uniform?: Uniform
  /**
   * Sees every tick as it fires: which stream, what went ('real' for a real packet in the tick's
   * place, with its lane and how long it waited for the tick, ms; 'loop' in a drop tick for an owed
   * loop), and the gap drawn before it (ms).
   * Tests check the client's own schedule with it; bench/anonymity.ts splits a message's latency by it.
   */
  onTick?: (tick: { stream: 'loop' | 'drop', sent: 'loop' | 'drop' | 'real', gapMs: number, ok: boolean, lane?: Lane, waitedMs?: number, waived?: boolean }) => void
}

export interface BacklogRate {
  /** The raise starts when more than this many real packets wait. */
  above: number
  /** The drop rate while raised, times the base rate. */
  factor: number
  /** A raise lasts at most this many mean base drop gaps; the next needs the queue empty first. */
  forGaps: number
}

export interface CoverStats {
  loops: number
  drops: number
  /** Real packets sent in place of a cover packet (of either stream). */
  real: number
  /** Real packets that took a loop tick (each leaves a loop owed), and owed loops sent in a drop tick's place. */
  realInLoopTicks: number
  owedLoopsSent: number
  /** Owed loops forgotten beyond MAX_OWED_LOOPS. */
  loopsForgone: number
  /** Loops waived (`waiveLoop`): a drop went in their place (counted in `drops` too). */
  loopsWaived: number
  /** Sends that threw (no entry relay, too few relays), by stream. */
  failed: { loop: number, drop: number, real: number }
  /** Real packets refused because MAX_WAITING were already waiting. */
  queueFull: number
  /** Real packets still waiting when cover stopped. */
  abandoned: number
  /** Raises of the drop rate for a backlog (`backlog`), and the drop ticks at the raised rate. */
  raises: number
  raisedTicks: number
  /** Raised drop ticks that found no real packet waiting (sent cover instead): 0 by design. */
  raisedEmpty: number
  /** The most real packets ever waiting at once. */
  maxWaiting: number
  /** Real packets' waits from `send` to their tick, ms (sent ones only), by lane. */
  waited: { first: WaitStats, next: WaitStats }
}

export interface WaitStats { count: number, totalMs: number, maxMs: number }

/** Which real packets leave first: what the user waits for, or everything else (oldest first within a lane). */
export type Lane = 'first' | 'next'

export class CoverTraffic {
  private readonly init: CoverInit
  private readonly clock: Clock
  private readonly uniform: Uniform
  private readonly waiting: Record<Lane, Array<{ real: () => void, abandon?: () => void, at: number }>> = { first: [], next: [] }
  private readonly timers: { loop?: unknown, drop?: unknown } = {}
  private running = false
  /** When the current raise of the drop rate began (undefined: base rate). */
  private raisedAt: number | undefined
  /** A raise ran its full length: none again until the queue has been empty. */
  private spent = false
  readonly stats: CoverStats = {
    loops: 0,
    drops: 0,
    real: 0,
    realInLoopTicks: 0,
    owedLoopsSent: 0,
    loopsForgone: 0,
    loopsWaived: 0,
    failed: { loop: 0, drop: 0, real: 0 },
    queueFull: 0,
    abandoned: 0,
    raises: 0,
    raisedTicks: 0,
    raisedEmpty: 0,
    maxWaiting: 0,
    waited: { first: { count: 0, totalMs: 0, maxMs: 0 }, next: { count: 0, totalMs: 0, maxMs: 0 } }
  }

  constructor (init: CoverInit) {
    if (!(init.loopPerMinute >= 0) || !(init.dropPerMinute >= 0)) throw new RangeError('cover rates are >= 0 per minute')
    this.init = init
    this.clock = init.clock ?? realClock
    this.uniform = init.uniform ?? cryptoUniform()
  }

  /** Loops owed: loop ticks that carried a real packet, their loop not sent yet. */
  private owedLoops = 0

  /** Loops owed now (each goes at the next drop tick with no real packet waiting). */
  get owed (): number { return this.owedLoops }

  /** Real packets waiting for their cover tick. */
  get queued (): number { return this.waiting.first.length + this.waiting.next.length }

  /** An exponential gap (ms) of a Poisson process of `perMinute`. */
  private gap (perMinute: number): number {
    return -60_000 / perMinute * Math.log1p(-this.uniform())
  }

  start (): void {
    if (this.running) return
    this.running = true
    if (this.init.loopPerMinute > 0) this.arm('loop')
    if (this.init.dropPerMinute > 0) this.arm('drop')
  }

  /** Stops both streams; real packets still waiting are abandoned (counted). */
  stop (): void {
    this.running = false
    this.raisedAt = undefined
    this.spent = false
    this.dropRaised = false
    this.owedLoops = 0
    for (const k of ['loop', 'drop'] as const) {
      if (this.timers[k] !== undefined) this.clock.clearTimer(this.timers[k])
      this.timers[k] = undefined
    }
    for (const w of [...this.waiting.first.splice(0), ...this.waiting.next.splice(0)]) {
      this.stats.abandoned++
      try { w.abandon?.() } catch {}
    }
  }

  /** Whether the drop stream runs raised now; starts and ends raises (module comment). */
  private raised (): boolean {
    const b = this.init.backlog
    if (b == null) return false
    if (this.queued === 0) this.spent = false
    // it starts past `above` and lasts until the queue is empty (or its time is up)
    if (this.queued === 0 || this.spent || (this.raisedAt == null && this.queued <= b.above)) { this.raisedAt = undefined; return false }
    const now = this.clock.now()
    if (this.raisedAt == null) { this.raisedAt = now; this.stats.raises++ }
    if (now - this.raisedAt >= b.forGaps * 60_000 / this.init.dropPerMinute) {
      this.raisedAt = undefined
      this.spent = true
      return false
    }
    return true
  }

  private arm (stream: 'loop' | 'drop'): void {
    const raised = stream === 'drop' && this.raised()
    const rate = stream === 'loop' ? this.init.loopPerMinute : this.init.dropPerMinute * (raised ? (this.init.backlog?.factor ?? 1) : 1)
    const gapMs = this.gap(rate)
    this.timers[stream] = this.clock.setTimer(() => {
      this.timers[stream] = undefined
      if (!this.running) return
      if (raised) {
        this.stats.raisedTicks++
        if (this.queued === 0) this.stats.raisedEmpty++
      }
      this.tick(stream, gapMs)
      this.arm(stream)
    }, gapMs)
    if (stream === 'drop') this.dropRaised = raised
  }

  /** Whether the armed drop gap was drawn at the raised rate. */
  private dropRaised = false

  private tick (stream: 'loop' | 'drop', gapMs: number): void {
    const told = (sent: 'loop' | 'drop' | 'real', ok: boolean, real?: { lane: Lane, waitedMs: number }, waived?: boolean): void => {
      try { this.init.onTick?.({ stream, sent, gapMs, ok, ...real, ...(waived === true ? { waived } : {}) }) } catch {}
    }
    const lane: Lane = this.waiting.first.length > 0 ? 'first' : 'next'
    const next = this.waiting[lane].shift()
    if (next != null) {
      // a loop tick taken: its loop is owed, sent at the next drop tick that no real packet takes
      if (stream === 'loop') {
        this.stats.realInLoopTicks++
        if (this.owedLoops < MAX_OWED_LOOPS) this.owedLoops++
        else this.stats.loopsForgone++
      }
      const w = this.stats.waited[lane]
      const waitedMs = this.clock.now() - next.at
      try {
        next.real()
        this.stats.real++
        w.count++
        w.totalMs += waitedMs
        w.maxMs = Math.max(w.maxMs, waitedMs)
        told('real', true, { lane, waitedMs })
      } catch { this.stats.failed.real++; told('real', false, { lane, waitedMs }) }
      // a loop tick emptied the queue while drop cover ran raised: the raise ends now (its armed gap is
      // redrawn at the base rate, memoryless), so no raised tick goes without a real packet
      if (stream === 'loop' && this.dropRaised && this.queued === 0 && this.timers.drop !== undefined) {
        this.clock.clearTimer(this.timers.drop)
        this.arm('drop')
      }
      return
    }
    let waived = false
    if (stream === 'loop' || this.owedLoops > 0) {
      // an owed loop is settled whether it is sent or waived
      if (stream === 'drop') this.owedLoops--
      try { waived = this.init.waiveLoop?.(this.clock.now()) === true } catch {}
      if (!waived) {
        if (stream === 'drop') this.stats.owedLoopsSent++
        try { this.init.sendLoop(); this.stats.loops++; told('loop', true) } catch { this.stats.failed.loop++; told('loop', false) }
        return
      }
      this.stats.loopsWaived++
    }
    try { this.init.sendDrop(); this.stats.drops++; told('drop', true, undefined, waived) } catch { this.stats.failed.drop++; told('drop', false, undefined, waived) }
  }

  /**
   * A real packet to send in place of the next cover packet, loop or drop (`real` submits it and throws when it
   * cannot: counted). Without drop cover (rate 0) or when not started it goes at once. False when
   * MAX_WAITING are already waiting (counted). `abandon` runs if cover stops before its tick. A packet
   * in lane `first` leaves before every packet of lane `next`.
   */
  send (real: () => void, abandon?: () => void, lane: Lane = 'next'): boolean {
    if (!this.running || this.init.dropPerMinute === 0) { real(); return true }
    if (this.queued >= MAX_WAITING) { this.stats.queueFull++; return false }
    this.waiting[lane].push({ real, abandon, at: this.clock.now() })
    this.stats.maxWaiting = Math.max(this.stats.maxWaiting, this.queued)
    // a backlog past the bound: the armed drop gap is redrawn at the raised rate (memoryless)
    if (this.init.backlog != null && !this.dropRaised && this.timers.drop !== undefined && this.raised()) {
      this.clock.clearTimer(this.timers.drop)
      this.arm('drop')
    }
    return true
  }

  /** The configured rates, per minute. */
  get rates (): { loopPerMinute: number, dropPerMinute: number } {
    return { loopPerMinute: this.init.loopPerMinute, dropPerMinute: this.init.dropPerMinute }
  }
}
