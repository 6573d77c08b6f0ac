/**
 * The signed chat message, version 2 (FORMAT.md "Message"): build, validate, encode + sign, decode + verify.
 *
 *   version 0x02 | id 16 | timestamp u64 | nick length u8 | nick | sender identity key 32 |
 *   text length u16 | text (<= 1024 UTF-8 bytes) | record length u16 | sender's name record (<= 784, opaque) |
 *   reply block length u16 (0 or 529) | reply block | signature 64
 *
 * The signature is Ed25519 by the sender's identity key over
 * "p2pchat/msg/v2" || the recipient's identity key (32, not transmitted) || every byte before the signature,
 * so a message a forger re-seals to someone else does not verify for them. The decoder needs the
 * recipient's own identity key; it cannot and does not say whether a signature would be valid for some
 * other addressee. Sealing is in ./seal.ts; `sealMessage` / `openMessage` (./chat.ts) compose both.
 */
import { randomBytes } from 'node:crypto'
import {
  IDENTITY_KEY_BYTES,
  MAX_ENCODED_MESSAGE,
  MAX_NAME_RECORD_BYTES,
  MAX_TEXT_BYTES,
  MESSAGE_ID_BYTES,
  MESSAGE_SIGNATURE_LABEL,
  MESSAGE_VERSION,
  MIN_ENCODED_MESSAGE,
  NICK_MAX_LENGTH,
  NICK_MIN_LENGTH,
  REPLY_BLOCK_BYTES,
  SIGNATURE_BYTES
} from './constants.ts'
import { Reader, Writer, concat, copy, equalBytes, isBytes, utf8Decode, utf8Encode } from './bytes.ts'
import {
  InvalidKeyError,
  InvalidMessageIdError,
  InvalidReplyBlockError,
  InvalidSignatureError,
  InvalidTextError,
  InvalidTimestampError,
  NameRecordTooLargeError,
  SignerMismatchError,
  TextTooLongError
} from './errors.ts'
import { ed25519Verify } from '../crypto/keys.ts'
import type { Signer } from '../crypto/keys.ts'
import { assertValidNick, validateNick } from './nick.ts'
import type { Failure } from './types.ts'

export interface ChatMessage {
  /** 16 random bytes chosen by the sender; receipts name the message by it */
  id: Uint8Array
  /** ms since the epoch, as claimed by the sender */
  timestamp: number
  senderNick: string
  /** raw 32-byte Ed25519 public key */
  senderIdentityKey: Uint8Array
  text: string
  /** the sender's signed name record (opaque here, 0..784 bytes; empty = omitted: a larger record is left out); the caller parses and checks it */
  nameRecord: Uint8Array
  /** a reply block for a fast receipt: empty, or a 529-byte Sphinx v2 reply block */
  replyBlock: Uint8Array
}

export interface CreateMessageInit {
  senderNick: string
  senderIdentityKey: Uint8Array
  text: string
  nameRecord?: Uint8Array
  replyBlock?: Uint8Array
  /** default: 16 random bytes */
  id?: Uint8Array
  /** default: Date.now() */
  timestamp?: number
}

/**
 * A structurally valid message. `signatureValid`: the signature verifies under the identity key the message
 * names *and* the recipient identity key the caller gave (its own). Whether the sender's key is the right
 * one for the nick is the caller's question (the carried record, pins, the directory).
 */
export type DecodedMessage = { ok: true, message: ChatMessage, signatureValid: boolean } | Failure

const SIGNATURE_LABEL_BYTES = utf8Encode(MESSAGE_SIGNATURE_LABEL)

function isKey (key: unknown): key is Uint8Array {
  return isBytes(key) && key.length === IDENTITY_KEY_BYTES
}

