/** Small byte helpers shared by the chat encoders. Internal to protocols/chat. */

const utf8Encoder = new TextEncoder()
/** fatal: reject invalid UTF-8; ignoreBOM: keep a leading U+FEFF so decoding is the exact inverse of encoding. */
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

export function utf8Encode (text: string): Uint8Array {
  return utf8Encoder.encode(text)
}

/** Returns undefined for invalid UTF-8 instead of throwing. */
export function utf8Decode (bytes: Uint8Array): string | undefined {
  try {
    return utf8Decoder.decode(bytes)
  } catch {
    return undefined
  }
}

export function concat (...parts: Uint8Array[]): Uint8Array {
  let length = 0
  for (const p of parts) length += p.length
  const out = new Uint8Array(length)
  let offset = 0
  for (const p of parts) {
    out.set(p, offset)
    offset += p.length
  }
  return out
}

/** A plain Uint8Array copy (never a Buffer, never a view into the caller's bytes). */
export function copy (bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length)
  out.set(bytes)
  return out
}

export function equalBytes (a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  let diff = 0
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i]
  return diff === 0
}

export function isBytes (value: unknown): value is Uint8Array {
  return value instanceof Uint8Array
}

/** Appends big-endian fields to a growing list of parts. */
export class Writer {
  readonly #parts: Uint8Array[] = []

  u8 (value: number): this {
    this.#parts.push(Uint8Array.of(value))
    return this
  }

  u16 (value: number): this {
    this.#parts.push(Uint8Array.of(value >>> 8, value & 0xff))
    return this
  }

  u32 (value: number): this {
    this.#parts.push(Uint8Array.of(value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff))
    return this
  }

  u64 (value: number): this {
    const b = new Uint8Array(8)
    new DataView(b.buffer).setBigUint64(0, BigInt(value))
    this.#parts.push(b)
    return this
  }

  bytes (value: Uint8Array): this {
    this.#parts.push(value)
    return this
  }

  finish (): Uint8Array {
    return concat(...this.#parts)
  }
}

/** Reads big-endian fields; every read returns undefined past the end instead of throwing. */
export class Reader {
  readonly #bytes: Uint8Array
  #offset = 0

  constructor (bytes: Uint8Array) {
    this.#bytes = bytes
  }

  get offset (): number {
    return this.#offset
  }

  get remaining (): number {
    return this.#bytes.length - this.#offset
  }

  u8 (): number | undefined {
    if (this.remaining < 1) return undefined
    return this.#bytes[this.#offset++]
  }

  u16 (): number | undefined {
    if (this.remaining < 2) return undefined
    const v = (this.#bytes[this.#offset] << 8) | this.#bytes[this.#offset + 1]
    this.#offset += 2
    return v
  }

  u32 (): number | undefined {
    if (this.remaining < 4) return undefined
    const b = this.#bytes
    const o = this.#offset
    const v = ((b[o] << 24) >>> 0) + (b[o + 1] << 16) + (b[o + 2] << 8) + b[o + 3]
    this.#offset += 4
    return v
  }

  /** Returns a bigint so values above 2^53 can be seen and rejected by the caller. */
  u64 (): bigint | undefined {
    if (this.remaining < 8) return undefined
    let v = 0n
    for (let i = 0; i < 8; i++) v = (v << 8n) | BigInt(this.#bytes[this.#offset + i])
    this.#offset += 8
    return v
  }

  /** A copy of the next n bytes. */
  bytes (n: number): Uint8Array | undefined {
    if (n < 0 || this.remaining < n) return undefined
    const out = copy(this.#bytes.subarray(this.#offset, this.#offset + n))
    this.#offset += n
    return out
  }
}
