/**
 * Goodness-of-fit checks with a stated false-alarm rate, for tests that check random draws (mixing
 * delays, cover-traffic gaps) against the distribution they should follow.
 *
 * `ksDistance` is the one-sample Kolmogorov-Smirnov statistic D = sup |ECDF(x) - F(x)| for integer-valued
 * samples (F the CDF at integers: both are step functions jumping only at integers, so the sup is taken
 * at each distinct sample value and just before the next one). `ksThreshold(n, alpha)` is the
 * Dvoretzky-Kiefer-Wolfowitz bound with Massart's constant: P(D > sqrt(ln(2/alpha) / (2n))) <= alpha for
 * every n (not only asymptotically) and for any distribution (conservative for discrete ones). So a test
 * that asserts D <= ksThreshold(n, 1e-6) fails on correct draws with probability at most 1e-6.
 */

/** sup over x of |ECDF(x) - cdf(x)| for integer samples; `cdf(k)` = P(X <= k) for an integer k. */
export function ksDistance (samples: number[], cdf: (k: number) => number): number {
  const s = [...samples].sort((a, b) => a - b)
  const n = s.length
  let d = 0
  for (let i = 0; i < n;) {
    let j = i
    while (j < n && s[j] === s[i]) j++
    const ecdf = j / n
    d = Math.max(d, Math.abs(ecdf - cdf(s[i])))
    // just before the next distinct value the ECDF is still j/n while the CDF has grown
    const nextValue = j < n ? s[j] : Number.POSITIVE_INFINITY
    if (nextValue - 1 > s[i] && Number.isFinite(nextValue)) d = Math.max(d, Math.abs(ecdf - cdf(nextValue - 1)))
    i = j
  }
  // below the smallest sample the ECDF is 0
  if (n > 0) d = Math.max(d, Math.abs(cdf(s[0] - 1)))
  return d
}

/** sup over x of |ECDF(x) - cdf(x)| for samples from a continuous distribution (the sup is at a sample, from either side). */
export function ksDistanceContinuous (samples: number[], cdf: (x: number) => number): number {
  const s = [...samples].sort((a, b) => a - b)
  const n = s.length
  let d = 0
  for (let i = 0; i < n; i++) {
    const f = cdf(s[i])
    d = Math.max(d, Math.abs((i + 1) / n - f), Math.abs(f - i / n))
  }
  return d
}

/** The DKW-Massart threshold: D exceeds it with probability at most `alpha` under the hypothesis. */
export function ksThreshold (n: number, alpha: number): number {
  return Math.sqrt(Math.log(2 / alpha) / (2 * n))
}

/** The false-alarm rate every distribution test here uses (issue 11: at most 1e-6, so it cannot flake). */
export const FALSE_ALARM = 1e-6
