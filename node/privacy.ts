/**
 * Privacy levels a user picks (`p2pchat start --privacy <level>`, README "Privacy levels", SPEC.md
 * section 15): how long each hop holds the user's packets. A level is a mean per-hop delay; every hop
 * that forwards one of the user's packets (two mixes on the way out; two mixes and the entry relay on
 * the way back through a reply block) holds it for an exponential draw of that mean (protocols/onion/
 * delays.ts). A message to a user online crosses 5 delayed hops (2 to the mailbox, 3 through the
 * recipient's stocked reply block), so the delays add on average 5 x the mean to its way.
 *
 * Cover traffic (loop and drop cover at Poisson rates) is NOT implemented yet: every level sends only
 * real packets, so an observer of a user's link still sees when the user is active. `coverPerMinute`
 * says so (0) until it is; the status line and README show it.
 */
import { UserError } from './errors.ts'

export interface PrivacyLevel {
  name: string
  /** Mean delay per forwarding hop, ms (0: none). */
  meanDelayMs: number
  /** Cover packets per minute a client sends (loop + drop): none yet at any level. */
  coverPerMinute: number
  /** One line for --help, /status and the README. */
  summary: string
}

/**
 * The levels. `fast` is version 2's behaviour before mixing: packets go on at once, and whoever sees
 * a message's first and last relay links sender and recipient by timing. `standard` (the default) is
 * 500 ms per hop: ~2.5 s added on average to a message, inside the issue's 5 s median target; `high`
 * (2 s per hop, ~10 s a message) is for those who value unlinkability over chat speed. Nym's default is
 * 50 ms per hop, for a network with far more traffic to hide in than a young p2pchat has.
 */
export const PRIVACY_LEVELS: Readonly<Record<string, PrivacyLevel>> = {
  fast: { name: 'fast', meanDelayMs: 0, coverPerMinute: 0, summary: 'fast: no mixing delays, no cover traffic; timing links sender and recipient' },
  low: { name: 'low', meanDelayMs: 100, coverPerMinute: 0, summary: 'low: 100 ms mean delay per hop, no cover traffic yet' },
  standard: { name: 'standard', meanDelayMs: 500, coverPerMinute: 0, summary: 'standard: 500 ms mean delay per hop, no cover traffic yet' },
  high: { name: 'high', meanDelayMs: 2000, coverPerMinute: 0, summary: 'high: 2 s mean delay per hop, no cover traffic yet' }
}

/**
 * Extra time a request through the onion needs at a level: it crosses 5 delayed hops there and back
 * (2 mixes out; mix, mix, entry relay back through the reply block), a Gamma(5, mean) sum whose
 * 0.9999 quantile is 17.6 means; so 18 means, added to every request timeout (and so to what waits on
 * one), keep delays from passing for lost requests.
 */
export function roundTripAllowanceMs (level: PrivacyLevel): number {
  return Math.ceil(18 * level.meanDelayMs)
}

/** The level of a user who picks none. */
export const DEFAULT_PRIVACY = 'standard'

/** The level named `name`, or a UserError naming the levels. */
export function privacyLevel (name: string): PrivacyLevel {
  const level = Object.hasOwn(PRIVACY_LEVELS, name) ? PRIVACY_LEVELS[name] : undefined
  if (level == null) throw new UserError(`unknown privacy level "${name.slice(0, 40)}"; the levels are ${Object.keys(PRIVACY_LEVELS).join(', ')}`, 'USAGE')
  return level
}

/** A level with its mean delay replaced (tests and demos shorten timers; P2PCHAT_TIMING hopDelayMs). */
export function withMeanDelay (level: PrivacyLevel, meanDelayMs: number): PrivacyLevel {
  return { ...level, meanDelayMs, summary: `${level.name} (mean delay per hop overridden: ${meanDelayMs} ms), no cover traffic yet` }
}