/** Checks every field against the format's rules; throws the named error of the first one broken. */
export function validateMessage (msg: ChatMessage): void {
  if (!isBytes(msg.id) || msg.id.length !== MESSAGE_ID_BYTES) throw new InvalidMessageIdError()
  if (!Number.isSafeInteger(msg.timestamp) || msg.timestamp < 0) throw new InvalidTimestampError()
  assertValidNick(msg.senderNick)
  if (!isKey(msg.senderIdentityKey)) throw new InvalidKeyError('sender identity key must be 32 raw bytes')
  textBytes(msg.text)
  if (!isBytes(msg.nameRecord)) throw new NameRecordTooLargeError('name record must be bytes')
  if (msg.nameRecord.length > MAX_NAME_RECORD_BYTES) throw new NameRecordTooLargeError()
  if (!isBytes(msg.replyBlock)) throw new InvalidReplyBlockError('reply block must be bytes')
  if (msg.replyBlock.length !== 0 && msg.replyBlock.length !== REPLY_BLOCK_BYTES) throw new InvalidReplyBlockError()
}

/** The UTF-8 bytes of a valid text; throws InvalidTextError / TextTooLongError. */
function textBytes (text: string): Uint8Array {
  // a lone surrogate would be silently replaced by U+FFFD when encoded: refuse it instead
  if (typeof text !== 'string' || !text.isWellFormed()) throw new InvalidTextError('text must be well-formed Unicode')
  if (text.includes('\u0000')) throw new InvalidTextError('text must not contain NUL')
  const bytes = utf8Encode(text)
  if (bytes.length > MAX_TEXT_BYTES) throw new TextTooLongError()
  return bytes
}

/** Copies bytes so later changes by the caller do not reach the message; anything else is left for validation to reject. */
function copyIfBytes (value: Uint8Array): Uint8Array {
  return isBytes(value) ? copy(value) : value
}

/** A validated message with a fresh random id and the current time unless given. */
export function createMessage (init: CreateMessageInit): ChatMessage {
  const msg: ChatMessage = {
    id: init.id === undefined ? copy(randomBytes(MESSAGE_ID_BYTES)) : copyIfBytes(init.id),
    timestamp: init.timestamp ?? Date.now(),
    senderNick: init.senderNick,
    senderIdentityKey: copyIfBytes(init.senderIdentityKey),
    text: init.text,
    nameRecord: init.nameRecord === undefined ? new Uint8Array(0) : copyIfBytes(init.nameRecord),
    replyBlock: init.replyBlock === undefined ? new Uint8Array(0) : copyIfBytes(init.replyBlock)
  }
  validateMessage(msg)
  return msg
}

/** The signed fields: everything of FORMAT.md "Message" before the signature. */
function encodeFields (msg: ChatMessage): Uint8Array {
  validateMessage(msg)
  const nick = utf8Encode(msg.senderNick)
  const text = textBytes(msg.text)
  return new Writer()
    .u8(MESSAGE_VERSION)
    .bytes(msg.id)
    .u64(msg.timestamp)
    .u8(nick.length)
    .bytes(nick)
    .bytes(msg.senderIdentityKey)
    .u16(text.length)
    .bytes(text)
    .u16(msg.nameRecord.length)
    .bytes(msg.nameRecord)
    .u16(msg.replyBlock.length)
    .bytes(msg.replyBlock)
    .finish()
}

/** The exact bytes the sender signs: "p2pchat/msg/v2" || recipient identity key (32) || encoded fields. */
export function messageSignatureInput (recipientIdentityKey: Uint8Array, fields: Uint8Array): Uint8Array {
  return concat(SIGNATURE_LABEL_BYTES, recipientIdentityKey, fields)
}

/**
 * Encodes and signs a message addressed to `recipientIdentityKey`: fields || Ed25519 signature.
 * Throws the named build errors; SignerMismatchError if `signer.publicKey` is not `msg.senderIdentityKey`;
 * InvalidKeyError if the recipient key is not 32 bytes.
 */
