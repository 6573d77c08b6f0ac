/**
 * Mailbox service version 2 (protocols/mailbox/SPEC.md section 11): the known-answer vectors of SYNC,
 * SYNCED and PADDING (test/vectors/mailbox-v2.json; version 1's still pass in mailbox-vectors.test.ts),
 * the decoder's refusals, and the relay's steady pushing on a fake clock: one push per period at fixed
 * times whether or not mail waits, an item when one is due and PADDING otherwise, nothing pushed at
 * once on a DEPOSIT, and a REGISTER ending steady mode.
 */
import assert from 'node:assert/strict'
import { createPublicKey, randomBytes, verify } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, it } from 'node:test'
import { buildDeposit, buildRegister, buildStock, buildSync, decodeMailboxPayload, generateMailboxKeyPair, mailboxKeyPairFromSeed, mailboxServiceBody } from '../protocols/mailbox/client.ts'
import type { MailboxKeyPair } from '../protocols/mailbox/client.ts'
import { decodeAnswer, decodeRequest, encodeAnswer } from '../protocols/mailbox/codec.ts'
import type { MailboxAnswer } from '../protocols/mailbox/codec.ts'
import { SURB_SIZE, SYNC_ACK_SLOTS, SYNC_BLOCKS, SYNC_BYTES } from '../protocols/mailbox/constants.ts'
import { MailboxService } from '../protocols/mailbox/service.ts'
import { MailboxStore } from '../protocols/mailbox/store.ts'
import { FakeClock } from './helpers/fake-clock.ts'

interface Vector {
  mailboxKey: { seed: string, publicKey: string, mailboxId: string }
  requests: Array<{ name: string, fields: Record<string, unknown>, signatureInput: string, wire: string }>
  answers: Array<{ fields: Record<string, unknown>, wire: string }>
  serviceBody: { replyBlock: string, request: string, wire: string }
}

const vector = JSON.parse(readFileSync(new URL('./vectors/mailbox-v2.json', import.meta.url), 'utf8')) as Vector
const bytes = (h: unknown): Uint8Array => new Uint8Array(Buffer.from(String(h), 'hex'))
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const jsonForm = (value: unknown): unknown => value instanceof Uint8Array
  ? hex(value)
  : Array.isArray(value) ? value.map(jsonForm) : value != null && typeof value === 'object' ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, jsonForm(v)])) : value
const block = (): Uint8Array => new Uint8Array(randomBytes(SURB_SIZE))
const blocks3 = (): Uint8Array[] => Array.from({ length: SYNC_BLOCKS }, block)

describe('mailbox v2: known-answer vectors (test/vectors/mailbox-v2.json)', () => {
  const keys = mailboxKeyPairFromSeed(bytes(vector.mailboxKey.seed))
  it('the key pair matches the vector', () => {
    assert.equal(hex(keys.publicKey), vector.mailboxKey.publicKey)
    assert.equal(hex(keys.mailboxId), vector.mailboxKey.mailboxId)
  })
  for (const v of vector.requests) {
    it(`request ${v.name}: rebuilt byte for byte, 2049 bytes, signature checked with node:crypto`, () => {
      const f = v.fields
      const built = buildSync(keys, (f.blocks as string[]).map(bytes), (f.itemIds as string[]).map(bytes), f.pushPeriodMs as number, f.timestamp as number)
      assert.equal(hex(built), v.wire)
      assert.equal(built.length, SYNC_BYTES)
      assert.equal(SYNC_BYTES, 2049)
      const d = decodeRequest(built)
      assert.ok(d.ok && 'signed' in d)
      assert.deepEqual(jsonForm(d.request), v.fields)
      const input = Buffer.concat([Buffer.from('p2pchat-mailbox-v2/sync'), built.subarray(1, built.length - 64)])
      assert.equal(input.toString('hex'), v.signatureInput)
      const spki = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), keys.publicKey])
      assert.equal(verify(null, input, createPublicKey({ key: spki, format: 'der', type: 'spki' }), built.subarray(built.length - 64)), true)
    })
  }
  it('SYNCED and PADDING: encoded byte for byte and decoded to their fields', () => {
    for (const a of vector.answers) {
      const f = Object.fromEntries(Object.entries(a.fields).map(([k, v]) => [k, k === 'mailboxId' ? bytes(v) : v]))
      assert.equal(hex(encodeAnswer(f as unknown as MailboxAnswer)), a.wire)
      const d = decodeAnswer(bytes(a.wire))
      assert.ok(d.ok)
      assert.deepEqual(jsonForm(d.answer), a.fields)
    }
  })
  it('the version probe: a SYNC with its reply block fits one service body', () => {
    const sync = vector.requests.find(r => r.name === vector.serviceBody.request)
    assert.ok(sync)
    assert.equal(hex(mailboxServiceBody(bytes(sync.wire), bytes(vector.serviceBody.replyBlock))), vector.serviceBody.wire)
  })
})

