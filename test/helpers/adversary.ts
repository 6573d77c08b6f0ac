/**
 * The timing adversary of issue 11: it holds the first and the last relay of every path (in practice:
 * every entry relay, which sees when each of its clients submits a packet and when it hands one to a
 * client). For each packet handed to a recipient it guesses who sent it, from the times of every user's
 * submissions before it, knowing the privacy level (Kerckhoffs: the mean delay is public).
 *
 * Model: a message crosses HOPS delayed hops (2 mixes to the mailbox, then mix, mix and the recipient's
 * entry relay through its reply block), each an exponential of mean theta, so its latency is
 * Gamma(HOPS, theta) (plus network time, small beside it); at `fast` only network time is left
 * (FAST_MODEL). The posterior of a sender u is proportional to sum over u's submissions s of
 * f(t_delivery - t_s), the Gamma density: the Loopix paper's measure (Piotrowska et al. 2017,
 * section 5: the entropy of the sender distribution). The guess is the most likely sender; the
 * entropy is that of the whole distribution.
 *
 * Second clue: the mailbox answers the sender's deposit ("stored") through the sender's reply block at
 * the moment it pushes the message through the recipient's: the push crosses 3 delayed hops of mean
 * theta (mix, mix, entry relay), the answer 2 mixes of mean D (node/privacy.ts storedMixDelayMs: D =
 * theta below `standard`, 6 theta there) and the entry relay's theta, so a packet handed to the true
 * sender arrives 2(D - theta) after the message reaches the recipient on average, with variance
 * 2 D^2 + 4 theta^2 (sqrt(6) theta when D = theta). The adversary knows D (it is public) and scores the
 * offset by its exact density (the difference of a Gamma(2, D) + Exp(theta) and a Gamma(3, theta), as a
 * histogram of seeded draws: `sampledDensity`); without delays (`fast`) by a normal of spread
 * ANSWER_FLOOR_MS. (Before 2026-12-02 evening it used a normal of the offset's mean and spread at every
 * level, a weaker adversary: the Gamma sums are skewed, and a normal puts weight before the push, where
 * no answer comes; bench/anonymity.ts still reports that one beside it, `normalKernels`.) Its likelihood
 * multiplies the first clue's, with a floor so that a sender whose answer it missed is not ruled out.
 *
 * Third clue (`receipt`, optional): the recipient's receipt is deposited into the sender's mailbox and
 * pushed to the sender: after an exponential receipt delay R, a wait for a cover tick (exponential, W =
 * 60/(loop + drop) s) and 5 delayed hops, so the sender is handed a packet R + W + 5 theta after the
 * message reached the recipient, with variance R^2 + W^2 + 5 theta^2; scored by the exact density of
 * Exp(R) + Exp(W) + Gamma(5, theta) (the normal of that mean and variance before), multiplied in the
 * same way.
 */
import { createHash } from 'node:crypto'
import { seededUniform } from '../../protocols/onion/delays.ts'

/** Delayed hops between a sender's SUBMIT and the recipient's delivery (node/privacy.ts). */
export const HOPS = 5
/** Spread of (answer to the sender - push to the recipient) without delays: processing noise. */
export const ANSWER_FLOOR_MS = 20

/**
 * The latency model at the `fast` level: no delays, so what is left is network and processing time,
 * a few ms to ~400 ms in process on a loaded machine, most often short; an exponential of mean 100 ms
 * (shape 1): the most recent submission is the likeliest, the classic attack on a mix-less path. (The
 * parameters, with ANSWER_FLOOR_MS and the correlation test's REACTION_MS, were the best of a small
 * grid on two recorded runs of that test: 78 of 80 fast messages linked.)
 */
export const FAST_MODEL = { shape: 1, thetaMs: 100, answerSdMs: ANSWER_FLOOR_MS }

export interface TimingModel {
  /** Gamma shape and scale of a message's latency (SUBMIT -> handed to the recipient). */
  shape: number
  thetaMs: number
  /** The stored clue: mean and spread of (answer handed to the sender - push handed to the recipient); no spread, no clue. */
  answerMeanMs?: number
  answerSdMs?: number
  /** The stored clue's exact density (scored instead of the normal when present). */
  answerDensity?: Density
  /** The receipt clue: mean and spread of (receipt pushed to the sender - message pushed to the recipient), and its exact density. */
  receipt?: { meanMs: number, sdMs: number, density?: Density }
}

/** An offset's density: a histogram in bins of `binMs` from `lowBin` on, scaled so its peak is 1. */
export interface Density { binMs: number, lowBin: number, values: Float64Array }

/** Draws behind a density: enough that its peak bin holds thousands (2 % noise), and quick (~30 ms). */
const DENSITY_DRAWS = 200_000

