/**
 * The mix's holding queue (SPEC.md section 15): a packet whose slot asks for a delay waits here that
 * long, then is released to forwarding. The shape is Katzenpost's scheduler (server/internal/scheduler):
 * a priority queue keyed by release time and one timer for the earliest entry.
 *
 * - Order: by release time (arrival + delay); entries due at the same millisecond leave in arrival order.
 * - Cap: a delay above `maxDelayMs` is refused (`delay-cap`, counted): the sender broke the spec, and
 *   holding it would pin memory for as long as it asks.
 * - Bound: at most `maxHeld` entries. One more is inserted and then an entry chosen uniformly at random
 *   among all held is dropped (`mix-full`, counted), as Katzenpost's memory queue does: dropping always
 *   the newest would let a flood keep every other packet in, dropping the oldest would let it flush them.
 * - Time comes from a `Clock` so tests drive it by hand (no sleeps); a released entry's lateness (its
 *   release after its due time: timer slack, a busy event loop) is summed for the bench.
 *
 * Memory: a binary heap of `maxHeld` entries (each a due time, a sequence number and the item).
 */

/** Where time and timers come from (the real ones, or a test's hand-driven clock). */
export interface Clock {
  now: () => number
  setTimer: (fn: () => void, ms: number) => unknown
  clearTimer: (timer: unknown) => void
}

/** performance.now() and setTimeout. */
export const realClock: Clock = {
  now: () => performance.now(),
  setTimer: (fn, ms) => setTimeout(fn, ms),
  clearTimer: (t) => { clearTimeout(t as ReturnType<typeof setTimeout>) }
}

/**
 * Packets a relay holds at once by default: 20,000 x 3 KiB = ~60 MiB. By Little's law a relay
 * forwarding 5,000 packets/s with a 4 s mean delay holds 20,000; a busier or slower-mixing relay
 * raises it (`maxHeld`), and beyond it drops at random rather than grow.
 */
export const DEFAULT_MAX_HELD = 20_000

export type SchedulerDrop = 'delay-cap' | 'mix-full'

export interface SchedulerStats {
  /** Entries accepted to be held. */
  scheduled: number
  released: number
  dropped: Partial<Record<SchedulerDrop, number>>
  /** Held now. */
  held: number
  /** The most held at once. */
  maxHeld: number
  /** Sum of (release time - due time) over released entries, ms (timer slack and event-loop delay). */
  lateMsTotal: number
  /** Releases that threw (none expected). */
  releaseErrors: number
}

export interface MixSchedulerInit<T> {
  release: (item: T) => void
  /** Called for every dropped entry, with why (the relay counts it as an onion drop). */
  onDrop?: (item: T, reason: SchedulerDrop) => void
  maxHeld?: number
  maxDelayMs: number
  clock?: Clock
  /** Picks the entry dropped when full: uniform on [0, 1). */
  random?: () => number
}

interface Entry<T> { due: number, seq: number, item: T }

function before<T> (a: Entry<T>, b: Entry<T>): boolean {
  return a.due < b.due || (a.due === b.due && a.seq < b.seq)
}

export class MixScheduler<T> {
  private readonly init: MixSchedulerInit<T>
  private readonly clock: Clock
  private readonly maxHeld: number
  private readonly heap: Array<Entry<T>> = []
  private seq = 0
  private timer: unknown
  /** The due time the timer is armed for (undefined: not armed). */
  private armedFor: number | undefined
  readonly stats: SchedulerStats = { scheduled: 0, released: 0, dropped: {}, held: 0, maxHeld: 0, lateMsTotal: 0, releaseErrors: 0 }

  constructor (init: MixSchedulerInit<T>) {
    this.init = init
    this.clock = init.clock ?? realClock
    this.maxHeld = init.maxHeld ?? DEFAULT_MAX_HELD
    if (!(this.maxHeld >= 1)) throw new RangeError('maxHeld must be at least 1')
  }

  /** Entries held now. */
  get size (): number { return this.heap.length }

  private drop (item: T, reason: SchedulerDrop): void {
    this.stats.dropped[reason] = (this.stats.dropped[reason] ?? 0) + 1
    this.init.onDrop?.(item, reason)
  }

  /** Holds `item` for `delayMs`; false when it was refused for its delay (dropped as delay-cap). */
  add (item: T, delayMs: number): boolean {
    if (!(delayMs >= 0) || delayMs > this.init.maxDelayMs) { this.drop(item, 'delay-cap'); return false }
    this.push({ due: this.clock.now() + delayMs, seq: this.seq++, item })
    this.stats.scheduled++
    if (this.heap.length > this.maxHeld) {
      const victim = this.removeAt(Math.min(this.heap.length - 1, Math.floor((this.init.random ?? Math.random)() * this.heap.length)))
      this.drop(victim.item, 'mix-full')
    }
    this.stats.held = this.heap.length
    this.stats.maxHeld = Math.max(this.stats.maxHeld, this.heap.length)
    this.arm()
    return true
  }

  /** Drops everything held (the relay stops); returns how many were held. */
  clear (): number {
    const n = this.heap.length
    this.heap.length = 0
    this.stats.held = 0
    this.disarm()
    return n
  }

  /** Releases every entry due by now, in order; then re-arms the timer. Called by the timer; public for tests. */
  runDue (): void {
    this.disarm()
    const now = this.clock.now()
    while (this.heap.length > 0 && this.heap[0].due <= now) {
      const e = this.removeAt(0)
      this.stats.released++
      this.stats.lateMsTotal += now - e.due
      // a throwing release must not strand the entries after it (the relay's release never throws)
      this.stats.held = this.heap.length
      try { this.init.release(e.item) } catch { this.stats.releaseErrors++ }
    }
    this.arm()
  }

  private arm (): void {
    if (this.heap.length === 0) return
    const due = this.heap[0].due
    if (this.armedFor !== undefined && this.armedFor <= due) return
    this.disarm()
    this.armedFor = due
    this.timer = this.clock.setTimer(() => { this.armedFor = undefined; this.timer = undefined; this.runDue() }, Math.max(0, due - this.clock.now()))
  }

  private disarm (): void {
    if (this.armedFor === undefined) return
    this.clock.clearTimer(this.timer)
    this.timer = undefined
    this.armedFor = undefined
  }

  private push (e: Entry<T>): void {
    const h = this.heap
    h.push(e)
    this.up(h.length - 1)
  }

  private removeAt (i: number): Entry<T> {
    const h = this.heap
    const out = h[i]
    const last = h.pop() as Entry<T>
    if (i < h.length) {
      h[i] = last
      this.down(i)
      this.up(i)
    }
    return out
  }

  private up (i: number): void {
    const h = this.heap
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!before(h[i], h[p])) break
      ;[h[i], h[p]] = [h[p], h[i]]
      i = p
    }
  }

  private down (i: number): void {
    const h = this.heap
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let m = i
      if (l < h.length && before(h[l], h[m])) m = l
      if (r < h.length && before(h[r], h[m])) m = r
      if (m === i) return
      ;[h[i], h[m]] = [h[m], h[i]]
      i = m
    }
  }
}
