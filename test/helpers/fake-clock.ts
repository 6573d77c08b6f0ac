/**
 * A clock a test moves by hand (protocols/onion/scheduler.ts `Clock`): timers fire in due order as
 * `advance` passes them, each at its own due time. No real time passes, so a test of timing is exact.
 */
import type { Clock } from '../../protocols/onion/scheduler.ts'

export class FakeClock implements Clock {
  t = 0
  private nextId = 1
  readonly timers = new Map<number, { at: number, fn: () => void }>()
  now = (): number => this.t
  setTimer = (fn: () => void, ms: number): unknown => {
    const id = this.nextId++
    this.timers.set(id, { at: this.t + ms, fn })
    return id
  }

  clearTimer = (id: unknown): void => { this.timers.delete(id as number) }

  /** Moves time forward by `ms`, firing every timer due on the way (at most 10^6 of them). */
  advance (ms: number): void {
    const target = this.t + ms
    for (let guard = 0; guard < 1_000_000; guard++) {
      let first: [number, { at: number, fn: () => void }] | undefined
      for (const e of this.timers) if (e[1].at <= target && (first == null || e[1].at < first[1].at)) first = e
      if (first == null) break
      this.timers.delete(first[0])
      this.t = Math.max(this.t, first[1].at)
      first[1].fn()
    }
    this.t = target
  }
}
