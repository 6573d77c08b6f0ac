/**
 * The envelope (FORMAT.md "Envelope"): what an onion payload holds, so a recipient can tell a message from
 * a receipt. type(1) || body length(2, big-endian) || body [|| zero padding when asked for].
 * The explicit length lets the onion layer pad the payload to its fixed capacity; `decodeEnvelope` accepts
 * trailing bytes only with `{ padded: true }`, and then only zeros.
 */
import {
  ENVELOPE_HEADER_BYTES,
  ENVELOPE_TYPE_MESSAGE,
  ENVELOPE_TYPE_RECEIPT,
  MAX_SEALED_MESSAGE,
  SEALED_OVERHEAD
} from './constants.ts'
import { Reader, Writer, isBytes } from './bytes.ts'
import { EnvelopeTooLargeError } from './errors.ts'
import { decodeReceipt, encodeReceipt, type Receipt } from './receipt.ts'
import type { Failure } from './types.ts'

export type Envelope =
  /** `sealed`: the output of `sealMessage`, opened with `openMessage` */
  | { type: 'message', sealed: Uint8Array }
  | { type: 'receipt', receipt: Receipt }

export type DecodedEnvelope = { ok: true, envelope: Envelope } | Failure

export interface EncodeEnvelopeOptions {
  /** pad with zeros to exactly this many bytes (e.g. the onion payload capacity) */
  padTo?: number
}

export interface DecodeEnvelopeOptions {
  /** accept zero bytes after the body (a payload padded to a fixed size) */
  padded?: boolean
}

export function encodeEnvelope (envelope: Envelope, options: EncodeEnvelopeOptions = {}): Uint8Array {
  let type: number
  let body: Uint8Array
  if (envelope.type === 'message') {
    type = ENVELOPE_TYPE_MESSAGE
    body = envelope.sealed
    if (!isBytes(body) || body.length < SEALED_OVERHEAD || body.length > MAX_SEALED_MESSAGE) {
      throw new EnvelopeTooLargeError('sealed message length out of bounds')
    }
  } else {
    type = ENVELOPE_TYPE_RECEIPT
    body = encodeReceipt(envelope.receipt)
  }
  const encoded = new Writer().u8(type).u16(body.length).bytes(body).finish()
  if (options.padTo == null) return encoded
  if (encoded.length > options.padTo) throw new EnvelopeTooLargeError(`envelope of ${encoded.length} bytes does not fit in ${options.padTo}`)
  const padded = new Uint8Array(options.padTo)
  padded.set(encoded)
  return padded
}

/** Strict decoding; never throws. A message body is returned sealed (open it with `openMessage`). */
export function decodeEnvelope (bytes: Uint8Array, options: DecodeEnvelopeOptions = {}): DecodedEnvelope {
  if (!isBytes(bytes)) return { ok: false, reason: 'input' }
  const r = new Reader(bytes)
  const type = r.u8()
  const length = r.u16()
  if (type == null || length == null) return { ok: false, reason: 'length' }
  if (type !== ENVELOPE_TYPE_MESSAGE && type !== ENVELOPE_TYPE_RECEIPT) return { ok: false, reason: 'type' }
  const body = r.bytes(length)
  if (body == null) return { ok: false, reason: 'length' }
  if (r.remaining !== 0) {
    if (options.padded !== true) return { ok: false, reason: 'length' }
    for (let i = ENVELOPE_HEADER_BYTES + length; i < bytes.length; i++) {
      if (bytes[i] !== 0) return { ok: false, reason: 'padding' }
    }
  }
  if (type === ENVELOPE_TYPE_MESSAGE) {
    if (length < SEALED_OVERHEAD || length > MAX_SEALED_MESSAGE) return { ok: false, reason: 'length' }
    return { ok: true, envelope: { type: 'message', sealed: body } }
  }
  const decoded = decodeReceipt(body)
  if (!decoded.ok) return decoded
  return { ok: true, envelope: { type: 'receipt', receipt: decoded.receipt } }
}
