/** Sample statistics and timing helpers shared by every benchmark. Nothing here asserts on time. */

export interface Summary {
  /** how many samples */
  n: number
  median: number
  p95: number
  mean: number
  min: number
  max: number
  /**
   * Mean CPU time of the calling thread per call, microseconds (timeSync only: process.threadCpuUsage
   * over the timed loop). On a loaded machine the wall-clock median includes time spent waiting for a
   * core; this does not, so it is the figure to compare across runs there.
   */
  cpu?: number
}

/** Nearest-rank percentile over a sorted copy; median is the 50th. */
export function summarize (samples: ArrayLike<number>): Summary {
  const sorted = Float64Array.from(samples).sort()
  const n = sorted.length
  if (n === 0) return { n: 0, median: NaN, p95: NaN, mean: NaN, min: NaN, max: NaN }
  const at = (q: number): number => sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))]
  let sum = 0
  for (const v of sorted) sum += v
  return { n, median: at(0.5), p95: at(0.95), mean: sum / n, min: sorted[0], max: sorted[n - 1] }
}

/** Microseconds of `fn` per call: `warmup` untimed calls, then `samples` timed ones. */
export function timeSync (fn: (i: number) => void, samples: number, warmup: number): Summary {
  for (let i = 0; i < warmup; i++) fn(i)
  const out = new Float64Array(samples)
  const cpuStart = process.threadCpuUsage()
  for (let i = 0; i < samples; i++) {
    const start = process.hrtime.bigint()
    fn(i)
    out[i] = Number(process.hrtime.bigint() - start) / 1000
  }
  const cpu = process.threadCpuUsage(cpuStart)
  return { ...summarize(out), cpu: samples > 0 ? (cpu.user + cpu.system) / samples : NaN }
}

/** Milliseconds since an arbitrary origin, sub-millisecond resolution. */
export function nowMs (): number {
  return performance.now()
}

export function mean (values: number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length
}

/** `promise`, or undefined after `ms` (teardown must not hang a benchmark run). */
export async function within<T> (promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<undefined>((resolve) => { timer = setTimeout(() => { resolve(undefined) }, ms) })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}
