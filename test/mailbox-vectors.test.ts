import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, createPublicKey, verify } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { buildAck, buildDeposit, buildRegister, buildStock, mailboxKeyPairFromSeed, mailboxServiceBody } from '../protocols/mailbox/client.ts'
import { decodeAnswer, decodeRequest, encodeAnswer } from '../protocols/mailbox/codec.ts'
import type { MailboxAnswer } from '../protocols/mailbox/codec.ts'

interface RequestVector { name: string, fields: Record<string, unknown>, signatureInput?: string, wire: string }
interface Vector {
  mailboxKey: { seed: string, publicKey: string, mailboxId: string }
  requests: RequestVector[]
  answers: Array<{ fields: Record<string, unknown>, wire: string }>
  serviceBody: { replyBlock: string, request: string, wire: string }
}

const vector = JSON.parse(readFileSync(new URL('./vectors/mailbox-v1.json', import.meta.url), 'utf8')) as Vector
const bytes = (h: unknown): Uint8Array => new Uint8Array(Buffer.from(String(h), 'hex'))
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const BYTE_FIELDS = new Set(['mailboxId', 'publicKey', 'record', 'signature', 'item', 'itemId'])
const BYTE_LISTS = new Set(['blocks', 'itemIds'])

function jsonForm (value: unknown): unknown {
  if (value instanceof Uint8Array) return hex(value)
  if (Array.isArray(value)) return value.map(jsonForm)
  if (value != null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, jsonForm(v)]))
  return value
}

function fromJson (fields: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(fields).map(([k, v]) => [
    k, BYTE_FIELDS.has(k) ? bytes(v) : BYTE_LISTS.has(k) && Array.isArray(v) ? v.map(bytes) : v
  ]))
}

const keys = mailboxKeyPairFromSeed(bytes(vector.mailboxKey.seed))
const LABELS: Record<string, string> = { register: 'p2pchat-mailbox-v1/register', stock: 'p2pchat-mailbox-v1/stock', ack: 'p2pchat-mailbox-v1/ack' }

describe('mailbox: known-answer vectors (test/vectors/mailbox-v1.json)', () => {
  it('the key pair and the mailbox id, the id checked with node:crypto directly', () => {
    assert.equal(hex(keys.publicKey), vector.mailboxKey.publicKey)
    assert.equal(hex(keys.mailboxId), vector.mailboxKey.mailboxId)
    assert.equal(createHash('sha256').update('p2pchat-mailbox-v1').update(keys.publicKey).digest('hex'), vector.mailboxKey.mailboxId)
  })

  it('holds every request op and every answer kind', () => {
    assert.deepEqual(vector.requests.map(r => r.name).sort(), ['ack', 'deposit', 'register', 'stock'])
    assert.deepEqual([...new Set(vector.answers.map(a => a.fields.kind))].sort(),
      ['acked', 'full', 'push', 'refused', 'registered', 'stocked', 'stored', 'too-large', 'unknown-mailbox'])
  })

  for (const v of vector.requests) {
    it(`request ${v.name}: rebuilt byte for byte, decoded to its fields, signature checked independently`, () => {
      const f = fromJson(v.fields)
      const built = v.name === 'deposit'
        ? buildDeposit(f.mailboxId as Uint8Array, f.item as Uint8Array)
        : v.name === 'register'
          ? buildRegister(keys, f.record as Uint8Array, f.timestamp as number)
          : v.name === 'stock'
            ? buildStock(keys, f.blocks as Uint8Array[], f.timestamp as number)
            : buildAck(keys, f.itemIds as Uint8Array[], f.timestamp as number)
      assert.equal(hex(built), v.wire)
      const d = decodeRequest(bytes(v.wire))
      assert.ok(d.ok)
      assert.deepEqual(jsonForm(d.request), v.fields)
      if (v.name === 'deposit') return
      const wire = bytes(v.wire)
      const input = Buffer.concat([Buffer.from(LABELS[v.name]), wire.subarray(1, wire.length - 64)])
      assert.equal(input.toString('hex'), v.signatureInput)
      assert.ok('signed' in d)
      assert.equal(hex(d.signed), v.signatureInput)
      const spki = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), keys.publicKey])
      const publicKey = createPublicKey({ key: spki, format: 'der', type: 'spki' })
      assert.equal(verify(null, input, publicKey, wire.subarray(wire.length - 64)), true)
    })
  }

  it('every answer: encoded byte for byte and decoded to its fields', () => {
    for (const a of vector.answers) {
      const fields = fromJson(a.fields)
      assert.equal(hex(encodeAnswer(fields as unknown as MailboxAnswer)), a.wire, String(a.fields.kind))
      const d = decodeAnswer(bytes(a.wire))
      assert.ok(d.ok)
      assert.deepEqual(jsonForm(d.answer), a.fields)
    }
  })

  it('the service body of a DEPOSIT with its stored reply block', () => {
    const deposit = vector.requests.find(r => r.name === 'deposit')
    assert.ok(deposit)
    const body = mailboxServiceBody(bytes(deposit.wire), bytes(vector.serviceBody.replyBlock))
    assert.equal(hex(body), vector.serviceBody.wire)
    assert.equal(vector.serviceBody.wire.slice(0, 6), '010211', 'service 0x01, reply block length 529')
  })
})
