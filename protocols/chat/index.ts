/**
 * The end-to-end chat payload: signed messages sealed to the recipient's onion key, signed receipts, and
 * the envelope that tells them apart inside an onion payload. Byte layouts: ./FORMAT.md.
 */
export * from './constants.ts'
export * from './errors.ts'
export type { DecodeReason, Failure } from './types.ts'
export { validateNick, assertValidNick, NICK_PATTERN } from './nick.ts'
export { fingerprint, isFingerprint, normalizeFingerprint, FINGERPRINT_BYTES, FINGERPRINT_PATTERN } from './fingerprint.ts'
export {
  generateEd25519Seed,
  ed25519SignerFromSeed,
  ed25519Verify,
  generateX25519KeyPair,
  x25519PublicFromPrivate,
  type X25519KeyPair,
  type Signer
} from '../crypto/keys.ts'
export {
  createMessage,
  validateMessage,
  encodeMessage,
  decodeMessage,
  messageSignatureInput,
  type ChatMessage,
  type CreateMessageInit,
  type DecodedMessage
} from './message.ts'
export { seal, unseal, type Unsealed } from './seal.ts'
export { sealMessage, openMessage } from './chat.ts'
export {
  createReceipt,
  verifyReceipt,
  encodeReceipt,
  decodeReceipt,
  receiptSignatureInput,
  type Receipt,
  type DecodedReceipt
} from './receipt.ts'
export {
  encodeEnvelope,
  decodeEnvelope,
  type Envelope,
  type DecodedEnvelope,
  type EncodeEnvelopeOptions,
  type DecodeEnvelopeOptions
} from './envelope.ts'
