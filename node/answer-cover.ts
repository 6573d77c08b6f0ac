/**
 * Answers that do not show (issue 11): a message hands its sender two packets more than an idle user
 * receives, the mailbox's STORED and, later, the recipient's receipt. Whoever watches every entry link
 * sees the sender's incoming stream rise at those offsets from the moment the recipient was handed the
 * message, and names the sender far more often than chance (test/helpers/adversary.ts, the answer
 * clues). Cover cannot hide an extra packet by adding packets to everyone; it can take one away from the
 * sender: loop cover comes back to the user as a Poisson stream of rate lambda (the loop rate), and a
 * loop that is not sent (a drop goes in its tick instead, so the outgoing stream is unchanged) is a
 * packet that does not come back.
 *
 * So every request whose answer the user expects (a DEPOSIT's STORED; a message's receipt) registers,
 * when its packet leaves, the density f of that answer's arrival time from that moment, as the
 * adversary models it (the sum of the exponential delays on its way, drawn afresh: the adversary does
 * not know the real draws either). At every loop tick the loop is waived with probability
 * sum(f_i(now + lead - left_i)) / lambda (at most 1), `lead` the loop's mean time to come back. Thinning
 * a Poisson stream of rate lambda by that probability takes away exactly the intensity f: the sender's
 * incoming stream then has the same expected intensity at every offset as an idle user's, so neither
 * answer raises it where the adversary looks. Each answer costs, on average, one loop that was not sent
 * (bandwidth falls by one loop's return, the outgoing stream stays the same) and one loop's path test.
 *
 * Limits, said plainly: the waiver is capped at probability 1, so where the expected answers' density
 * passes lambda (a burst of messages, or an answer whose density is narrow) part of it shows; lambda
 * must exceed the densities' peaks (Gamma(2, 8 s)'s peak, the STORED's, is 2.8 a minute: `standard`
 * sends 4 loops a minute for it). The match is in expectation (first order): a waived loop is a random
 * number of packets, the answer exactly one. Answers to upkeep (a STOCK's STOCKED after pushes) are not
 * covered: they follow the packet that caused them by a few hops, too narrow a density to thin.
 */

/** The density of a sum of independent exponentials, tabulated (per ms) in bins of `binMs`. */
export interface OffsetDensity {
  binMs: number
  /** The density (per ms) of an offset in bin i (offset i * binMs to (i + 1) * binMs, before `shiftBins`). */
  pdf: Float64Array
  /** Bins the table is read late by, to undo the discrete filter's lag (half a bin per exponential). */
  shiftBins: number
}

/** Exponentials in one density at most, and bins in its table at most (memory: 8 bytes a bin). */
const MAX_PARTS = 64
const MAX_BINS = 200_000

/**
 * The density of the sum of exponentials of `meansMs`, by filtering a unit impulse once per exponential
 * (y[n] = a y[n-1] + (1 - a) x[n], a = exp(-bin / mean): a discrete convolution with an exponential,
 * exact in mass), cut where less than 1e-6 of the mass is left.
 */
export function offsetDensity (meansMs: number[], binMs = 50): OffsetDensity {
  if (meansMs.length === 0 || meansMs.length > MAX_PARTS || meansMs.some(m => !(m > 0))) throw new RangeError('an offset density is 1 to 64 positive means')
  if (!(binMs > 0)) throw new RangeError('bins are positive')
  const total = meansMs.reduce((a, m) => a + m, 0)
  const bins = Math.min(MAX_BINS, Math.ceil((total + 20 * Math.max(...meansMs)) / binMs) + 1)
  let y = new Float64Array(bins)
  y[0] = 1
  for (const m of meansMs) {
    const a = Math.exp(-binMs / m)
    const next = new Float64Array(bins)
    let prev = 0
    for (let i = 0; i < bins; i++) { prev = a * prev + (1 - a) * y[i]; next[i] = prev }
    y = next
  }
  // cut the tail that holds less than 1e-6 of the mass
  let end = bins
  let tail = 0
  while (end > 1 && tail + y[end - 1] < 1e-6) tail += y[--end]
  const pdf = new Float64Array(end)
  for (let i = 0; i < end; i++) pdf[i] = y[i] / binMs
  return { binMs, pdf, shiftBins: meansMs.length / 2 }
}