/**
 * The density of a sum of delays, from DENSITY_DRAWS seeded draws of `draw` (given an exponential of a
 * mean); bins of `binMs`, smoothed over 3 bins. Deterministic: the same arguments give the same density.
 */
export function sampledDensity (draw: (exp: (meanMs: number) => number) => number, binMs: number, label: string): Density {
  const u = seededUniform(new Uint8Array(createHash('sha256').update(`adversary density ${label}`).digest()))
  const exp = (mean: number): number => -mean * Math.log(1 - u())
  const bins = new Int32Array(DENSITY_DRAWS)
  let low = Infinity
  let high = -Infinity
  for (let i = 0; i < DENSITY_DRAWS; i++) {
    const b = Math.floor(draw(exp) / binMs)
    bins[i] = b
    if (b < low) low = b
    if (b > high) high = b
  }
  const counts = new Float64Array(high - low + 1)
  for (const b of bins) counts[b - low]++
  const values = new Float64Array(counts.length)
  let peak = 0
  for (let i = 0; i < counts.length; i++) {
    values[i] = ((counts[i - 1] ?? 0) + counts[i] + (counts[i + 1] ?? 0)) / 3
    if (values[i] > peak) peak = values[i]
  }
  for (let i = 0; i < values.length; i++) values[i] /= peak
  return { binMs, lowBin: low, values }
}

/** As logNear, with an offset's exact density instead of a normal kernel. */
export function logDensity (at: number, times: number[], d: Density): number {
  let sum = Math.exp(-8)
  for (const t of times) {
    const v = d.values[Math.floor((t - at) / d.binMs) - d.lowBin]
    if (v !== undefined) sum += v
  }
  return Math.log(sum)
}

/**
 * How well a user's incoming packets `times` fit an answer clue at `at`: by its exact density when it
 * has one, else by a normal kernel of its mean and spread (logNear).
 */
export function logAnswer (at: number, times: number[], clue: { meanMs: number, sdMs: number, density?: Density }): number {
  return clue.density != null ? logDensity(at, times, clue.density) : logNear(at, times, clue.meanMs, clue.sdMs)
}

/** A Gamma(k, meanMs) draw: the sum of k exponentials of that mean. */
export function gammaDraw (exp: (meanMs: number) => number, k: number, meanMs: number): number {
  let s = 0
  for (let i = 0; i < k; i++) s += exp(meanMs)
  return s
}

/**
 * The latency model at a mixing level of mean delay `meanMs` per hop: Gamma(HOPS, meanMs); the stored
 * clue's offset from a DEPOSIT reply block's mix delay `storedMixMs` (default meanMs), see above.
 */
export function mixingModel (meanMs: number, storedMixMs = meanMs, receipts?: { receiptDelayMs: number, tickWaitMs: number }): TimingModel {
  if (meanMs <= 0) return FAST_MODEL
  const answerSdMs = Math.max(ANSWER_FLOOR_MS, Math.sqrt(2 * storedMixMs ** 2 + 4 * meanMs ** 2))
  const model: TimingModel = {
    shape: HOPS,
    thetaMs: meanMs,
    answerMeanMs: 2 * (storedMixMs - meanMs),
    answerSdMs,
    // bins of 1/40 of the spread: far finer than the density changes, coarse enough to fill
    answerDensity: sampledDensity(exp => gammaDraw(exp, 2, storedMixMs) + exp(meanMs) - gammaDraw(exp, 3, meanMs), answerSdMs / 40, `stored ${meanMs} ${storedMixMs}`)
  }
  if (receipts != null) {
    const { receiptDelayMs: R, tickWaitMs: W } = receipts
    const sdMs = Math.max(ANSWER_FLOOR_MS, Math.sqrt(R ** 2 + W ** 2 + HOPS * meanMs ** 2))
    model.receipt = {
      meanMs: R + W + HOPS * meanMs,
      sdMs,
      density: sampledDensity(exp => exp(R) + exp(W) + gammaDraw(exp, HOPS, meanMs), sdMs / 40, `receipt ${meanMs} ${R} ${W}`)
    }
  }
  return model
}

/** A model's stored clue in the receipt clue's shape (logAnswer), given its spread. */
export function storedClue (model: TimingModel, sdMs: number): { meanMs: number, sdMs: number, density?: Density } {
  return { meanMs: model.answerMeanMs ?? 0, sdMs, ...(model.answerDensity != null ? { density: model.answerDensity } : {}) }
}

