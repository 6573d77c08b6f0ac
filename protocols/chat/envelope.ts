/**
 * The envelope, version 2 (FORMAT.md "Envelope"): the plaintext inside a seal, so a recipient can tell a
 * message from a receipt.
 *
 *   type u8 (0x01 message, 0x02 receipt) || body (the rest: an encoded message or an encoded receipt)
 *
 * No length and no padding: the seal (or a reply block's payload length) bounds the body, and the packet
 * layer pads. A mailbox stores the sealed envelope as one opaque item.
 */
import {
  ENVELOPE_TYPE_MESSAGE,
  ENVELOPE_TYPE_RECEIPT,
  MAX_ENCODED_MESSAGE,
  MIN_ENCODED_MESSAGE
} from './constants.ts'
import { Writer, concat, isBytes } from './bytes.ts'
import { EnvelopeTooLargeError } from './errors.ts'
import { decodeMessage, type ChatMessage } from './message.ts'
import { decodeReceipt, encodeReceipt, type Receipt } from './receipt.ts'
import type { Failure } from './types.ts'

/** What to put in an envelope: an already encoded, signed message (`encodeMessage`), or a receipt. */
export type Envelope =
  | { type: 'message', encoded: Uint8Array }
  | { type: 'receipt', receipt: Receipt }

/**
 * A decoded envelope. A message is decoded and its signature checked for the decoding user
 * (`signatureValid`, as `decodeMessage`); a receipt is decoded only (check it with `verifyReceipt`).
 */
export type DecodedEnvelope =
  | { ok: true, type: 'message', message: ChatMessage, signatureValid: boolean }
  | { ok: true, type: 'receipt', receipt: Receipt }
  | Failure

export function encodeEnvelope (envelope: Envelope): Uint8Array {
  if (envelope.type === 'message') {
    const body = envelope.encoded
    if (!isBytes(body) || body.length < MIN_ENCODED_MESSAGE || body.length > MAX_ENCODED_MESSAGE) {
      throw new EnvelopeTooLargeError('encoded message length out of bounds')
    }
    return concat(Uint8Array.of(ENVELOPE_TYPE_MESSAGE), body)
  }
  return new Writer().u8(ENVELOPE_TYPE_RECEIPT).bytes(encodeReceipt(envelope.receipt)).finish()
}

/** Strict decoding; never throws. `ownIdentityKey` is the decoding user's identity key (a message's addressee). */
export function decodeEnvelope (bytes: Uint8Array, ownIdentityKey: Uint8Array): DecodedEnvelope {
  if (!isBytes(bytes)) return { ok: false, reason: 'input' }
  if (bytes.length < 1) return { ok: false, reason: 'length' }
  const body = bytes.subarray(1)
  switch (bytes[0]) {
    case ENVELOPE_TYPE_MESSAGE: {
      const decoded = decodeMessage(body, ownIdentityKey)
      if (!decoded.ok) return decoded
      return { ok: true, type: 'message', message: decoded.message, signatureValid: decoded.signatureValid }
    }
    case ENVELOPE_TYPE_RECEIPT: {
      const decoded = decodeReceipt(body)
      if (!decoded.ok) return decoded
      return { ok: true, type: 'receipt', receipt: decoded.receipt }
    }
    default:
      return { ok: false, reason: 'type' }
  }
}
