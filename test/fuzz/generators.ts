/**
 * Deterministic input generators for the wire fuzzers: a seeded PRNG and byte / string mutators.
 * Shared by test/hardening-fuzz.test.ts and `npm run fuzz` (test/fuzz/run.ts), so a failure seen in
 * either reproduces with the same seed.
 */

/** sfc32 (Chris Doty-Humphrey's Small Fast Counter), seeded through splitmix32. 2^32 seeds, not cryptographic. */
export class Rng {
  private a: number
  private b: number
  private c: number
  private d: number
  readonly seed: number

  constructor (seed: number) {
    this.seed = seed >>> 0
    let s = this.seed
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0
      let z = s
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
      return (z ^ (z >>> 16)) >>> 0
    }
    this.a = next(); this.b = next(); this.c = next(); this.d = next()
    for (let i = 0; i < 12; i++) this.u32()
  }

  u32 (): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0
    this.d = (this.d + 1) >>> 0
    this.a = this.b ^ (this.b >>> 9)
    this.b = (this.c + (this.c << 3)) >>> 0
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0
    this.c = (this.c + t) >>> 0
    return t
  }

  /** An integer in [0, n). */
  int (n: number): number {
    if (n <= 1) return 0
    return Math.floor((this.u32() / 0x100000000) * n)
  }

  /** An integer in [lo, hi]. */
  range (lo: number, hi: number): number { return lo + this.int(hi - lo + 1) }
  chance (p: number): boolean { return this.u32() / 0x100000000 < p }
  pick<T> (items: readonly T[]): T { return items[this.int(items.length)] }

  bytes (n: number): Uint8Array {
    const out = new Uint8Array(n)
    for (let i = 0; i < n; i += 4) {
      const v = this.u32()
      out[i] = v & 0xff
      if (i + 1 < n) out[i + 1] = (v >>> 8) & 0xff
      if (i + 2 < n) out[i + 2] = (v >>> 16) & 0xff
      if (i + 3 < n) out[i + 3] = v >>> 24
    }
    return out
  }

  /** Picks a key of `weights` with probability proportional to its weight. */
  weighted<K extends string> (weights: Record<K, number>): K {
    const entries = Object.entries(weights) as Array<[K, number]>
    let total = 0
    for (const [, w] of entries) total += w
    let x = this.u32() / 0x100000000 * total
    for (const [k, w] of entries) {
      if (x < w) return k
      x -= w
    }
    return entries[entries.length - 1][0]
  }
}

/** Values that break length fields and bounds checks more often than random ones. */
const INTERESTING = [0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe, 0x20, 0x40]

export type Mutation =
  | 'bitflip' | 'bitflips' | 'byte' | 'interesting' | 'truncate' | 'extend' | 'insert' | 'delete'
  | 'duplicate' | 'splice' | 'resize' | 'random' | 'zero-run' | 'swap'

export const ALL_MUTATIONS: readonly Mutation[] = [
  'bitflip', 'bitflips', 'byte', 'interesting', 'truncate', 'extend', 'insert', 'delete',
  'duplicate', 'splice', 'resize', 'random', 'zero-run', 'swap'
]

function concat (...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let o = 0
  for (const p of parts) { out.set(p, o); o += p.length }
  return out
}

/**
 * One mutation of `input` (never modified). `region` restricts position-based mutations to
 * [start, end) of the input, so a fuzzer can aim at a header or a length field.
 */