/** The density (per ms) of `offsetMs` under `d` (0 outside its table). */
export function densityAt (d: OffsetDensity, offsetMs: number): number {
  const i = Math.floor(offsetMs / d.binMs - d.shiftBins)
  return i >= 0 && i < d.pdf.length ? d.pdf[i] : 0
}

/** The densities' reach (ms): past it an expectation is forgotten. */
function reachMs (d: OffsetDensity): number {
  return (d.pdf.length + d.shiftBins + 1) * d.binMs
}

/** Expected answers held at most (each 2 numbers); beyond, the oldest is forgotten (counted). */
export const MAX_EXPECTED = 4096

export interface AnswerCoverInit {
  /** The loop rate it thins, per minute (> 0). */
  loopPerMinute: number
  /** The arrival-time density of each kind of answer, from the moment its request's packet leaves. */
  densities: Record<string, OffsetDensity>
  /** A loop's mean time to come back (ms): a loop sent now stands for a packet arriving now + lead. */
  leadMs: number
}

export interface AnswerCoverStats {
  /** Answers expected, by kind. */
  expected: Record<string, number>
  /** Loop ticks that sent a drop instead of a loop. */
  waived: number
  /** Loop ticks at which the expected answers' density passed the loop rate (the waiver capped at 1). */
  capped: number
  /** Expectations forgotten beyond MAX_EXPECTED. */
  forgotten: number
}

export class AnswerCover {
  private readonly init: AnswerCoverInit
  /** Per ms. */
  private readonly lambda: number
  private readonly pending: Array<{ at: number, density: OffsetDensity, until: number }> = []
  readonly stats: AnswerCoverStats = { expected: {}, waived: 0, capped: 0, forgotten: 0 }

  constructor (init: AnswerCoverInit) {
    if (!(init.loopPerMinute > 0)) throw new RangeError('answer cover thins loop cover: a loop rate > 0')
    if (!(init.leadMs >= 0)) throw new RangeError('a loop lead is >= 0 ms')
    this.init = init
    this.lambda = init.loopPerMinute / 60_000
    for (const k of Object.keys(init.densities)) this.stats.expected[k] = 0
  }

  /** A request whose answer of `kind` the user expects left at `at` (ms). Unknown kinds throw. */
  expect (kind: string, at: number): void {
    const density = Object.hasOwn(this.init.densities, kind) ? this.init.densities[kind] : undefined
    if (density == null) throw new RangeError(`no answer density for "${kind}"`)
    if (this.pending.length >= MAX_EXPECTED) { this.pending.shift(); this.stats.forgotten++ }
    this.pending.push({ at, density, until: at + reachMs(density) })
    this.stats.expected[kind]++
  }

  /** Answers expected and not yet past their density's reach. */
  get expecting (): number { return this.pending.length }

  /** The probability that the loop of a tick at `now` is waived (forgets expectations past their reach). */
  waiver (now: number): number {
    let live = 0
    let f = 0
    for (const e of this.pending) {
      if (e.until <= now) continue
      this.pending[live++] = e
      f += densityAt(e.density, now + this.init.leadMs - e.at)
    }
    this.pending.length = live
    return f / this.lambda
  }

  /**
   * Whether the loop of a tick at `now` is waived, given a uniform draw `u` in [0, 1) (counted). A
   * waiver over 1 (more answers expected than loops come back) is capped: the excess shows. (Carrying
   * it to the next loops was tried in the Monte Carlo of bench/answer-clues.ts: a loop missing later
   * does not hide an answer now, and the adversary named the sender more often: 11.9 % against 10.3 %.)
   */
  waive (now: number, u: number): boolean {
    const p = this.waiver(now)
    if (p >= 1) this.stats.capped++
    const waived = u < p
    if (waived) this.stats.waived++
    return waived
  }
}
