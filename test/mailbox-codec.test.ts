import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import {
  decodeAnswer, decodeRequest, encodeAnswer, encodeDeposit, encodeRequest, mailboxIdOf, verifySigned
} from '../protocols/mailbox/codec.ts'
import type { MailboxAnswer } from '../protocols/mailbox/codec.ts'
import {
  buildAck, buildDeposit, buildRegister, buildStock, decodeMailboxPayload, generateMailboxKeyPair, mailboxKeyPairFromSeed,
  mailboxServiceBody
} from '../protocols/mailbox/client.ts'
import {
  MAX_ACK_IDS, MAX_ANSWER, MAX_ITEM, MAX_RECORD, MAX_REQUEST, MAX_REQUEST_WITH_REPLY, MAX_STOCK_BLOCKS,
  MAX_STOCK_BLOCKS_WITH_REPLY, PAYLOAD_CAPACITY, PUSH_FIXED_BYTES, SURB_SIZE
} from '../protocols/mailbox/constants.ts'

const T = 1_800_000_000_000
const bytes = (n: number, fill?: number): Uint8Array => fill == null ? new Uint8Array(randomBytes(n)) : new Uint8Array(n).fill(fill)
const keys = mailboxKeyPairFromSeed(bytes(32, 7))

describe('mailbox codec: sizes', () => {
  it('derives the limits of PROTOCOL-V2.md from the named constants', () => {
    assert.equal(MAX_ITEM, 2022)
    assert.equal(PAYLOAD_CAPACITY - 3 - SURB_SIZE - 35, MAX_ITEM)
    assert.equal(MAX_RECORD, 1918)
    assert.equal(MAX_STOCK_BLOCKS, 4)
    assert.equal(MAX_STOCK_BLOCKS_WITH_REPLY, 3)
    assert.equal(MAX_ACK_IDS, 121)
    assert.ok(PUSH_FIXED_BYTES + MAX_ITEM <= MAX_ANSWER)
  })

  it('the largest requests fit the service body they travel in', () => {
    assert.equal(mailboxServiceBody(buildDeposit(keys.mailboxId, bytes(MAX_ITEM)), bytes(SURB_SIZE)).length, PAYLOAD_CAPACITY)
    assert.ok(buildRegister(keys, bytes(MAX_RECORD), T).length <= MAX_REQUEST_WITH_REPLY)
    assert.ok(buildStock(keys, Array.from({ length: 4 }, () => bytes(SURB_SIZE)), T).length <= MAX_REQUEST)
    assert.ok(buildStock(keys, Array.from({ length: 3 }, () => bytes(SURB_SIZE)), T).length <= MAX_REQUEST_WITH_REPLY)
    assert.ok(buildAck(keys, Array.from({ length: MAX_ACK_IDS }, () => bytes(16)), T).length <= MAX_REQUEST_WITH_REPLY)
    assert.throws(() => mailboxServiceBody(buildStock(keys, Array.from({ length: 4 }, () => bytes(SURB_SIZE)), T), bytes(SURB_SIZE)), { name: 'RequestTooLargeError' })
    assert.throws(() => mailboxServiceBody(buildDeposit(keys.mailboxId, bytes(1)), bytes(10)), { name: 'InvalidReplyBlockError' })
  })
})

describe('mailbox codec: ids and keys', () => {
  it('mailbox id = SHA-256("p2pchat-mailbox-v1" || public key)', () => {
    const expected = createHash('sha256').update('p2pchat-mailbox-v1').update(keys.publicKey).digest()
    assert.deepEqual(Buffer.from(mailboxIdOf(keys.publicKey)), expected)
    assert.deepEqual(keys.mailboxId, new Uint8Array(expected))
    assert.throws(() => mailboxIdOf(bytes(31)), { name: 'InvalidKeyError' })
    assert.throws(() => mailboxKeyPairFromSeed(bytes(16)), { name: 'InvalidKeyError' })
  })

  it('generated key pairs differ and derive their ids', () => {
    const a = generateMailboxKeyPair()
    const b = generateMailboxKeyPair()
    assert.notDeepEqual(a.publicKey, b.publicKey)
    assert.deepEqual(a.mailboxId, mailboxIdOf(a.publicKey))
  })
})

