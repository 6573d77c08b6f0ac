/**
 * The mailbox service's bytes (SPEC.md sections 2-5): requests, answers, the mailbox id and the owner's
 * signatures. All integers unsigned big-endian.
 *
 * Requests (the `request` part of a service-0x01 body, after the caller removed `service ‖ reply block`):
 *   DEPOSIT  01 ‖ mailbox id 32 ‖ item length u16 (1..) ‖ item
 *   REGISTER 02 ‖ mailbox id 32 ‖ public key 32 ‖ timestamp u64 ‖ record length u16 (1..1918) ‖ record ‖ signature 64
 *   STOCK    03 ‖ mailbox id 32 ‖ timestamp u64 ‖ count u8 (1..4) ‖ count × reply block 529 ‖ signature 64
 *   ACK      04 ‖ mailbox id 32 ‖ timestamp u64 ‖ count u8 (1..121) ‖ count × item id 16 ‖ signature 64
 *   SYNC     05 ‖ mailbox id 32 ‖ timestamp u64 ‖ push period ms u32 ‖ ack count u8 (0..22) ‖ 22 × item id 16
 *            (the unused slots zero) ‖ 3 × reply block 529 ‖ signature 64   (version 2: always 2049 bytes)
 * Answers (the reply payload after the caller's `service u8`; each at most 2588 bytes):
 *   kind u8 ‖ mailbox id 32 ‖ STORED 01 | FULL 02 | UNKNOWN 03 | TOO_LARGE 04: nothing more;
 *   REGISTERED 05: max items u32 ‖ max bytes u32 ‖ item age ms u64 ‖ idle age ms u64 ‖ waiting u16;
 *   REFUSED 06: reason u8; STOCKED 07: waiting u16 ‖ blocks held u8;
 *   PUSH 08: item id 16 ‖ item length u16 ‖ item ‖ waiting u16; ACKED 09: deleted u8 ‖ waiting u16;
 *   SYNCED 0a: deleted u8 ‖ waiting u16 ‖ blocks held u8; PADDING 0b: waiting u16 (version 2).
 * Signature: Ed25519 by the mailbox key over `label ‖ request bytes 1 .. length - 64` (mailbox id and every
 * field before the signature). Encoders throw named errors (./errors.ts); decoders never throw.
 */
import { createHash } from 'node:crypto'
import { ed25519Verify } from '../crypto/keys.ts'
import {
  ACK_LABEL, ANSWER_ACKED, ANSWER_PADDING, ANSWER_SYNCED, MAX_PUSH_PERIOD_MS, MIN_PUSH_PERIOD_MS, OP_SYNC,
  SYNC_ACK_SLOTS, SYNC_BLOCKS, SYNC_LABEL, ANSWER_FULL, ANSWER_PUSH, ANSWER_REFUSED, ANSWER_REGISTERED,
  ANSWER_STOCKED, ANSWER_STORED, ANSWER_TOO_LARGE, ANSWER_UNKNOWN, ITEM_ID_BYTES, MAILBOX_ID_BYTES,
  MAILBOX_ID_LABEL, MAX_ACK_IDS, MAX_ANSWER, MAX_ITEM, MAX_RECORD, MAX_STOCK_BLOCKS, MAX_TIMESTAMP, OP_ACK,
  OP_DEPOSIT, OP_REGISTER, OP_STOCK, PUBLIC_KEY_BYTES, REFUSED_BAD_SIGNATURE, REFUSED_KEY_MISMATCH,
  REFUSED_RELAY_FULL, REFUSED_STALE, REGISTER_LABEL, SIGNATURE_BYTES, STOCK_LABEL, SURB_SIZE
} from './constants.ts'
import {
  InvalidAnswerFieldError, InvalidItemIdError, InvalidKeyError, InvalidMailboxIdError, InvalidReplyBlockError,
  InvalidPushPeriodError, InvalidTimestampError, ItemTooLargeError, RecordTooLargeError, SyncBlocksError,
  TooManyBlocksError, TooManyItemIdsError
} from './errors.ts'

