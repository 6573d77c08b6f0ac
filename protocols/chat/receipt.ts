/**
 * The delivery receipt, version 2 (FORMAT.md "Receipt"): batched, signed by the recipient of the messages.
 *
 *   version 0x02 | count u8 (1..32) | message ids (16 each, distinct) | signature 64     82..578 bytes
 *
 * Signature: Ed25519 by the receipting user's identity key over
 * "p2pchat/receipt/v2" || the addressee's identity key (32: the original sender, not transmitted) ||
 * version || count || ids. So a receipt bob made for alice does not verify as a receipt to carol.
 * It travels sealed (./seal.ts) in an envelope of type 0x02 to the addressee's mailbox, or, on the fast
 * path, unsealed in the reply through the message's reply block (FORMAT.md "Receipt paths").
 */
import {
  IDENTITY_KEY_BYTES,
  MAX_RECEIPT_BYTES,
  MAX_RECEIPT_IDS,
  MESSAGE_ID_BYTES,
  MIN_RECEIPT_BYTES,
  RECEIPT_SIGNATURE_LABEL,
  RECEIPT_VERSION,
  SIGNATURE_BYTES
} from './constants.ts'
import { Reader, Writer, concat, copy, isBytes, utf8Encode } from './bytes.ts'
import { InvalidKeyError, InvalidMessageIdError, InvalidReceiptError, InvalidSignatureError } from './errors.ts'
import { ed25519Verify } from '../crypto/keys.ts'
import type { Signer } from '../crypto/keys.ts'
import type { Failure } from './types.ts'

export interface Receipt {
  /** the ids of the messages being receipted: 1..32, distinct, in the order signed */
  messageIds: Uint8Array[]
  /** Ed25519 by the receipting user's identity key (see the module comment) */
  signature: Uint8Array
}

export type DecodedReceipt = { ok: true, receipt: Receipt } | Failure

const LABEL_BYTES = utf8Encode(RECEIPT_SIGNATURE_LABEL)

function idKey (id: Uint8Array): string {
  return Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString('hex')
}

/** Throws the named error unless `ids` is 1..32 distinct 16-byte ids. */
function checkIds (ids: Uint8Array[]): void {
  if (!Array.isArray(ids) || ids.length < 1 || ids.length > MAX_RECEIPT_IDS) throw new InvalidReceiptError()
  const seen = new Set<string>()
  for (const id of ids) {
    if (!isBytes(id) || id.length !== MESSAGE_ID_BYTES) throw new InvalidMessageIdError()
    const k = idKey(id)
    if (seen.has(k)) throw new InvalidReceiptError('a receipt names each message id once')
    seen.add(k)
  }
}

/** version || count || ids: the receipt before its signature. */
function encodeFields (ids: Uint8Array[]): Uint8Array {
  const w = new Writer().u8(RECEIPT_VERSION).u8(ids.length)
  for (const id of ids) w.bytes(id)
  return w.finish()
}

/** The exact bytes the receipting user signs. Throws the named errors for bad ids or key. */
export function receiptSignatureInput (addresseeIdentityKey: Uint8Array, messageIds: Uint8Array[]): Uint8Array {
  checkIds(messageIds)
  if (!isBytes(addresseeIdentityKey) || addresseeIdentityKey.length !== IDENTITY_KEY_BYTES) {
    throw new InvalidKeyError('addressee identity key must be 32 raw bytes')
  }
  return concat(LABEL_BYTES, addresseeIdentityKey, encodeFields(messageIds))
}

/**
 * Signs a receipt for `messageIds` (1..32 distinct) with the receipting user's identity signer, addressed
 * to `addresseeIdentityKey` (the sender of those messages).
 */
export function createReceipt (messageIds: Uint8Array[], signer: Signer, addresseeIdentityKey: Uint8Array): Receipt {
  const signature = signer.sign(receiptSignatureInput(addresseeIdentityKey, messageIds))
  if (!isBytes(signature) || signature.length !== SIGNATURE_BYTES) throw new InvalidSignatureError()
  return { messageIds: messageIds.map(copy), signature: copy(signature) }
}

/**
 * True if `receipt` was signed by `signerIdentityKey` (the user the messages went to) for the addressee
 * `addresseeIdentityKey` (normally the verifier's own key). Never throws.
 */
export function verifyReceipt (receipt: Receipt, signerIdentityKey: Uint8Array, addresseeIdentityKey: Uint8Array): boolean {
  let input: Uint8Array
  try {
    input = receiptSignatureInput(addresseeIdentityKey, receipt.messageIds)
  } catch {
    return false
  }
  return ed25519Verify(signerIdentityKey, input, receipt.signature)
}

/** version || count || ids || signature. Throws the named errors for a receipt the decoder would reject. */
export function encodeReceipt (receipt: Receipt): Uint8Array {
  checkIds(receipt.messageIds)
  if (!isBytes(receipt.signature) || receipt.signature.length !== SIGNATURE_BYTES) throw new InvalidSignatureError()
  return concat(encodeFields(receipt.messageIds), receipt.signature)
}

/** Strict structural decoding; never throws. The signature is checked with `verifyReceipt`. */
export function decodeReceipt (bytes: Uint8Array): DecodedReceipt {
  if (!isBytes(bytes)) return { ok: false, reason: 'input' }
  if (bytes.length < 1) return { ok: false, reason: 'length' }
  if (bytes[0] !== RECEIPT_VERSION) return { ok: false, reason: 'version' }
  if (bytes.length < MIN_RECEIPT_BYTES || bytes.length > MAX_RECEIPT_BYTES) return { ok: false, reason: 'length' }
  const r = new Reader(bytes)
  r.u8()
  const count = r.u8()
  if (count == null) return { ok: false, reason: 'length' }
  if (count < 1 || count > MAX_RECEIPT_IDS) return { ok: false, reason: 'count' }
  if (r.remaining !== count * MESSAGE_ID_BYTES + SIGNATURE_BYTES) return { ok: false, reason: 'length' }
  const messageIds: Uint8Array[] = []
  const seen = new Set<string>()
  for (let i = 0; i < count; i++) {
    const id = r.bytes(MESSAGE_ID_BYTES)
    if (id == null) return { ok: false, reason: 'length' }
    const k = idKey(id)
    if (seen.has(k)) return { ok: false, reason: 'duplicate' }
    seen.add(k)
    messageIds.push(id)
  }
  const signature = r.bytes(SIGNATURE_BYTES)
  if (signature == null) return { ok: false, reason: 'length' }
  return { ok: true, receipt: { messageIds, signature } }
}