describe('mailbox codec: requests round trip and signatures', () => {
  it('DEPOSIT', () => {
    const item = bytes(100)
    const d = decodeRequest(buildDeposit(keys.mailboxId, item))
    assert.ok(d.ok)
    assert.deepEqual(d.request, { op: 'deposit', mailboxId: keys.mailboxId, item })
  })

  it('REGISTER, STOCK and ACK verify with the mailbox key and not with another; any flipped bit breaks them', () => {
    const other = generateMailboxKeyPair()
    const requests = [
      buildRegister(keys, bytes(300), T),
      buildStock(keys, [bytes(SURB_SIZE), bytes(SURB_SIZE)], T),
      buildAck(keys, [bytes(16), bytes(16), bytes(16)], T)
    ]
    for (const wire of requests) {
      const d = decodeRequest(wire)
      assert.ok(d.ok && 'signed' in d)
      assert.equal(verifySigned(d.signed, d.request.signature, keys.publicKey), true)
      assert.equal(verifySigned(d.signed, d.request.signature, other.publicKey), false)
      assert.deepEqual(encodeRequest(d.request), wire, 're-encoding gives the same bytes')
      for (const at of [1, 40, wire.length - 65, wire.length - 1]) {
        const bad = new Uint8Array(wire)
        bad[at] ^= 0x01
        const e = decodeRequest(bad)
        assert.ok(e.ok && 'signed' in e, `still decodes with the bit at ${at} flipped`)
        assert.equal(verifySigned(e.signed, e.request.signature, keys.publicKey), false, `bit at ${at}`)
      }
    }
  })

  it('a signature for one operation is not valid for another (labels)', () => {
    const ack = decodeRequest(buildAck(keys, [bytes(16)], T))
    assert.ok(ack.ok && 'signed' in ack)
    // the same tail bytes under the stock label
    const label = new TextEncoder().encode('p2pchat-mailbox-v1/stock')
    const tail = ack.signed.subarray('p2pchat-mailbox-v1/ack'.length)
    const forged = new Uint8Array(label.length + tail.length)
    forged.set(label)
    forged.set(tail, label.length)
    assert.equal(verifySigned(forged, ack.request.signature, keys.publicKey), false)
  })
})

describe('mailbox codec: encoders throw named errors', () => {
  it('refuses what the format cannot carry', () => {
    assert.throws(() => encodeDeposit(bytes(31), bytes(1)), { name: 'InvalidMailboxIdError' })
    assert.throws(() => buildDeposit(keys.mailboxId, new Uint8Array(0)), { name: 'ItemTooLargeError' })
    assert.throws(() => buildDeposit(keys.mailboxId, bytes(MAX_ITEM + 1)), { name: 'ItemTooLargeError' })
    assert.throws(() => buildRegister(keys, bytes(MAX_RECORD + 1), T), { name: 'RecordTooLargeError' })
    assert.throws(() => buildRegister(keys, new Uint8Array(0), T), { name: 'RecordTooLargeError' })
    assert.throws(() => buildRegister(keys, bytes(10), -1), { name: 'InvalidTimestampError' })
    assert.throws(() => buildRegister(keys, bytes(10), 2 ** 53), { name: 'InvalidTimestampError' })
    assert.throws(() => buildStock(keys, [], T), { name: 'TooManyBlocksError' })
    assert.throws(() => buildStock(keys, Array.from({ length: 5 }, () => bytes(SURB_SIZE)), T), { name: 'TooManyBlocksError' })
    assert.throws(() => buildStock(keys, [bytes(SURB_SIZE - 1)], T), { name: 'InvalidReplyBlockError' })
    assert.throws(() => buildAck(keys, [], T), { name: 'TooManyItemIdsError' })
    assert.throws(() => buildAck(keys, Array.from({ length: MAX_ACK_IDS + 1 }, () => bytes(16)), T), { name: 'TooManyItemIdsError' })
    assert.throws(() => buildAck(keys, [bytes(15)], T), { name: 'InvalidItemIdError' })
    const id = keys.mailboxId
    assert.throws(() => encodeAnswer({ kind: 'stocked', mailboxId: id, waiting: 70_000, blocks: 1 }), { name: 'InvalidAnswerFieldError' })
    assert.throws(() => encodeAnswer({ kind: 'acked', mailboxId: id, deleted: 256, waiting: 0 }), { name: 'InvalidAnswerFieldError' })
    assert.throws(() => encodeAnswer({ kind: 'push', mailboxId: id, itemId: bytes(16), item: bytes(MAX_ITEM + 1), waiting: 0 }), { name: 'ItemTooLargeError' })
    assert.throws(() => encodeAnswer({ kind: 'push', mailboxId: id, itemId: bytes(8), item: bytes(1), waiting: 0 }), { name: 'InvalidItemIdError' })
    assert.throws(() => encodeAnswer({ kind: 'stored', mailboxId: bytes(3) }), { name: 'InvalidMailboxIdError' })
  })
})