/**
 * Why bytes were rejected. Short, stable strings: the service counts them as drop reasons.
 * - `input`: not a Uint8Array
 * - `op` / `kind`: unknown request operation / answer kind
 * - `length`: truncated, trailing bytes, or a length field out of bounds (an item or record of 0 bytes)
 * - `count`: a block or id count of 0 or above its limit
 * - `timestamp`: a timestamp above 2^53 - 1
 * - `reason`: an unknown REFUSED reason
 * - `period`: a SYNC's push period outside 100..86,400,000 ms
 * - `padding`: a SYNC's unused item-id slot that is not zero
 */
export type DecodeReason = 'input' | 'op' | 'kind' | 'length' | 'count' | 'timestamp' | 'reason' | 'period' | 'padding'
export type Failure = { ok: false, reason: DecodeReason }

export type RequestOp = 'deposit' | 'register' | 'stock' | 'ack' | 'sync'

export interface DepositRequest { op: 'deposit', mailboxId: Uint8Array, item: Uint8Array }
export interface RegisterRequest {
  op: 'register'
  mailboxId: Uint8Array
  publicKey: Uint8Array
  timestamp: number
  record: Uint8Array
  signature: Uint8Array
}
export interface StockRequest { op: 'stock', mailboxId: Uint8Array, timestamp: number, blocks: Uint8Array[], signature: Uint8Array }
export interface AckRequest { op: 'ack', mailboxId: Uint8Array, timestamp: number, itemIds: Uint8Array[], signature: Uint8Array }
/** Version 2: blocks (exactly SYNC_BLOCKS) to push through, one per `pushPeriodMs`, and 0..22 items to delete. */
export interface SyncRequest {
  op: 'sync'
  mailboxId: Uint8Array
  timestamp: number
  pushPeriodMs: number
  itemIds: Uint8Array[]
  blocks: Uint8Array[]
  signature: Uint8Array
}
export type SignedRequest = RegisterRequest | StockRequest | AckRequest | SyncRequest
export type MailboxRequest = DepositRequest | SignedRequest

/** A decoded signed request keeps the exact bytes its signature covers. */
export type DecodedRequest =
  | { ok: true, request: DepositRequest }
  | { ok: true, request: SignedRequest, signed: Uint8Array }
  | Failure

export type RefusedReason = 'relay-full' | 'bad-signature' | 'stale' | 'key-mismatch'

/** What REGISTERED tells the owner about the relay's limits. */
export interface MailboxLimits {
  maxItems: number
  maxBytes: number
  itemAgeMs: number
  idleAgeMs: number
}

export type MailboxAnswer =
  | { kind: 'stored', mailboxId: Uint8Array }
  | { kind: 'full', mailboxId: Uint8Array }
  | { kind: 'unknown-mailbox', mailboxId: Uint8Array }
  | { kind: 'too-large', mailboxId: Uint8Array }
  | { kind: 'registered', mailboxId: Uint8Array, limits: MailboxLimits, waiting: number }
  | { kind: 'refused', mailboxId: Uint8Array, reason: RefusedReason }
  | { kind: 'stocked', mailboxId: Uint8Array, waiting: number, blocks: number }
  | { kind: 'push', mailboxId: Uint8Array, itemId: Uint8Array, item: Uint8Array, waiting: number }
  | { kind: 'acked', mailboxId: Uint8Array, deleted: number, waiting: number }
  | { kind: 'synced', mailboxId: Uint8Array, deleted: number, waiting: number, blocks: number }
  | { kind: 'padding', mailboxId: Uint8Array, waiting: number }

export type AnswerKind = MailboxAnswer['kind']
export type DecodedAnswer = { ok: true, answer: MailboxAnswer } | Failure