export function mutate (rng: Rng, input: Uint8Array, kind: Mutation, opts: { region?: [number, number], other?: Uint8Array, maxLength?: number } = {}): Uint8Array {
  const len = input.length
  const [lo, hi] = opts.region ?? [0, len]
  const pos = (): number => hi > lo ? rng.range(lo, hi - 1) : 0
  const maxLength = opts.maxLength ?? len * 2 + 64
  const out = new Uint8Array(input)
  switch (kind) {
    case 'bitflip':
      if (len > 0) { const p = pos(); out[p] ^= 1 << rng.int(8) }
      return out
    case 'bitflips': {
      const n = rng.range(2, 16)
      for (let i = 0; i < n && len > 0; i++) { const p = pos(); out[p] ^= 1 << rng.int(8) }
      return out
    }
    case 'byte':
      if (len > 0) out[pos()] = rng.int(256)
      return out
    case 'interesting': {
      if (len === 0) return out
      const p = pos()
      const width = rng.pick([1, 2, 4, 8])
      const v = rng.pick(INTERESTING)
      for (let i = 0; i < width && p + i < len; i++) out[p + i] = i === 0 ? v : (v === 0xff || v === 0x7f ? 0xff : 0)
      return out
    }
    case 'truncate':
      return input.slice(0, rng.int(len + 1))
    case 'extend':
      return concat(input, rng.bytes(rng.range(1, Math.max(1, Math.min(256, maxLength - len)))))
    case 'insert': {
      const p = rng.int(len + 1)
      return concat(input.subarray(0, p), rng.bytes(rng.range(1, 32)), input.subarray(p))
    }
    case 'delete': {
      if (len === 0) return out
      const p = rng.int(len)
      return concat(input.subarray(0, p), input.subarray(Math.min(len, p + rng.range(1, 32))))
    }
    case 'duplicate': {
      if (len === 0) return out
      const p = rng.int(len)
      const chunk = input.subarray(p, Math.min(len, p + rng.range(1, 64)))
      const q = rng.int(len + 1)
      return concat(input.subarray(0, q), chunk, input.subarray(q))
    }
    case 'splice': {
      const other = opts.other ?? rng.bytes(len)
      const p = rng.int(len + 1)
      const q = rng.int(other.length + 1)
      return concat(input.subarray(0, p), other.subarray(q))
    }
    case 'resize': {
      // the right content at a wrong length: a few bytes short or long, or a round size
      const target = rng.pick([len - 1, len + 1, len - rng.range(1, 8), len + rng.range(1, 8), 0, 1, rng.int(maxLength + 1)])
      const n = Math.max(0, target)
      if (n <= len) return input.slice(0, n)
      return concat(input, new Uint8Array(n - len))
    }
    case 'random':
      return rng.bytes(rng.int(maxLength + 1))
    case 'zero-run': {
      if (len === 0) return out
      const p = pos()
      out.fill(rng.chance(0.5) ? 0 : 0xff, p, Math.min(len, p + rng.range(1, 64)))
      return out
    }
    case 'swap': {
      if (len < 2) return out
      const a = rng.int(len)
      const b = rng.int(len)
      const t = out[a]; out[a] = out[b]; out[b] = t
      return out
    }
  }
}

/**
 * The same bytes as a view at a random offset inside a larger buffer, or as a Buffer: decoders that
 * forget `byteOffset` read the wrong bytes from such inputs.
 */
export function reframe (rng: Rng, bytes: Uint8Array): Uint8Array {
  switch (rng.int(3)) {
    case 0: return bytes
    case 1: {
      const pad = rng.range(1, 17)
      const big = new Uint8Array(bytes.length + pad + rng.int(16))
      big.set(bytes, pad)
      return big.subarray(pad, pad + bytes.length)
    }
    default: return Buffer.from(bytes)
  }
}

/** Adds one to a histogram bucket. */
export function count (histogram: Record<string, number>, key: string, n = 1): void {
  histogram[key] = (histogram[key] ?? 0) + n
}

/** Inputs seen by one handler and how each ended. */
export interface HandlerReport {
  inputs: number
  outcomes: Record<string, number>
  ms: number
}

export type FamilyReport = Record<string, HandlerReport>

export function newReport (): HandlerReport {
  return { inputs: 0, outcomes: {}, ms: 0 }
}

/** A fuzzing invariant broke: a crash or a wrong acceptance. Carries the seed and input to reproduce. */
export class FuzzFailure extends Error {
  readonly handler: string
  readonly input: string
  constructor (handler: string, seed: number, iteration: number, what: string, input: Uint8Array | string) {
    const shown = typeof input === 'string' ? JSON.stringify(input.slice(0, 400)) : Buffer.from(input.subarray(0, 400)).toString('hex')
    super(`${handler}: ${what} (seed ${seed}, iteration ${iteration}); input: ${shown}`)
    this.name = 'FuzzFailure'
    this.handler = handler
    this.input = shown
  }
}

export function totalInputs (report: FamilyReport): number {
  return Object.values(report).reduce((n, r) => n + r.inputs, 0)
}

export function formatReport (family: string, report: FamilyReport): string {
  const lines = [`${family}: ${totalInputs(report)} inputs`]
  for (const [handler, r] of Object.entries(report)) {
    const hist = Object.entries(r.outcomes).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k}=${v}`).join(' ')
    lines.push(`  ${handler}: ${r.inputs} inputs in ${Math.round(r.ms)} ms: ${hist}`)
  }
  return lines.join('\n')
}
