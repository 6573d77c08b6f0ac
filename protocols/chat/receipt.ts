/**
 * The delivery receipt (FORMAT.md "Receipt"): the recipient signs the message id with its identity key.
 * It travels back inside the reply packet built from the message's SURB, whose keys already encrypt it.
 */
import {
  MESSAGE_ID_BYTES,
  RECEIPT_BYTES,
  RECEIPT_SIGNATURE_LABEL,
  RECEIPT_VERSION,
  SIGNATURE_BYTES
} from './constants.ts'
import { Reader, Writer, concat, copy, isBytes, utf8Encode } from './bytes.ts'
import { InvalidMessageIdError, InvalidSignatureError } from './errors.ts'
import { ed25519Verify } from '../crypto/keys.ts'
import type { Signer } from '../crypto/keys.ts'
import type { Failure } from './types.ts'

export interface Receipt {
  /** the id of the message being receipted */
  messageId: Uint8Array
  /** Ed25519 by the recipient's identity key over "p2pchat/receipt/v1" || messageId */
  signature: Uint8Array
}

export type DecodedReceipt = { ok: true, receipt: Receipt } | Failure

const LABEL_BYTES = utf8Encode(RECEIPT_SIGNATURE_LABEL)

/** The exact bytes the recipient signs. */
export function receiptSignatureInput (messageId: Uint8Array): Uint8Array {
  return concat(LABEL_BYTES, messageId)
}

/** Signs a receipt for `messageId` with the recipient's identity signer. */
export function createReceipt (messageId: Uint8Array, signer: Signer): Receipt {
  if (!isBytes(messageId) || messageId.length !== MESSAGE_ID_BYTES) throw new InvalidMessageIdError()
  const signature = signer.sign(receiptSignatureInput(messageId))
  if (!isBytes(signature) || signature.length !== SIGNATURE_BYTES) throw new InvalidSignatureError()
  return { messageId: copy(messageId), signature: copy(signature) }
}

/** True if the receipt was signed by `identityKey` (raw 32-byte Ed25519). Never throws. */
export function verifyReceipt (receipt: Receipt, identityKey: Uint8Array): boolean {
  if (!isBytes(receipt.messageId) || receipt.messageId.length !== MESSAGE_ID_BYTES) return false
  return ed25519Verify(identityKey, receiptSignatureInput(receipt.messageId), receipt.signature)
}

export function encodeReceipt (receipt: Receipt): Uint8Array {
  if (!isBytes(receipt.messageId) || receipt.messageId.length !== MESSAGE_ID_BYTES) throw new InvalidMessageIdError()
  if (!isBytes(receipt.signature) || receipt.signature.length !== SIGNATURE_BYTES) throw new InvalidSignatureError()
  return new Writer().u8(RECEIPT_VERSION).bytes(receipt.messageId).bytes(receipt.signature).finish()
}

/** Strict structural decoding; never throws. The signature is checked with `verifyReceipt`. */
export function decodeReceipt (bytes: Uint8Array): DecodedReceipt {
  if (!isBytes(bytes)) return { ok: false, reason: 'input' }
  if (bytes.length < 1) return { ok: false, reason: 'length' }
  if (bytes[0] !== RECEIPT_VERSION) return { ok: false, reason: 'version' }
  if (bytes.length !== RECEIPT_BYTES) return { ok: false, reason: 'length' }
  const r = new Reader(bytes)
  r.u8()
  const messageId = r.bytes(MESSAGE_ID_BYTES)
  const signature = r.bytes(SIGNATURE_BYTES)
  if (messageId == null || signature == null) return { ok: false, reason: 'length' }
  return { ok: true, receipt: { messageId, signature } }
}