const REFUSED_CODES: Record<RefusedReason, number> = {
  'relay-full': REFUSED_RELAY_FULL,
  'bad-signature': REFUSED_BAD_SIGNATURE,
  stale: REFUSED_STALE,
  'key-mismatch': REFUSED_KEY_MISMATCH
}
const ANSWER_CODES: Record<AnswerKind, number> = {
  stored: ANSWER_STORED,
  full: ANSWER_FULL,
  'unknown-mailbox': ANSWER_UNKNOWN,
  'too-large': ANSWER_TOO_LARGE,
  registered: ANSWER_REGISTERED,
  refused: ANSWER_REFUSED,
  stocked: ANSWER_STOCKED,
  push: ANSWER_PUSH,
  acked: ANSWER_ACKED,
  synced: ANSWER_SYNCED,
  padding: ANSWER_PADDING
}
const LABELS: Record<SignedRequest['op'], Uint8Array> = {
  register: new TextEncoder().encode(REGISTER_LABEL),
  stock: new TextEncoder().encode(STOCK_LABEL),
  ack: new TextEncoder().encode(ACK_LABEL),
  sync: new TextEncoder().encode(SYNC_LABEL)
}

// ---- byte helpers ----

function concat (parts: Uint8Array[]): Uint8Array {
  let length = 0
  for (const p of parts) length += p.length
  const out = new Uint8Array(length)
  let offset = 0
  for (const p of parts) {
    out.set(p, offset)
    offset += p.length
  }
  return out
}

