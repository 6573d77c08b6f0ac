/**
 * The owner's and the sender's side of the mailbox service (SPEC.md sections 3-5), pure: builds requests
 * and service bodies, decodes the payloads that come back through reply blocks. No I/O, no clock of its
 * own (callers pass the timestamp), no Sphinx: the caller makes the reply blocks and the packets.
 *
 * A mailbox key pair is an Ed25519 seed (kept in the owner's store) and its public key; the mailbox id is
 * SHA-256("p2pchat-mailbox-v1" ‖ public key). It is not the identity key: each mailbox has its own.
 */
import { randomBytes } from 'node:crypto'
import { ed25519SignerFromSeed } from '../crypto/keys.ts'
import {
  encodeAckUnsigned, encodeDeposit, encodeRegisterUnsigned, encodeStockUnsigned, encodeSyncUnsigned, decodeAnswer, mailboxIdOf,
  signatureInput
} from './codec.ts'
import type { DecodedAnswer } from './codec.ts'
import { MAILBOX_SERVICE, MAX_REQUEST, MAX_REQUEST_WITH_REPLY, SEED_BYTES, SURB_SIZE } from './constants.ts'
import { InvalidKeyError, InvalidReplyBlockError, RequestTooLargeError } from './errors.ts'

export interface MailboxKeyPair {
  /** raw Ed25519 seed, 32 bytes: secret */
  seed: Uint8Array
  /** raw Ed25519 public key, 32 bytes */
  publicKey: Uint8Array
  /** SHA-256("p2pchat-mailbox-v1" ‖ publicKey) */
  mailboxId: Uint8Array
}

/** The key pair of a 32-byte seed. Throws InvalidKeyError for anything else. */
export function mailboxKeyPairFromSeed (seed: Uint8Array): MailboxKeyPair {
  if (!(seed instanceof Uint8Array) || seed.length !== SEED_BYTES) throw new InvalidKeyError('a mailbox seed is 32 raw bytes')
  const publicKey = ed25519SignerFromSeed(seed).publicKey
  return { seed: new Uint8Array(seed), publicKey, mailboxId: mailboxIdOf(publicKey) }
}

/** A fresh mailbox key pair from the system's CSPRNG. */
export function generateMailboxKeyPair (): MailboxKeyPair {
  return mailboxKeyPairFromSeed(new Uint8Array(randomBytes(SEED_BYTES)))
}

function signed (keys: MailboxKeyPair, op: 'register' | 'stock' | 'ack' | 'sync', unsigned: Uint8Array): Uint8Array {
  const signature = ed25519SignerFromSeed(keys.seed).sign(signatureInput(op, unsigned))
  const out = new Uint8Array(unsigned.length + signature.length)
  out.set(unsigned)
  out.set(signature, unsigned.length)
  return out
}

/** REGISTER: create or refresh the mailbox, carrying the owner's signed name record for the relay to republish. */
export function buildRegister (keys: MailboxKeyPair, record: Uint8Array, timestamp: number): Uint8Array {
  return signed(keys, 'register', encodeRegisterUnsigned({ mailboxId: keys.mailboxId, publicKey: keys.publicKey, timestamp, record }))
}

/** STOCK: 1..4 reply blocks (1..3 if the request itself carries a reply block for the `stocked` answer). */
export function buildStock (keys: MailboxKeyPair, blocks: Uint8Array[], timestamp: number): Uint8Array {
  return signed(keys, 'stock', encodeStockUnsigned({ mailboxId: keys.mailboxId, timestamp, blocks }))
}

/** ACK: delete these items (1..121 item ids). */
export function buildAck (keys: MailboxKeyPair, itemIds: Uint8Array[], timestamp: number): Uint8Array {
  return signed(keys, 'ack', encodeAckUnsigned({ mailboxId: keys.mailboxId, timestamp, itemIds }))
}

/**
 * SYNC (version 2, SPEC.md section 11): exactly 3 reply blocks for the relay's steady pushes (one per
 * `pushPeriodMs`), and 0..22 item ids to delete; always 2049 bytes.
 */
export function buildSync (keys: MailboxKeyPair, blocks: Uint8Array[], itemIds: Uint8Array[], pushPeriodMs: number, timestamp: number): Uint8Array {
  return signed(keys, 'sync', encodeSyncUnsigned({ mailboxId: keys.mailboxId, timestamp, pushPeriodMs, itemIds, blocks }))
}

/** DEPOSIT: anyone; `item` is the sealed message (1..2022 bytes). */
export function buildDeposit (mailboxId: Uint8Array, item: Uint8Array): Uint8Array {
  return encodeDeposit(mailboxId, item)
}

/**
 * The service body PROTOCOL-V2.md section 5 puts in a SERVICE packet: `0x01 ‖ reply block length u16 ‖
 * reply block ‖ request`. Throws RequestTooLargeError when it would not fit the packet's payload.
 */
export function mailboxServiceBody (request: Uint8Array, replyBlock?: Uint8Array): Uint8Array {
  if (replyBlock != null && (!(replyBlock instanceof Uint8Array) || replyBlock.length !== SURB_SIZE)) throw new InvalidReplyBlockError()
  if (request.length > (replyBlock == null ? MAX_REQUEST : MAX_REQUEST_WITH_REPLY)) throw new RequestTooLargeError()
  const rb = replyBlock ?? new Uint8Array(0)
  const out = new Uint8Array(3 + rb.length + request.length)
  out[0] = MAILBOX_SERVICE
  out[1] = rb.length >>> 8
  out[2] = rb.length & 0xff
  out.set(rb, 3)
  out.set(request, 3 + rb.length)
  return out
}

/** Decodes a reply payload `0x01 ‖ answer` that came through a reply block. Never throws. */
export function decodeMailboxPayload (payload: Uint8Array): DecodedAnswer {
  if (!(payload instanceof Uint8Array)) return { ok: false, reason: 'input' }
  if (payload.length < 1 || payload[0] !== MAILBOX_SERVICE) return { ok: false, reason: 'kind' }
  return decodeAnswer(payload.subarray(1))
}

export { decodeAnswer }
