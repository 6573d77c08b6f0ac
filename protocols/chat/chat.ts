/**
 * Sign-then-seal and open-then-verify: the calls a chat client makes for each item (FORMAT.md).
 * What travels, and what a mailbox stores, is a sealed envelope:
 *
 *   seal(recipient's onion key of `epoch`, envelope(type || encoded message | encoded receipt))
 *
 * The opener gets the seal's epoch and ephemeral key E with the result, to drop a second delivery of the
 * same sealed payload (issue 10 item 7).
 */
import { MAX_ITEM } from './constants.ts'
import { decodeEnvelope, encodeEnvelope } from './envelope.ts'
import { EnvelopeTooLargeError } from './errors.ts'
import { encodeMessage, type ChatMessage } from './message.ts'
import type { Receipt } from './receipt.ts'
import { seal, unseal, type SealOptions } from './seal.ts'
import type { Signer } from '../crypto/keys.ts'
import type { Failure, KeyForEpoch } from './types.ts'

/** Where a seal goes: one of the recipient's onion keys (raw 32-byte X25519) and its epoch, from its name record. */
export interface SealTo {
  onionKey: Uint8Array
  epoch: number
}

/** A message's addressee: its onion key and epoch, and its identity key, which the signature covers. */
export interface MessageRecipient extends SealTo {
  identityKey: Uint8Array
}

export interface SealEnvelopeOptions extends SealOptions {
  /** Refuse (EnvelopeTooLargeError) a sealed envelope longer than this; default MAX_ITEM (2022), what one packet's DEPOSIT carries. */
  maxLength?: number
}

function sealEnvelope (envelope: Uint8Array, to: SealTo, options: SealEnvelopeOptions): Uint8Array {
  const sealed = seal(envelope, to.onionKey, to.epoch, options)
  const maxLength = options.maxLength ?? MAX_ITEM
  if (sealed.length > maxLength) throw new EnvelopeTooLargeError(`sealed envelope of ${sealed.length} bytes is over ${maxLength}`)
  return sealed
}

/**
 * Encodes `msg`, signs it for `to.identityKey` with `signer` (whose public key must be
 * `msg.senderIdentityKey`), wraps it in a message envelope and seals it to `to.onionKey` under `to.epoch`.
 * Throws the named build errors of ./errors.ts.
 */
export function sealMessage (msg: ChatMessage, signer: Signer, to: MessageRecipient, options: SealEnvelopeOptions = {}): Uint8Array {
  const encoded = encodeMessage(msg, signer, to.identityKey)
  return sealEnvelope(encodeEnvelope({ type: 'message', encoded }), to, options)
}

/** Wraps a signed receipt in a receipt envelope and seals it to the addressee's onion key of `to.epoch`. */
export function sealReceipt (receipt: Receipt, to: SealTo, options: SealEnvelopeOptions = {}): Uint8Array {
  return sealEnvelope(encodeEnvelope({ type: 'receipt', receipt }), to, options)
}

/** The seal's header, returned with every opened item. */
interface SealInfo { epoch: number, ephemeralKey: Uint8Array }

export type OpenedItem =
  | ({ ok: true, type: 'message', message: ChatMessage, signatureValid: boolean } & SealInfo)
  | ({ ok: true, type: 'receipt', receipt: Receipt } & SealInfo)
  | Failure

/**
 * Opens a sealed envelope with the onion key of the epoch it names and decodes it; never throws.
 * A message's signature is checked for the addressee `ownIdentityKey`; a receipt is returned for
 * `verifyReceipt` by the caller, who knows whom the receipted messages went to.
 */
export function openSealed (sealed: Uint8Array, keyForEpoch: KeyForEpoch, ownIdentityKey: Uint8Array): OpenedItem {
  const opened = unseal(sealed, keyForEpoch)
  if (!opened.ok) return opened
  const decoded = decodeEnvelope(opened.plaintext, ownIdentityKey)
  if (!decoded.ok) return decoded
  return { ...decoded, epoch: opened.epoch, ephemeralKey: opened.ephemeralKey }
}

export type OpenedMessage = ({ ok: true, message: ChatMessage, signatureValid: boolean } & SealInfo) | Failure

/**
 * Opens a sealed message envelope (anything else: `type`) and checks its signature for `ownIdentityKey`.
 * `signatureValid` false covers a bad signature and a message signed to another addressee alike: the
 * two cannot be told apart, and this does not try. Never throws.
 */
export function openMessage (sealed: Uint8Array, keyForEpoch: KeyForEpoch, ownIdentityKey: Uint8Array): OpenedMessage {
  const opened = openSealed(sealed, keyForEpoch, ownIdentityKey)
  if (!opened.ok) return opened
  if (opened.type !== 'message') return { ok: false, reason: 'type' }
  return { ok: true, message: opened.message, signatureValid: opened.signatureValid, epoch: opened.epoch, ephemeralKey: opened.ephemeralKey }
}
