/**
 * The end-to-end chat payload, version 2: signed messages addressed to the recipient's identity key,
 * batched signed receipts, the envelope that tells them apart, and the seal to the recipient's onion key
 * of an epoch around it. Byte layouts, the byte budget and the known-answer vectors: ./FORMAT.md.
 */
export * from './constants.ts'
export * from './errors.ts'
export { DECODE_REASONS } from './types.ts'
export type { DecodeReason, Failure, KeyForEpoch, RandomSource } from './types.ts'
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
export { seal, unseal, inspectSeal, sealEphemeralKey, type SealOptions, type SealHeader, type Unsealed } from './seal.ts'
export {
  sealMessage,
  sealReceipt,
  openSealed,
  openMessage,
  type SealTo,
  type MessageRecipient,
  type SealEnvelopeOptions,
  type OpenedItem,
  type OpenedMessage
} from './chat.ts'
export {
  createReceipt,
  verifyReceipt,
  encodeReceipt,
  decodeReceipt,
  receiptSignatureInput,
  type Receipt,
  type DecodedReceipt
} from './receipt.ts'
export { encodeEnvelope, decodeEnvelope, type Envelope, type DecodedEnvelope } from './envelope.ts'
export { nameRecordFits, receiptBlockFits, sealedMessageBytes, type MessageSizes } from './budget.ts'
export { safetyNumber, safetyNumberHalf, SAFETY_NUMBER_ITERATIONS } from './safety-number.ts'