describe('mailbox codec: answers', () => {
  const id = keys.mailboxId
  const answers: MailboxAnswer[] = [
    { kind: 'stored', mailboxId: id },
    { kind: 'full', mailboxId: id },
    { kind: 'unknown-mailbox', mailboxId: id },
    { kind: 'too-large', mailboxId: id },
    { kind: 'registered', mailboxId: id, limits: { maxItems: 1000, maxBytes: 2 ** 21, itemAgeMs: 604_800_000, idleAgeMs: 691_200_000 }, waiting: 3 },
    { kind: 'refused', mailboxId: id, reason: 'relay-full' },
    { kind: 'refused', mailboxId: id, reason: 'bad-signature' },
    { kind: 'refused', mailboxId: id, reason: 'stale' },
    { kind: 'refused', mailboxId: id, reason: 'key-mismatch' },
    { kind: 'stocked', mailboxId: id, waiting: 65535, blocks: 16 },
    { kind: 'push', mailboxId: id, itemId: bytes(16), item: bytes(MAX_ITEM), waiting: 9 },
    { kind: 'acked', mailboxId: id, deleted: 121, waiting: 0 }
  ]

  it('every kind round-trips, fits 2588 bytes, and through the service payload', () => {
    for (const a of answers) {
      const wire = encodeAnswer(a)
      assert.ok(wire.length <= MAX_ANSWER)
      assert.deepEqual(decodeAnswer(wire), { ok: true, answer: a })
      const payload = new Uint8Array(wire.length + 1)
      payload[0] = 0x01
      payload.set(wire, 1)
      assert.deepEqual(decodeMailboxPayload(payload), { ok: true, answer: a })
    }
  })

  it('every decoder fault is a reason, never a throw', () => {
    const stocked = encodeAnswer(answers[9])
    const push = encodeAnswer(answers[10])
    const cases: Array<[Uint8Array, string]> = [
      [new Uint8Array(0), 'length'],
      [Uint8Array.of(0x01), 'length'],
      [Uint8Array.of(0x0c, ...id), 'kind'],
      [Uint8Array.of(0x00, ...id), 'kind'],
      [Uint8Array.of(0x06, ...id, 0x09), 'reason'],
      [Uint8Array.of(0x06, ...id), 'length'],
      [Uint8Array.of(0x01, ...id, 0x00), 'length'],
      [stocked.subarray(0, stocked.length - 1), 'length'],
      [push.subarray(0, push.length - 1), 'length'],
      [new Uint8Array([...push, 0]), 'length'],
      [new Uint8Array(MAX_ANSWER + 1), 'length']
    ]
    // a PUSH whose item length is 0
    const empty = new Uint8Array(push)
    empty[33 + 16] = 0
    empty[33 + 17] = 0
    cases.push([empty, 'length'])
    // REGISTERED with an age above 2^53
    const reg = encodeAnswer(answers[4])
    reg.fill(0xff, 41, 49)
    cases.push([reg, 'timestamp'])
    for (const [wire, reason] of cases) assert.deepEqual(decodeAnswer(wire), { ok: false, reason }, Buffer.from(wire.subarray(0, 2)).toString('hex'))
    assert.deepEqual(decodeAnswer('nope' as unknown as Uint8Array), { ok: false, reason: 'input' })
    assert.deepEqual(decodeMailboxPayload(Uint8Array.of(0x02, ...encodeAnswer(answers[0]))), { ok: false, reason: 'kind' })
    assert.deepEqual(decodeMailboxPayload(new Uint8Array(0)), { ok: false, reason: 'kind' })
  })
})