export function encodeMessage (msg: ChatMessage, signer: Signer, recipientIdentityKey: Uint8Array): Uint8Array {
  const fields = encodeFields(msg)
  if (!isKey(recipientIdentityKey)) throw new InvalidKeyError('recipient identity key must be 32 raw bytes')
  if (!isBytes(signer.publicKey) || !equalBytes(signer.publicKey, msg.senderIdentityKey)) throw new SignerMismatchError()
  const signature = signer.sign(messageSignatureInput(recipientIdentityKey, fields))
  if (!isBytes(signature) || signature.length !== SIGNATURE_BYTES) throw new InvalidSignatureError()
  return concat(fields, signature)
}

/**
 * Strict decoding of an encoded message; never throws. The signature is checked for the addressee
 * `ownIdentityKey` (the decoding user's own identity key); a key that is not 32 bytes gives `key`.
 */
export function decodeMessage (bytes: Uint8Array, ownIdentityKey: Uint8Array): DecodedMessage {
  if (!isBytes(bytes)) return { ok: false, reason: 'input' }
  if (bytes.length < 1) return { ok: false, reason: 'length' }
  if (bytes[0] !== MESSAGE_VERSION) return { ok: false, reason: 'version' }
  if (bytes.length < MIN_ENCODED_MESSAGE || bytes.length > MAX_ENCODED_MESSAGE) return { ok: false, reason: 'length' }
  if (!isKey(ownIdentityKey)) return { ok: false, reason: 'key' }

  const r = new Reader(bytes)
  r.u8()
  const id = r.bytes(MESSAGE_ID_BYTES)
  const timestamp = r.u64()
  const nickLength = r.u8()
  if (id == null || timestamp == null || nickLength == null) return { ok: false, reason: 'length' }
  if (timestamp > BigInt(Number.MAX_SAFE_INTEGER)) return { ok: false, reason: 'timestamp' }
  if (nickLength < NICK_MIN_LENGTH || nickLength > NICK_MAX_LENGTH) return { ok: false, reason: 'nick' }
  const nickBytes = r.bytes(nickLength)
  if (nickBytes == null) return { ok: false, reason: 'length' }
  // the nick alphabet is ASCII, so anything that decodes and matches the pattern is canonical
  const senderNick = utf8Decode(nickBytes)
  if (!validateNick(senderNick)) return { ok: false, reason: 'nick' }
  const senderIdentityKey = r.bytes(IDENTITY_KEY_BYTES)
  const textLength = r.u16()
  if (senderIdentityKey == null || textLength == null || textLength > MAX_TEXT_BYTES) return { ok: false, reason: 'length' }
  const textRaw = r.bytes(textLength)
  if (textRaw == null) return { ok: false, reason: 'length' }
  const text = utf8Decode(textRaw)
  if (text == null) return { ok: false, reason: 'utf8' }
  if (text.includes('\u0000')) return { ok: false, reason: 'text' }
  const recordLength = r.u16()
  if (recordLength == null || recordLength > MAX_NAME_RECORD_BYTES) return { ok: false, reason: 'length' }
  const nameRecord = r.bytes(recordLength)
  const replyLength = r.u16()
  if (nameRecord == null || replyLength == null) return { ok: false, reason: 'length' }
  if (replyLength !== 0 && replyLength !== REPLY_BLOCK_BYTES) return { ok: false, reason: 'length' }
  const replyBlock = r.bytes(replyLength)
  if (replyBlock == null) return { ok: false, reason: 'length' }
  const signedLength = r.offset
  const signature = r.bytes(SIGNATURE_BYTES)
  if (signature == null || r.remaining !== 0) return { ok: false, reason: 'length' }

  const message: ChatMessage = { id, timestamp: Number(timestamp), senderNick, senderIdentityKey, text, nameRecord, replyBlock }
  const signatureValid = ed25519Verify(
    senderIdentityKey,
    messageSignatureInput(ownIdentityKey, bytes.subarray(0, signedLength)),
    signature
  )
  return { ok: true, message, signatureValid }
}
