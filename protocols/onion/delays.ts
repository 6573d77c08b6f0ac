/**
 * Per-hop mixing delays chosen by the sender (SPEC.md section 15, Loopix "Poisson mixing"): each hop
 * that forwards a packet holds it for a delay drawn independently from an exponential distribution of
 * mean `meanMs`, so a packet's departure from a mix does not reveal which earlier arrival it was (the
 * exponential is memoryless: every packet held has the same chance of leaving next).
 *
 * Format of a delay: an integer number of milliseconds, written in the slot's delay extension (u32,
 * SPEC.md section 3). A draw is `round(-meanMs * ln(1 - U))` with U uniform on [0, 1), capped at
 * MAX_HOP_DELAY_MS (a relay drops a packet asking for more, `delay-cap`); with the largest level's mean
 * the cap is ~30 means away, so the cap changes the distribution with probability under e^-30.
 *
 * Randomness: `cryptoUniform()` (the product: node:crypto's CSPRNG, 53 bits per draw) or
 * `seededUniform(seed)` (tests and benches: the ChaCha20 keystream of a 32-byte seed, RFC 8439 through
 * libsodium, so a test's draws are reproducible and still a standard generator's).
 */
import { randomBytes } from 'node:crypto'
import { sodium } from '../crypto/keys.ts'

/** A source of uniform numbers in [0, 1). */
export type Uniform = () => number

/**
 * The longest delay a hop holds a packet (and a sender ever writes). Two minutes: 30 times the mean of
 * the slowest privacy level's hop (4 s, node/privacy.ts), and short beside a reply block's life (at
 * least 10 minutes, SPEC.md section 14), so a capped draw is vanishingly rare and a held packet never
 * outlives the keys of the hops after it.
 */
export const MAX_HOP_DELAY_MS = 120_000

/** Uniform numbers from 8 random bytes each (53 bits used); bytes are drawn 4 KiB at a time. */
function fromBytes (next: (buf: Uint8Array) => void): Uniform {
  const buf = new Uint8Array(4096)
  const view = new DataView(buf.buffer)
  let at = buf.length
  return () => {
    if (at + 8 > buf.length) { next(buf); at = 0 }
    const hi = view.getUint32(at) >>> 11 // 21 bits
    const lo = view.getUint32(at + 4) // 32 bits
    at += 8
    return (hi * 0x1_0000_0000 + lo) / 2 ** 53
  }
}

/** The product's generator: node:crypto's CSPRNG. */
export function cryptoUniform (): Uniform {
  return fromBytes(buf => { randomBytes(buf.length).copy(buf) })
}

/** A reproducible generator for tests and benches: ChaCha20 (RFC 8439, zero nonce) keyed by `seed`. */
export function seededUniform (seed: Uint8Array): Uniform {
  if (seed.length !== 32) throw new RangeError('a seed is 32 bytes')
  const key = Uint8Array.from(seed)
  const zeros = new Uint8Array(4096)
  const nonce = new Uint8Array(12)
  let counter = 0
  return fromBytes(buf => {
    sodium.crypto_stream_chacha20_ietf_xor_ic(buf, zeros, nonce, counter, key)
    counter += buf.length / 64
  })
}

/** One exponential draw of mean `meanMs`, rounded to whole ms, at most `capMs`. Mean 0: always 0. */
export function exponentialDelay (meanMs: number, uniform: Uniform, capMs = MAX_HOP_DELAY_MS): number {
  if (!(meanMs >= 0) || !Number.isFinite(meanMs)) throw new RangeError('a mean delay is a finite number >= 0')
  if (meanMs === 0) return 0
  return Math.min(capMs, Math.round(-meanMs * Math.log1p(-uniform())))
}

/** P(a draw of exponentialDelay(meanMs) <= k) for an integer k: the distribution tests check draws against. */
export function exponentialDelayCdf (k: number, meanMs: number, capMs = MAX_HOP_DELAY_MS): number {
  if (k < 0) return 0
  if (k >= capMs) return 1
  // round(x) <= k  <=>  x < k + 0.5
  return 1 - Math.exp(-(k + 0.5) / meanMs)
}

/** A drawer of per-hop delays (ms) for OnionClient: `meanMs` 0 means no delays (the `fast` level). */
export function hopDelays (meanMs: number, uniform: Uniform = cryptoUniform(), capMs = MAX_HOP_DELAY_MS): () => number {
  return () => exponentialDelay(meanMs, uniform, capMs)
}