describe('mailbox codec: request decoder faults', () => {
  const register = buildRegister(keys, bytes(50), T)
  const stock = buildStock(keys, [bytes(SURB_SIZE)], T)
  const ack = buildAck(keys, [bytes(16), bytes(16)], T)
  const deposit = buildDeposit(keys.mailboxId, bytes(20))

  function patched (wire: Uint8Array, at: number, ...values: number[]): Uint8Array {
    const out = new Uint8Array(wire)
    out.set(values, at)
    return out
  }

  it('rejects each malformed request with its reason', () => {
    const cases: Array<[Uint8Array, string, string]> = [
      [new Uint8Array(0), 'length', 'empty'],
      [Uint8Array.of(0x06, ...keys.mailboxId), 'op', 'unknown op'],
      [Uint8Array.of(0x00), 'op', 'op 0'],
      [deposit.subarray(0, 20), 'length', 'truncated id'],
      [deposit.subarray(0, deposit.length - 1), 'length', 'truncated item'],
      [new Uint8Array([...deposit, 0]), 'length', 'trailing byte'],
      [patched(deposit, 33, 0, 0), 'length', 'empty item'],
      [register.subarray(0, register.length - 1), 'length', 'register short signature'],
      [new Uint8Array([...register, 1]), 'length', 'register trailing'],
      [patched(register, 65, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), 'timestamp', 'register timestamp > 2^53'],
      [patched(register, 73, 0, 0), 'length', 'register record length 0'],
      [patched(register, 73, 0x07, 0x7f), 'length', 'register record length > MAX_RECORD'],
      [register.subarray(0, 70), 'length', 'register truncated timestamp'],
      [patched(stock, 41, 0), 'count', 'stock count 0'],
      [patched(stock, 41, 5), 'count', 'stock count 5'],
      [patched(stock, 41, 2), 'length', 'stock count says 2, holds 1'],
      [patched(stock, 33, 0x80), 'timestamp', 'stock timestamp high bit'],
      [patched(ack, 41, 0), 'count', 'ack count 0'],
      [patched(ack, 41, 122), 'count', 'ack count above MAX_ACK_IDS'],
      [patched(ack, 41, 3), 'length', 'ack count says 3, holds 2'],
      [patched(ack, 41, 1), 'length', 'ack count says 1, holds 2'],
      [ack.subarray(0, 90), 'length', 'ack without signature']
    ]
    for (const [wire, reason, what] of cases) assert.deepEqual(decodeRequest(wire), { ok: false, reason }, what)
    assert.deepEqual(decodeRequest(undefined as unknown as Uint8Array), { ok: false, reason: 'input' })
  })

  it('random bytes never throw (20,000 inputs, every op byte)', () => {
    for (let i = 0; i < 20_000; i++) {
      const wire = bytes(i % 400)
      if (wire.length > 0) wire[0] = i % 6
      const d = decodeRequest(wire)
      assert.equal(typeof d.ok, 'boolean')
      const a = decodeAnswer(wire)
      assert.equal(typeof a.ok, 'boolean')
    }
  })
})