class Writer {
  readonly #parts: Uint8Array[] = []
  u8 (v: number): this { this.#parts.push(Uint8Array.of(v)); return this }
  u16 (v: number): this { this.#parts.push(Uint8Array.of(v >>> 8, v & 0xff)); return this }
  u32 (v: number): this {
    const b = new Uint8Array(4)
    new DataView(b.buffer).setUint32(0, v)
    this.#parts.push(b)
    return this
  }

  u64 (v: number): this {
    const b = new Uint8Array(8)
    new DataView(b.buffer).setBigUint64(0, BigInt(v))
    this.#parts.push(b)
    return this
  }

  bytes (v: Uint8Array): this { this.#parts.push(v); return this }
  finish (): Uint8Array { return concat(this.#parts) }
}

/** Reads big-endian fields; every read past the end returns undefined. */
class Reader {
  readonly #b: Uint8Array
  #o = 0
  constructor (bytes: Uint8Array) { this.#b = bytes }
  get remaining (): number { return this.#b.length - this.#o }
  u8 (): number | undefined { return this.remaining < 1 ? undefined : this.#b[this.#o++] }
  u16 (): number | undefined {
    if (this.remaining < 2) return undefined
    const v = (this.#b[this.#o] << 8) | this.#b[this.#o + 1]
    this.#o += 2
    return v
  }

  u32 (): number | undefined {
    if (this.remaining < 4) return undefined
    const v = new DataView(this.#b.buffer, this.#b.byteOffset + this.#o, 4).getUint32(0)
    this.#o += 4
    return v
  }

  /** A bigint, so a value above 2^53 can be seen and refused. */
  u64 (): bigint | undefined {
    if (this.remaining < 8) return undefined
    const v = new DataView(this.#b.buffer, this.#b.byteOffset + this.#o, 8).getBigUint64(0)
    this.#o += 8
    return v
  }

  /** A copy of the next n bytes. */
  bytes (n: number): Uint8Array | undefined {
    if (this.remaining < n) return undefined
    const out = this.#b.slice(this.#o, this.#o + n)
    this.#o += n
    return out
  }
}

const fail = (reason: DecodeReason): Failure => ({ ok: false, reason })

function isBytes (v: unknown, length?: number): v is Uint8Array {
  return v instanceof Uint8Array && (length == null || v.length === length)
}

function checkMailboxId (id: Uint8Array): void {
  if (!isBytes(id, MAILBOX_ID_BYTES)) throw new InvalidMailboxIdError()
}

function checkTimestamp (t: number): void {
  if (!Number.isSafeInteger(t) || t < 0) throw new InvalidTimestampError()
}

function checkUint (v: number, max: number, what: string): void {
  if (!Number.isSafeInteger(v) || v < 0 || v > max) throw new InvalidAnswerFieldError(`${what} must be an integer in 0..${max}`)
}

function checkSignature (s: Uint8Array): void {
  if (!isBytes(s, SIGNATURE_BYTES)) throw new InvalidAnswerFieldError('a signature is 64 bytes')
}

// ---- mailbox id and signatures ----

/** mailbox id = SHA-256("p2pchat-mailbox-v1" ‖ public key). Throws InvalidKeyError for a key that is not 32 bytes. */
export function mailboxIdOf (publicKey: Uint8Array): Uint8Array {
  if (!isBytes(publicKey, PUBLIC_KEY_BYTES)) throw new InvalidKeyError('a mailbox public key is 32 raw bytes')
  return new Uint8Array(createHash('sha256').update(MAILBOX_ID_LABEL).update(publicKey).digest())
}

/** `label ‖ mailbox id ‖ fields`: what the owner signs, from the request bytes before the signature. */
export function signatureInput (op: SignedRequest['op'], unsignedRequest: Uint8Array): Uint8Array {
  return concat([LABELS[op], unsignedRequest.subarray(1)])
}

/** Verifies the signature of a decoded request against the mailbox's public key. Never throws. */
export function verifySigned (signed: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): boolean {
  return ed25519Verify(publicKey, signed, signature)
}

// ---- requests ----

export function encodeDeposit (mailboxId: Uint8Array, item: Uint8Array, maxItem = MAX_ITEM): Uint8Array {
  checkMailboxId(mailboxId)
  if (!isBytes(item) || item.length < 1 || item.length > maxItem) throw new ItemTooLargeError(`an item is 1..${maxItem} bytes`)
  return new Writer().u8(OP_DEPOSIT).bytes(mailboxId).u16(item.length).bytes(item).finish()
}

/** REGISTER bytes before the signature. */
export function encodeRegisterUnsigned (fields: { mailboxId: Uint8Array, publicKey: Uint8Array, timestamp: number, record: Uint8Array }): Uint8Array {
  checkMailboxId(fields.mailboxId)
  if (!isBytes(fields.publicKey, PUBLIC_KEY_BYTES)) throw new InvalidKeyError('a mailbox public key is 32 raw bytes')
  checkTimestamp(fields.timestamp)
  if (!isBytes(fields.record) || fields.record.length < 1 || fields.record.length > MAX_RECORD) throw new RecordTooLargeError()
  return new Writer().u8(OP_REGISTER).bytes(fields.mailboxId).bytes(fields.publicKey).u64(fields.timestamp)
    .u16(fields.record.length).bytes(fields.record).finish()
}

/** STOCK bytes before the signature. */
export function encodeStockUnsigned (fields: { mailboxId: Uint8Array, timestamp: number, blocks: Uint8Array[] }): Uint8Array {
  checkMailboxId(fields.mailboxId)
  checkTimestamp(fields.timestamp)
  if (!Array.isArray(fields.blocks) || fields.blocks.length < 1 || fields.blocks.length > MAX_STOCK_BLOCKS) throw new TooManyBlocksError()
  const w = new Writer().u8(OP_STOCK).bytes(fields.mailboxId).u64(fields.timestamp).u8(fields.blocks.length)
  for (const block of fields.blocks) {
    if (!isBytes(block, SURB_SIZE)) throw new InvalidReplyBlockError()
    w.bytes(block)
  }
  return w.finish()
}

/** ACK bytes before the signature. */
export function encodeAckUnsigned (fields: { mailboxId: Uint8Array, timestamp: number, itemIds: Uint8Array[] }): Uint8Array {
  checkMailboxId(fields.mailboxId)
  checkTimestamp(fields.timestamp)
  if (!Array.isArray(fields.itemIds) || fields.itemIds.length < 1 || fields.itemIds.length > MAX_ACK_IDS) throw new TooManyItemIdsError()
  const w = new Writer().u8(OP_ACK).bytes(fields.mailboxId).u64(fields.timestamp).u8(fields.itemIds.length)
  for (const id of fields.itemIds) {
    if (!isBytes(id, ITEM_ID_BYTES)) throw new InvalidItemIdError()
    w.bytes(id)
  }
  return w.finish()
}

/** SYNC bytes before the signature (version 2): exactly SYNC_BLOCKS blocks, 0..SYNC_ACK_SLOTS ids, the rest of the slots zero. */
export function encodeSyncUnsigned (fields: { mailboxId: Uint8Array, timestamp: number, pushPeriodMs: number, itemIds: Uint8Array[], blocks: Uint8Array[] }): Uint8Array {
  checkMailboxId(fields.mailboxId)
  checkTimestamp(fields.timestamp)
  if (!Number.isSafeInteger(fields.pushPeriodMs) || fields.pushPeriodMs < MIN_PUSH_PERIOD_MS || fields.pushPeriodMs > MAX_PUSH_PERIOD_MS) throw new InvalidPushPeriodError()
  if (!Array.isArray(fields.itemIds) || fields.itemIds.length > SYNC_ACK_SLOTS) throw new TooManyItemIdsError(`a SYNC carries 0..${SYNC_ACK_SLOTS} item ids`)
  if (!Array.isArray(fields.blocks) || fields.blocks.length !== SYNC_BLOCKS) throw new SyncBlocksError()
  const w = new Writer().u8(OP_SYNC).bytes(fields.mailboxId).u64(fields.timestamp).u32(fields.pushPeriodMs).u8(fields.itemIds.length)
  for (const id of fields.itemIds) {
    if (!isBytes(id, ITEM_ID_BYTES)) throw new InvalidItemIdError()
    w.bytes(id)
  }
  w.bytes(new Uint8Array((SYNC_ACK_SLOTS - fields.itemIds.length) * ITEM_ID_BYTES))
  for (const block of fields.blocks) {
    if (!isBytes(block, SURB_SIZE)) throw new InvalidReplyBlockError()
    w.bytes(block)
  }
  return w.finish()
}

/** Any request, signature included. */
export function encodeRequest (request: MailboxRequest): Uint8Array {
  switch (request.op) {
    case 'deposit': return encodeDeposit(request.mailboxId, request.item)
    case 'register': checkSignature(request.signature); return concat([encodeRegisterUnsigned(request), request.signature])
    case 'stock': checkSignature(request.signature); return concat([encodeStockUnsigned(request), request.signature])
    case 'ack': checkSignature(request.signature); return concat([encodeAckUnsigned(request), request.signature])
    case 'sync': checkSignature(request.signature); return concat([encodeSyncUnsigned(request), request.signature])
  }
}

function readTimestamp (r: Reader): number | Failure {
  const t = r.u64()
  if (t == null) return fail('length')
  if (t > BigInt(MAX_TIMESTAMP)) return fail('timestamp')
  return Number(t)
}

/** Decodes one request; never throws. Nothing may follow the last field. */
export function decodeRequest (bytes: Uint8Array): DecodedRequest {
  if (!isBytes(bytes)) return fail('input')
  const r = new Reader(bytes)
  const op = r.u8()
  if (op == null) return fail('length')
  if (op !== OP_DEPOSIT && op !== OP_REGISTER && op !== OP_STOCK && op !== OP_ACK && op !== OP_SYNC) return fail('op')
  const mailboxId = r.bytes(MAILBOX_ID_BYTES)
  if (mailboxId == null) return fail('length')
  if (op === OP_DEPOSIT) {
    const length = r.u16()
    if (length == null || length < 1) return fail('length')
    const item = r.bytes(length)
    if (item == null || r.remaining !== 0) return fail('length')
    return { ok: true, request: { op: 'deposit', mailboxId, item } }
  }
  if (bytes.length < SIGNATURE_BYTES + 1 + MAILBOX_ID_BYTES) return fail('length')
  const signedEnd = bytes.length - SIGNATURE_BYTES
  let request: SignedRequest
  if (op === OP_REGISTER) {
    const publicKey = r.bytes(PUBLIC_KEY_BYTES)
    if (publicKey == null) return fail('length')
    const timestamp = readTimestamp(r)
    if (typeof timestamp !== 'number') return timestamp
    const length = r.u16()
    if (length == null || length < 1 || length > MAX_RECORD) return fail('length')
    const record = r.bytes(length)
    if (record == null) return fail('length')
    request = { op: 'register', mailboxId, publicKey, timestamp, record, signature: new Uint8Array(0) }
  } else if (op === OP_SYNC) {
    const timestamp = readTimestamp(r)
    if (typeof timestamp !== 'number') return timestamp
    const pushPeriodMs = r.u32()
    const count = r.u8()
    if (pushPeriodMs == null || count == null) return fail('length')
    if (pushPeriodMs < MIN_PUSH_PERIOD_MS || pushPeriodMs > MAX_PUSH_PERIOD_MS) return fail('period')
    if (count > SYNC_ACK_SLOTS) return fail('count')
    const itemIds: Uint8Array[] = []
    for (let i = 0; i < SYNC_ACK_SLOTS; i++) {
      const id = r.bytes(ITEM_ID_BYTES)
      if (id == null) return fail('length')
      if (i < count) itemIds.push(id)
      else if (id.some(b => b !== 0)) return fail('padding')
    }
    const blocks: Uint8Array[] = []
    for (let i = 0; i < SYNC_BLOCKS; i++) {
      const block = r.bytes(SURB_SIZE)
      if (block == null) return fail('length')
      blocks.push(block)
    }
    request = { op: 'sync', mailboxId, timestamp, pushPeriodMs, itemIds, blocks, signature: new Uint8Array(0) }
  } else {
    const timestamp = readTimestamp(r)
    if (typeof timestamp !== 'number') return timestamp
    const count = r.u8()
    if (count == null) return fail('length')
    const size = op === OP_STOCK ? SURB_SIZE : ITEM_ID_BYTES
    if (count < 1 || count > (op === OP_STOCK ? MAX_STOCK_BLOCKS : MAX_ACK_IDS)) return fail('count')
    const list: Uint8Array[] = []
    for (let i = 0; i < count; i++) {
      const entry = r.bytes(size)
      if (entry == null) return fail('length')
      list.push(entry)
    }
    request = op === OP_STOCK
      ? { op: 'stock', mailboxId, timestamp, blocks: list, signature: new Uint8Array(0) }
      : { op: 'ack', mailboxId, timestamp, itemIds: list, signature: new Uint8Array(0) }
  }
  if (r.remaining !== SIGNATURE_BYTES) return fail('length')
  request.signature = r.bytes(SIGNATURE_BYTES) ?? new Uint8Array(0)
  return { ok: true, request, signed: signatureInput(request.op, bytes.subarray(0, signedEnd)) }
}

// ---- answers ----

/** Encodes an answer; throws a named error for a field its width cannot hold. At most MAX_ANSWER bytes. */
export function encodeAnswer (answer: MailboxAnswer): Uint8Array {
  checkMailboxId(answer.mailboxId)
  const w = new Writer().u8(ANSWER_CODES[answer.kind]).bytes(answer.mailboxId)
  switch (answer.kind) {
    case 'stored': case 'full': case 'unknown-mailbox': case 'too-large':
      break
    case 'registered': {
      const l = answer.limits
      checkUint(l.maxItems, 0xffffffff, 'max items')
      checkUint(l.maxBytes, 0xffffffff, 'max bytes')
      checkUint(l.itemAgeMs, MAX_TIMESTAMP, 'item age')
      checkUint(l.idleAgeMs, MAX_TIMESTAMP, 'idle age')
      checkUint(answer.waiting, 0xffff, 'waiting')
      w.u32(l.maxItems).u32(l.maxBytes).u64(l.itemAgeMs).u64(l.idleAgeMs).u16(answer.waiting)
      break
    }
    case 'refused': {
      const code = REFUSED_CODES[answer.reason]
      if (code == null) throw new InvalidAnswerFieldError('unknown refused reason')
      w.u8(code)
      break
    }
    case 'stocked':
      checkUint(answer.waiting, 0xffff, 'waiting')
      checkUint(answer.blocks, 0xff, 'blocks')
      w.u16(answer.waiting).u8(answer.blocks)
      break
    case 'push':
      if (!isBytes(answer.itemId, ITEM_ID_BYTES)) throw new InvalidItemIdError()
      if (!isBytes(answer.item) || answer.item.length < 1 || answer.item.length > MAX_ITEM) throw new ItemTooLargeError()
      checkUint(answer.waiting, 0xffff, 'waiting')
      w.bytes(answer.itemId).u16(answer.item.length).bytes(answer.item).u16(answer.waiting)
      break
    case 'acked':
      checkUint(answer.deleted, 0xff, 'deleted')
      checkUint(answer.waiting, 0xffff, 'waiting')
      w.u8(answer.deleted).u16(answer.waiting)
      break
    case 'synced':
      checkUint(answer.deleted, 0xff, 'deleted')
      checkUint(answer.waiting, 0xffff, 'waiting')
      checkUint(answer.blocks, 0xff, 'blocks')
      w.u8(answer.deleted).u16(answer.waiting).u8(answer.blocks)
      break
    case 'padding':
      checkUint(answer.waiting, 0xffff, 'waiting')
      w.u16(answer.waiting)
      break
  }
  return w.finish()
}

/** Decodes one answer; never throws. Nothing may follow the last field. */
export function decodeAnswer (bytes: Uint8Array): DecodedAnswer {
  if (!isBytes(bytes)) return fail('input')
  if (bytes.length > MAX_ANSWER) return fail('length')
  const r = new Reader(bytes)
  const code = r.u8()
  if (code == null) return fail('length')
  const mailboxId = r.bytes(MAILBOX_ID_BYTES)
  if (mailboxId == null) return fail('length')
  let answer: MailboxAnswer
  switch (code) {
    case ANSWER_STORED: answer = { kind: 'stored', mailboxId }; break
    case ANSWER_FULL: answer = { kind: 'full', mailboxId }; break
    case ANSWER_UNKNOWN: answer = { kind: 'unknown-mailbox', mailboxId }; break
    case ANSWER_TOO_LARGE: answer = { kind: 'too-large', mailboxId }; break
    case ANSWER_REGISTERED: {
      const maxItems = r.u32()
      const maxBytes = r.u32()
      const itemAge = r.u64()
      const idleAge = r.u64()
      const waiting = r.u16()
      if (maxItems == null || maxBytes == null || itemAge == null || idleAge == null || waiting == null) return fail('length')
      if (itemAge > BigInt(MAX_TIMESTAMP) || idleAge > BigInt(MAX_TIMESTAMP)) return fail('timestamp')
      answer = { kind: 'registered', mailboxId, limits: { maxItems, maxBytes, itemAgeMs: Number(itemAge), idleAgeMs: Number(idleAge) }, waiting }
      break
    }
    case ANSWER_REFUSED: {
      const c = r.u8()
      if (c == null) return fail('length')
      const reason = (Object.keys(REFUSED_CODES) as RefusedReason[]).find(k => REFUSED_CODES[k] === c)
      if (reason == null) return fail('reason')
      answer = { kind: 'refused', mailboxId, reason }
      break
    }
    case ANSWER_STOCKED: {
      const waiting = r.u16()
      const blocks = r.u8()
      if (waiting == null || blocks == null) return fail('length')
      answer = { kind: 'stocked', mailboxId, waiting, blocks }
      break
    }
    case ANSWER_PUSH: {
      const itemId = r.bytes(ITEM_ID_BYTES)
      const length = r.u16()
      if (itemId == null || length == null || length < 1 || length > MAX_ITEM) return fail('length')
      const item = r.bytes(length)
      const waiting = r.u16()
      if (item == null || waiting == null) return fail('length')
      answer = { kind: 'push', mailboxId, itemId, item, waiting }
      break
    }
    case ANSWER_ACKED: {
      const deleted = r.u8()
      const waiting = r.u16()
      if (deleted == null || waiting == null) return fail('length')
      answer = { kind: 'acked', mailboxId, deleted, waiting }
      break
    }
    case ANSWER_SYNCED: {
      const deleted = r.u8()
      const waiting = r.u16()
      const blocks = r.u8()
      if (deleted == null || waiting == null || blocks == null) return fail('length')
      answer = { kind: 'synced', mailboxId, deleted, waiting, blocks }
      break
    }
    case ANSWER_PADDING: {
      const waiting = r.u16()
      if (waiting == null) return fail('length')
      answer = { kind: 'padding', mailboxId, waiting }
      break
    }
    default:
      return fail('kind')
  }
  if (r.remaining !== 0) return fail('length')
  return { ok: true, answer }
}