describe('mailbox v2: decoding refuses, with a reason, never a throw', () => {
  const keys = generateMailboxKeyPair()
  const good = buildSync(keys, blocks3(), [new Uint8Array(randomBytes(16))], 1000, Date.now())
  it('a non-zero unused id slot, a period out of bounds, a count above 22, truncation, trailing bytes', () => {
    const slot = new Uint8Array(good)
    slot[46 + 16 * 5] = 1
    assert.deepEqual(decodeRequest(slot), { ok: false, reason: 'padding' })
    const period = new Uint8Array(good)
    period.set([0, 0, 0, 99], 41)
    assert.deepEqual(decodeRequest(period), { ok: false, reason: 'period' })
    const count = new Uint8Array(good)
    count[45] = SYNC_ACK_SLOTS + 1
    assert.deepEqual(decodeRequest(count), { ok: false, reason: 'count' })
    assert.deepEqual(decodeRequest(good.subarray(0, good.length - 1)), { ok: false, reason: 'length' })
    assert.deepEqual(decodeRequest(new Uint8Array([...good, 0])), { ok: false, reason: 'length' })
    for (let n = 0; n < good.length; n += 97) assert.equal(decodeRequest(good.subarray(0, n)).ok, false)
  })
  it('encoders throw named errors: 2 blocks, 23 ids, a period of 50 ms', () => {
    assert.throws(() => buildSync(keys, blocks3().slice(1), [], 1000, 1), { name: 'SyncBlocksError' })
    assert.throws(() => buildSync(keys, blocks3(), Array.from({ length: 23 }, () => new Uint8Array(16)), 1000, 1), { name: 'TooManyItemIdsError' })
    assert.throws(() => buildSync(keys, blocks3(), [], 50, 1), { name: 'InvalidPushPeriodError' })
  })
})