/** The same model scored by normal kernels of the answer clues' mean and spread (the adversary before 2026-12-02 evening). */
export function normalKernels (model: TimingModel): TimingModel {
  const { answerDensity, receipt, ...rest } = model
  return { ...rest, ...(receipt != null ? { receipt: { meanMs: receipt.meanMs, sdMs: receipt.sdMs } } : {}) }
}

/**
 * log of (a floor + the sum over `times` (one user's deliveries) of a normal kernel of mean `meanMs`
 * after `at` and spread `sdMs`, cut at 4 sd): how well a user's incoming packets fit an answer clue.
 */
export function logNear (at: number, times: number[], meanMs: number, sdMs: number): number {
  let sum = Math.exp(-8)
  for (const t of times) {
    const z = (t - at - meanMs) / sdMs
    if (Math.abs(z) < 4) sum += Math.exp(-z * z / 2)
  }
  return Math.log(sum)
}

export interface Observation { at: number, user: string }

export interface Guess {
  /** The most likely sender, or undefined when no candidate submitted anything before. */
  guess: string | undefined
  /** Shannon entropy (bits) of the posterior over the candidates. */
  entropy: number
  posterior: Map<string, number>
}

function logGamma (dt: number, shape: number, theta: number): number {
  if (dt <= 0) return Number.NEGATIVE_INFINITY
  return (shape - 1) * Math.log(dt) - dt / theta
}

/**
 * The adversary's guess for a delivery at `at`, among `candidates`, from `submissions` (any order).
 * Submissions more than `windowMs` before are ignored (their weight is negligible anyway).
 */
export function guessSender (at: number, candidates: string[], submissions: Observation[], model: TimingModel, opts: { deliveries?: Observation[], reactionMs?: number, windowMs?: number } = {}): Guess {
  const windowMs = opts.windowMs ?? 40 * model.shape * model.thetaMs + 5_000
  const logs = new Map<string, number[]>()
  for (const c of candidates) logs.set(c, [])
  // a user's submission right after a packet was handed to it is a reaction (a receipt, a mailbox
  // ACK, a refill of reply blocks), not a message of its own: the adversary sets those aside
  const reactions = new Map<string, number[]>()
  for (const d of opts.deliveries ?? []) {
    if (d.at > at || at - d.at > windowMs + (opts.reactionMs ?? 0)) continue
    let l = reactions.get(d.user)
    if (l == null) reactions.set(d.user, l = [])
    l.push(d.at)
  }
  const reaction = (s: Observation): boolean => (reactions.get(s.user) ?? []).some(t => s.at >= t && s.at - t <= (opts.reactionMs ?? 0))
  for (const s of submissions) {
    const list = logs.get(s.user)
    if (list == null || s.at >= at || at - s.at > windowMs) continue
    if (opts.reactionMs != null && reaction(s)) continue
    list.push(logGamma(at - s.at, model.shape, model.thetaMs))
  }
  // each candidate's deliveries, in the order seen (the answer clues look at them)
  const delivered = new Map<string, number[]>()
  for (const d of opts.deliveries ?? []) {
    let l = delivered.get(d.user)
    if (l == null) delivered.set(d.user, l = [])
    l.push(d.at)
  }
  const score = new Map<string, number>()
  for (const [c, l] of logs) {
    if (l.length === 0) continue
    const m = Math.max(...l)
    let v = m + Math.log(l.reduce((a, x) => a + Math.exp(x - m), 0))
    // the density of the answer's offset, and of the receipt's (exact, or a normal), each floored
    const times = delivered.get(c) ?? []
    if (model.answerSdMs != null && opts.deliveries != null) v += logAnswer(at, times, storedClue(model, model.answerSdMs))
    if (model.receipt != null && opts.deliveries != null) v += logAnswer(at, times, model.receipt)
    score.set(c, v)
  }
  const posterior = new Map<string, number>()
  if (score.size === 0) return { guess: undefined, entropy: 0, posterior }
  const top = Math.max(...score.values())
  let sum = 0
  for (const v of score.values()) sum += Math.exp(v - top)
  let guess: string | undefined
  let best = -1
  let entropy = 0
  for (const [c, v] of score) {
    const p = Math.exp(v - top) / sum
    posterior.set(c, p)
    if (p > 0) entropy -= p * Math.log2(p)
    if (p > best) { best = p; guess = c }
  }
  return { guess, entropy, posterior }
}

/** Wilson score interval for k successes of n at the normal quantile z (1.96: 95 %, 2.576: 99 %). */
export function wilson (k: number, n: number, z = 2.576): { low: number, high: number } {
  if (n === 0) return { low: 0, high: 1 }
  const p = k / n
  const d = 1 + z * z / n
  const c = p + z * z / (2 * n)
  const r = z * Math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
  return { low: (c - r) / d, high: (c + r) / d }
}
