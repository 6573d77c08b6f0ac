/**
 * The signed chat message (FORMAT.md "Message"): build, validate, encode + sign, decode + verify.
 * Sealing to the recipient is in ./seal.ts; `sealMessage` / `openMessage` compose both.
 */
import { randomBytes } from 'node:crypto'
import {
  IDENTITY_KEY_BYTES,
  MAX_ENCODED_MESSAGE,
  MAX_REPLY_BLOCK,
  MAX_TEXT_BYTES,
  MESSAGE_ID_BYTES,
  MESSAGE_SIGNATURE_LABEL,
  MESSAGE_VERSION,
  MIN_ENCODED_MESSAGE,
  SIGNATURE_BYTES
} from './constants.ts'
import { Reader, Writer, concat, copy, equalBytes, isBytes, utf8Decode, utf8Encode } from './bytes.ts'
import {
  InvalidKeyError,
  InvalidMessageIdError,
  InvalidSignatureError,
  InvalidTextError,
  InvalidTimestampError,
  ReplyBlockTooLargeError,
  SignerMismatchError,
  TextTooLongError
} from './errors.ts'
import { ed25519Verify } from '../crypto/keys.ts'
import type { Signer } from '../crypto/keys.ts'
import { assertValidNick, validateNick } from './nick.ts'
import type { Failure } from './types.ts'

export interface ChatMessage {
  /** 16 random bytes chosen by the sender; the receipt names the message by it */
  id: Uint8Array
  senderNick: string
  /** raw 32-byte Ed25519 public key */
  senderIdentityKey: Uint8Array
  /** ms since the epoch, as claimed by the sender */
  timestamp: number
  text: string
  /** opaque single-use reply block, 0..700 bytes */
  replyBlock: Uint8Array
}

export interface CreateMessageInit {
  senderNick: string
  senderIdentityKey: Uint8Array
  text: string
  replyBlock?: Uint8Array
  /** default: 16 random bytes */
  id?: Uint8Array
  /** default: Date.now() */
  timestamp?: number
}

export type DecodedMessage = { ok: true, message: ChatMessage, signatureValid: boolean } | Failure

const SIGNATURE_LABEL_BYTES = utf8Encode(MESSAGE_SIGNATURE_LABEL)

/** Checks every field against the format's rules; throws the named error of the first one broken. */
export function validateMessage (msg: ChatMessage): void {
  if (!isBytes(msg.id) || msg.id.length !== MESSAGE_ID_BYTES) throw new InvalidMessageIdError()
  assertValidNick(msg.senderNick)
  if (!isBytes(msg.senderIdentityKey) || msg.senderIdentityKey.length !== IDENTITY_KEY_BYTES) {
    throw new InvalidKeyError('sender identity key must be 32 raw bytes')
  }
  if (!Number.isSafeInteger(msg.timestamp) || msg.timestamp < 0) throw new InvalidTimestampError()
  textBytes(msg.text)
  if (!isBytes(msg.replyBlock)) throw new ReplyBlockTooLargeError('reply block must be bytes')
  if (msg.replyBlock.length > MAX_REPLY_BLOCK) throw new ReplyBlockTooLargeError()
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
    senderNick: init.senderNick,
    senderIdentityKey: copyIfBytes(init.senderIdentityKey),
    timestamp: init.timestamp ?? Date.now(),
    text: init.text,
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
    .u8(nick.length)
    .bytes(nick)
    .bytes(msg.senderIdentityKey)
    .u64(msg.timestamp)
    .u16(text.length)
    .bytes(text)
    .u16(msg.replyBlock.length)
    .bytes(msg.replyBlock)
    .finish()
}

/** The exact bytes the sender signs: "p2pchat/msg/v1" || encoded fields. */
export function messageSignatureInput (fields: Uint8Array): Uint8Array {
  return concat(SIGNATURE_LABEL_BYTES, fields)
}

/**
 * Encodes and signs a message: fields || Ed25519 signature (FORMAT.md "Message").
 * Throws the named build errors, SignerMismatchError if `signer.publicKey` is not `msg.senderIdentityKey`.
 */
export function encodeMessage (msg: ChatMessage, signer: Signer): Uint8Array {
  const fields = encodeFields(msg)
  if (!isBytes(signer.publicKey) || !equalBytes(signer.publicKey, msg.senderIdentityKey)) throw new SignerMismatchError()
  const signature = signer.sign(messageSignatureInput(fields))
  if (!isBytes(signature) || signature.length !== SIGNATURE_BYTES) throw new InvalidSignatureError()
  return concat(fields, signature)
}

/**
 * Strict decoding of an encoded message; never throws. `signatureValid` says whether the signature verifies
 * under the key the message itself names; whether that key is the right one for the nick is the caller's
 * question (directory record, pins).
 */
export function decodeMessage (bytes: Uint8Array): DecodedMessage {
  if (!isBytes(bytes)) return { ok: false, reason: 'input' }
  if (bytes.length < 1) return { ok: false, reason: 'length' }
  if (bytes[0] !== MESSAGE_VERSION) return { ok: false, reason: 'version' }
  if (bytes.length < MIN_ENCODED_MESSAGE || bytes.length > MAX_ENCODED_MESSAGE) return { ok: false, reason: 'length' }

  const r = new Reader(bytes)
  r.u8()
  const id = r.bytes(MESSAGE_ID_BYTES)
  const nickLength = r.u8()
  if (id == null || nickLength == null) return { ok: false, reason: 'length' }
  if (nickLength < 1 || nickLength > 32) return { ok: false, reason: 'nick' }
  const nickBytes = r.bytes(nickLength)
  if (nickBytes == null) return { ok: false, reason: 'length' }
  // the nick alphabet is ASCII, so anything that decodes and matches the pattern is canonical
  const senderNick = utf8Decode(nickBytes)
  if (!validateNick(senderNick)) return { ok: false, reason: 'nick' }
  const senderIdentityKey = r.bytes(IDENTITY_KEY_BYTES)
  const timestamp = r.u64()
  if (senderIdentityKey == null || timestamp == null) return { ok: false, reason: 'length' }
  if (timestamp > BigInt(Number.MAX_SAFE_INTEGER)) return { ok: false, reason: 'timestamp' }
  const textLength = r.u16()
  if (textLength == null || textLength > MAX_TEXT_BYTES) return { ok: false, reason: 'length' }
  const textRaw = r.bytes(textLength)
  if (textRaw == null) return { ok: false, reason: 'length' }
  const text = utf8Decode(textRaw)
  if (text == null) return { ok: false, reason: 'utf8' }
  if (text.includes('\u0000')) return { ok: false, reason: 'text' }
  const replyLength = r.u16()
  if (replyLength == null || replyLength > MAX_REPLY_BLOCK) return { ok: false, reason: 'length' }
  const replyBlock = r.bytes(replyLength)
  if (replyBlock == null) return { ok: false, reason: 'length' }
  const signedLength = r.offset
  const signature = r.bytes(SIGNATURE_BYTES)
  if (signature == null || r.remaining !== 0) return { ok: false, reason: 'length' }

  const message: ChatMessage = { id, senderNick, senderIdentityKey, timestamp: Number(timestamp), text, replyBlock }
  const signatureValid = ed25519Verify(
    senderIdentityKey,
    messageSignatureInput(bytes.subarray(0, signedLength)),
    signature
  )
  return { ok: true, message, signatureValid }
}