describe('mailbox v2: the relay pushes steadily', () => {
  let dir: string
  let store: MailboxStore
  let clock: FakeClock
  let service: MailboxService
  let sent: Array<{ at: number, block: string, answer: MailboxAnswer }>
  let keys: MailboxKeyPair
  const T0 = 1_800_000_000_000

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'p2pchat-mailbox-v2-'))
    store = MailboxStore.open(MailboxStore.pathIn(dir))
    clock = new FakeClock()
    clock.t = T0
    sent = []
    service = new MailboxService({
      store,
      now: clock.now,
      timers: { set: clock.setTimer, clear: clock.clearTimer },
      uniform: () => 0.5,
      limits: { repushIntervalMs: 10 * 60_000 },
      sendThroughReplyBlock: (b, payload) => {
        const d = decodeMailboxPayload(payload)
        assert.ok(d.ok)
        sent.push({ at: clock.now(), block: hex(b), answer: d.answer })
      }
    })
    keys = generateMailboxKeyPair()
    service.handle(buildRegister(keys, new Uint8Array(50).fill(1), clock.now()), block())
    sent = []
  })
  afterEach(() => {
    service.stop()
    store.close()
    rmSync(dir, { recursive: true, force: true })
  })

  const kinds = (): string[] => sent.map(s => s.answer.kind)

  it('a SYNC answers SYNCED through its reply block and pushes nothing at once; then one push per period at fixed times, PADDING when nothing waits', async () => {
    service.handle(buildSync(keys, blocks3(), [], 1000, clock.now()), block())
    assert.deepEqual(kinds(), ['synced'])
    assert.deepEqual(sent[0].answer, { kind: 'synced', mailboxId: keys.mailboxId, deleted: 0, waiting: 0, blocks: 3 })
    sent = []
    clock.advance(499)
    assert.equal(sent.length, 0, 'the first tick is at the drawn phase (0.5 of a period)')
    clock.advance(1)
    assert.deepEqual(kinds(), ['padding'])
    // mail arrives: no push at once
    service.handle(buildDeposit(keys.mailboxId, new Uint8Array(300).fill(9)), block())
    await service.settled()
    assert.deepEqual(kinds(), ['padding', 'stored'])
    clock.advance(999)
    assert.equal(sent.length, 2)
    clock.advance(1)
    assert.equal(sent[2].answer.kind, 'push')
    assert.equal(sent[2].at, T0 + 1500)
    clock.advance(1000)
    assert.equal(sent[3].answer.kind, 'padding')
    assert.equal(sent[3].at, T0 + 2500)
    // no block left: the ticks go on, nothing is pushed, counted
    clock.advance(5000)
    assert.equal(sent.length, 4)
    assert.equal(service.stats().steadyIdle, 5)
    assert.equal(service.stats().paddingPushes, 2)
    assert.equal(service.stats().pushes, 1)
  })

  it('the same push times with or without mail waiting (same phase, same blocks)', () => {
    const run = (withMail: boolean): number[] => {
      const s = new MailboxService({
        store,
        now: clock.now,
        timers: { set: clock.setTimer, clear: clock.clearTimer },
        uniform: () => 0.25,
        sendThroughReplyBlock: (_b, payload) => { const d = decodeMailboxPayload(payload); if (d.ok && d.answer.kind !== 'stored') times.push(clock.now()) }
      })
      const times: number[] = []
      const k = generateMailboxKeyPair()
      s.handle(buildRegister(k, new Uint8Array(20).fill(2), clock.now()), undefined)
      const start = clock.now()
      for (let i = 0; i < 5; i++) {
        s.handle(buildSync(k, blocks3(), [], 700, clock.now()), undefined)
        if (withMail) for (let j = 0; j < 2; j++) s.handle(buildDeposit(k.mailboxId, new Uint8Array(100 + j).fill(i)), block())
        clock.advance(1500)
      }
      s.stop()
      return times.map(t => t - start)
    }
    const idle = run(false)
    const active = run(true)
    assert.ok(idle.length >= 10)
    assert.deepEqual(active, idle)
  })

  it('the SYNC\'s ids delete items (authenticated as an ACK); a REGISTER ends steady mode; a STOCK in steady mode pushes nothing at once', () => {
    service.handle(buildSync(keys, blocks3(), [], 1000, clock.now()), undefined)
    service.handle(buildDeposit(keys.mailboxId, new Uint8Array(10).fill(3)), undefined)
    clock.advance(500)
    const push = sent.find(s => s.answer.kind === 'push')?.answer
    assert.ok(push?.kind === 'push')
    service.handle(buildSync(keys, blocks3(), [push.itemId], 1000, clock.now()), block())
    assert.deepEqual(sent.at(-1)?.answer, { kind: 'synced', mailboxId: keys.mailboxId, deleted: 1, waiting: 0, blocks: 5 })
    const before = sent.length
    service.handle(buildStock(keys, [block()], clock.now()), undefined)
    service.handle(buildDeposit(keys.mailboxId, new Uint8Array(10).fill(4)), undefined)
    assert.equal(sent.length, before)
    assert.equal(service.stats().steadyMailboxes, 1)
    clock.advance(1)
    service.handle(buildRegister(keys, new Uint8Array(50).fill(1), clock.now()), undefined)
    assert.equal(service.stats().steadyMailboxes, 0)
    // version 1 again: a STOCK pushes what waits at once
    service.handle(buildStock(keys, [block()], clock.now()), undefined)
    assert.equal(sent.at(-1)?.answer.kind, 'push')
    assert.equal(service.stats().requests.sync.synced, 2)
  })

  it('a SYNC signed by another key is refused and starts nothing', () => {
    const other = generateMailboxKeyPair()
    const forged = buildSync({ ...other, mailboxId: keys.mailboxId }, blocks3(), [], 1000, clock.now())
    service.handle(forged, block())
    assert.equal(sent.at(-1)?.answer.kind, 'refused')
    assert.equal(service.stats().steadyMailboxes, 0)
    assert.equal(service.stats().requests.sync['bad-signature'], 1)
  })
})
