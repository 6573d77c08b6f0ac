/**
 * The directory exit (protocols/directory/exit.ts, EXIT.md): the codec against its known-answer vector
 * and hostile bytes, the client's comparison rule, and a DirectoryExit on an in-process loopback DHT:
 * lookups and publishes through it, a taken nick, invalid records refused with their fault, the busy
 * limit and the per-operation timeout.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import { ephemeralIdentity } from '../node/identity.ts'
import {
  ANSWER_MAX_BYTES, compareLookups, decodeAnswer, decodeRequest, DirectoryExit, encodeAnswer, encodeFindRelays, encodeLookup,
  encodePublish, OP_FIND_RELAYS, OP_LOOKUP_NAME, OP_PUBLISH_NAME
} from '../protocols/directory/exit.ts'
import type { ExitAnswer, ExitDirectory } from '../protocols/directory/exit.ts'
import { KIND_NAME, KIND_RELAY, MAX_RECORD_SIZE, signRecord } from '../protocols/directory/record.ts'
import type { DirectoryRecord, SignedRecord } from '../protocols/directory/record.ts'
import { TestNetwork } from './helpers/network.ts'
import type { TestPeer } from './helpers/network.ts'
import { v1Record } from './helpers/records.ts'
import { answerJson, exitVectorMessages } from './vectors/make-exit-vector.ts'

type Id = Awaited<ReturnType<typeof ephemeralIdentity>>

function nameRecord (id: Id, nick: string, over: Partial<DirectoryRecord> = {}): DirectoryRecord {
  return {
    kind: KIND_NAME, nick, identityKey: id.identityKey,
    onionKeys: [{ epoch: 0, notBefore: 0, notAfter: 0, key: id.onionPublic }],
    mailboxes: [{ relay: new Uint8Array(32).fill(1), id: new Uint8Array(32).fill(2) }],
    addrs: [], sequence: BigInt(Date.now()), expiry: Date.now() + 3600_000, ...over
  }
}

function relayDescriptor (id: Id, addrs = 1): Uint8Array {
  return signRecord({
    kind: KIND_RELAY, nick: '', identityKey: id.identityKey,
    onionKeys: [{ epoch: 1, notBefore: Date.now() - 1000, notAfter: Date.now() + 3600_000, key: id.onionPublic }],
    addrs: Array.from({ length: addrs }, (_, i) => `/dns4/relay-${i}-${'x'.repeat(80)}.example.org/tcp/${4000 + i}/wss`),
    sequence: 1n, expiry: Date.now() + 3600_000
  }, id.signer).bytes
}

function answerOf (bytes: Uint8Array): ExitAnswer {
  assert.ok(bytes.length <= ANSWER_MAX_BYTES, `a ${bytes.length}-byte answer`)
  const d = decodeAnswer(bytes)
  assert.ok(d.ok, `undecodable answer: ${d.ok ? '' : d.reason}`)
  return d.value
}

describe('directory exit codec: known-answer vector (test/vectors/directory-exit.json)', () => {
  const vector = JSON.parse(readFileSync(new URL('./vectors/directory-exit.json', import.meta.url), 'utf8'))
  const m = exitVectorMessages()

  it('encodes the requests to the committed bytes and decodes them back', () => {
    assert.equal(vector.requests.length, m.requests.length)
    m.requests.forEach((r, i) => assert.equal(Buffer.from(r.bytes).toString('hex'), vector.requests[i].bytes, r.label))
    assert.deepEqual(decodeRequest(Buffer.from(vector.requests[0].bytes, 'hex')), { ok: true, value: { op: OP_LOOKUP_NAME, nick: 'alice' } })
    const publish = decodeRequest(Buffer.from(vector.requests[1].bytes, 'hex'))
    assert.deepEqual(publish, { ok: true, value: { op: OP_PUBLISH_NAME, record: m.name } })
    assert.ok(publish.ok && publish.value.op === OP_PUBLISH_NAME && Object.getPrototypeOf(publish.value.record) === Uint8Array.prototype, 'a plain copy, not a view on the input Buffer')
    assert.deepEqual(decodeRequest(Buffer.from(vector.requests[2].bytes, 'hex')), { ok: true, value: { op: OP_FIND_RELAYS, max: 5 } })
  })

  it('encodes the answers to the committed bytes and decodes them back', () => {
    assert.equal(vector.answers.length, m.answers.length)
    m.answers.forEach((a, i) => {
      const v = vector.answers[i]
      assert.equal(Buffer.from(encodeAnswer(a.answer)).toString('hex'), v.bytes, a.label)
      assert.deepEqual(answerJson(answerOf(new Uint8Array(Buffer.from(v.bytes, 'hex')))), v.answer, a.label)
    })
  })
})

describe('directory exit codec: limits and hostile bytes', () => {
  it('encoders refuse what the format cannot carry, with ExitCodecError', () => {
    assert.throws(() => encodeLookup('Alice'), { name: 'ExitCodecError', reason: 'nick' })
    assert.throws(() => encodePublish(new Uint8Array(MAX_RECORD_SIZE + 1)), { name: 'ExitCodecError', reason: 'record-length' })
    assert.throws(() => encodeFindRelays(0), { name: 'ExitCodecError', reason: 'count' })
    assert.throws(() => encodeFindRelays(65), { name: 'ExitCodecError', reason: 'count' })
    const big = new Uint8Array(MAX_RECORD_SIZE).fill(1)
    assert.throws(() => encodeAnswer({ op: OP_FIND_RELAYS, status: 'relays', descriptors: [big, big] }), { name: 'ExitCodecError', reason: 'oversize' })
    assert.throws(() => encodeAnswer({ op: OP_PUBLISH_NAME, status: 'refused', fault: 'Not a fault!' }), { name: 'ExitCodecError', reason: 'fault' })
    // the largest lookup answer fits one reply payload
    assert.ok(encodeAnswer({ op: OP_LOOKUP_NAME, status: 'found', record: big }).length <= ANSWER_MAX_BYTES)
  })

  it('decoders name what is wrong and never throw, on every truncation and on random bytes', () => {
    assert.deepEqual(decodeRequest(new Uint8Array()), { ok: false, reason: 'empty' })
    assert.deepEqual(decodeRequest(Uint8Array.from([9])), { ok: false, reason: 'unknown-op' })
    assert.deepEqual(decodeRequest(Uint8Array.from([1, 5, 0x61])), { ok: false, reason: 'truncated' })
    assert.deepEqual(decodeRequest(Uint8Array.from([3, 5, 0])), { ok: false, reason: 'trailing-bytes' })
    assert.deepEqual(decodeRequest(Uint8Array.from([3, 0])), { ok: false, reason: 'count' })
    assert.deepEqual(decodeRequest(Uint8Array.from([2, 0, 0])), { ok: false, reason: 'record-length' })
    assert.deepEqual(decodeAnswer(Uint8Array.from([1, 0x02])), { ok: false, reason: 'status' }, 'TAKEN is not a lookup status')
    assert.deepEqual(decodeAnswer(Uint8Array.from([1, 0x05, 0x09])), { ok: false, reason: 'error-reason' })
    assert.deepEqual(decodeAnswer(Uint8Array.from([1, 0x01, 0])), { ok: false, reason: 'trailing-bytes' })
    const m = exitVectorMessages()
    const messages = [...m.requests.map(r => r.bytes), ...m.answers.map(a => encodeAnswer(a.answer))]
    let refused = 0
    for (const msg of messages) {
      for (let n = 0; n < msg.length; n++) {
        const cut = msg.subarray(0, n)
        const r = decodeRequest(cut)
        const a = decodeAnswer(cut)
        if (!r.ok) refused++
        if (!a.ok) refused++
      }
    }
    assert.ok(refused > 0)
    for (let i = 0; i < 5000; i++) {
      const junk = new Uint8Array(randomBytes(i % 40 === 0 ? 3000 : i % 300))
      decodeRequest(junk)
      decodeAnswer(junk)
    }
  })
})

describe('compareLookups: the client rule for two or more exits', () => {
  it('agree -> found; one not-found -> found with a warning; both not-found -> not found; different keys -> disagree; errors -> unknown', async () => {
    const a = await ephemeralIdentity()
    const b = await ephemeralIdentity()
    const recA1 = signRecord(nameRecord(a, 'alice', { sequence: 1n }), a.signer).bytes
    const recA2 = signRecord(nameRecord(a, 'alice', { sequence: 2n }), a.signer).bytes
    const recB = signRecord(nameRecord(b, 'alice'), b.signer).bytes
    const found = (r: Uint8Array): Uint8Array => encodeAnswer({ op: OP_LOOKUP_NAME, status: 'found', record: r })
    const notFound = encodeAnswer({ op: OP_LOOKUP_NAME, status: 'not-found' })
    const busy = encodeAnswer({ op: OP_LOOKUP_NAME, status: 'busy' })
    const agree = compareLookups('alice', [found(recA1), found(recA2)])
    assert.equal(agree.verdict, 'found')
    assert.ok(agree.verdict === 'found' && agree.agreed && agree.record.sequence === 2n && agree.warnings.length === 0)
    const half = compareLookups('alice', [found(recA1), notFound])
    assert.ok(half.verdict === 'found' && !half.agreed && half.warnings.length === 1, JSON.stringify(half.warnings))
    assert.deepEqual(compareLookups('alice', [notFound, notFound]), { verdict: 'not-found', warnings: [] })
    const split = compareLookups('alice', [found(recA1), found(recB)])
    assert.ok(split.verdict === 'disagree' && split.records.length === 2 && split.warnings.some(w => w.includes('disagree')))
    assert.equal(compareLookups('alice', [notFound, busy]).verdict, 'unknown', '"no such nick" needs every exit to say so')
    assert.equal(compareLookups('alice', [notFound, undefined]).verdict, 'unknown')
    // an exit that answers an invalid record (wrong nick, tampered) counts as a failed answer
    const bobs = signRecord(nameRecord(a, 'bob'), a.signer).bytes
    const wrong = compareLookups('alice', [found(bobs), notFound])
    assert.ok(wrong.verdict === 'unknown' && wrong.warnings.some(w => w.includes('dht-key')), JSON.stringify(wrong))
    assert.equal(compareLookups('alice', [found(recA1), Uint8Array.from([2, 0, 0, 1])]).verdict, 'found', 'an answer to another op is ignored, with a warning')
  })
})

describe('DirectoryExit without a DHT: busy limit, timeout, stats', () => {
  /** A directory whose operations wait until released or aborted. */
  function slowDirectory (): { directory: ExitDirectory, release: () => void } {
    let release: () => void = () => {}
    const gate = new Promise<void>(resolve => { release = resolve })
    const wait = async (signal?: AbortSignal): Promise<void> => {
      await new Promise<void>((resolve, reject) => {
        gate.then(resolve, reject)
        signal?.addEventListener('abort', () => { reject(signal.reason) }, { once: true })
      })
    }
    return {
      release: () => { release() },
      directory: {
        lookupName: async (nick, options) => { await wait(options?.signal); throw Object.assign(new Error(nick), { name: 'NameNotFoundError', responses: 3 }) },
        publishSignedName: async (_bytes, options) => { await wait(options?.signal); return { record: undefined as unknown as SignedRecord, stored: 2 } }
      }
    }
  }

  it('answers busy beyond the limit, counts it, and serves again when a slot frees', async () => {
    const { directory, release } = slowDirectory()
    const exit = new DirectoryExit({ directory, relayDescriptors: () => [], maxConcurrent: 2 })
    const first = [exit.handle(encodeLookup('a')), exit.handle(encodeLookup('b'))]
    assert.equal(exit.running, 2)
    assert.deepEqual(answerOf(await exit.handle(encodeLookup('c'))), { op: OP_LOOKUP_NAME, status: 'busy' })
    assert.deepEqual(answerOf(await exit.handle(encodePublish(new Uint8Array(10)))), { op: OP_PUBLISH_NAME, status: 'busy' })
    assert.equal(answerOf(await exit.handle(encodeFindRelays(3))).status, 'relays', 'FIND_RELAYS runs no DHT operation: never busy')
    release()
    for (const a of await Promise.all(first)) assert.equal(answerOf(a).status, 'not-found')
    assert.equal(exit.running, 0)
    assert.equal(answerOf(await exit.handle(encodeLookup('d'))).status, 'not-found')
    assert.deepEqual(exit.stats.lookup, { busy: 1, 'not-found': 3 })
    assert.deepEqual(exit.stats.publish, { busy: 1 })
  })

  it('ends a DHT operation at its timeout with error "timeout", and bad requests with "bad-request" / "unknown-op"', async () => {
    const { directory } = slowDirectory()
    const exit = new DirectoryExit({ directory, relayDescriptors: () => [], lookupTimeoutMs: 50, publishTimeoutMs: 50 })
    assert.deepEqual(answerOf(await exit.handle(encodeLookup('a'))), { op: OP_LOOKUP_NAME, status: 'error', reason: 'timeout' })
    assert.deepEqual(answerOf(await exit.handle(Uint8Array.from([1, 9]))), { op: OP_LOOKUP_NAME, status: 'error', reason: 'bad-request' })
    assert.deepEqual(answerOf(await exit.handle(Uint8Array.from([0x77]))), { op: 0x77, status: 'error', reason: 'unknown-op' })
    assert.deepEqual(answerOf(await exit.handle(new Uint8Array())), { op: 0, status: 'error', reason: 'bad-request' })
    assert.deepEqual(exit.stats.lookup, { 'error:timeout': 1 })
    assert.deepEqual(exit.stats.invalid, { truncated: 1, 'unknown-op': 1, empty: 1 })
    assert.equal(exit.running, 0)
  })

  it('maps the Directory\'s failures: nobody answered -> unreachable, no peer stored -> unreachable, a taken nick without a known holder -> empty holder', async () => {
    const named = (name: string, extra: object = {}): Error => Object.assign(new Error(name), { name }, extra)
    const exit = new DirectoryExit({
      relayDescriptors: () => [],
      directory: {
        lookupName: async (nick) => { throw named('NameNotFoundError', { nick, responses: 0 }) },
        publishSignedName: async (bytes) => { throw bytes[0] === 1 ? named('PublishError') : named('NickTakenError') }
      }
    })
    assert.deepEqual(answerOf(await exit.handle(encodeLookup('a'))), { op: OP_LOOKUP_NAME, status: 'error', reason: 'unreachable' })
    assert.deepEqual(answerOf(await exit.handle(encodePublish(Uint8Array.from([1])))), { op: OP_PUBLISH_NAME, status: 'error', reason: 'unreachable' })
    assert.deepEqual(answerOf(await exit.handle(encodePublish(Uint8Array.from([2])))), { op: OP_PUBLISH_NAME, status: 'taken', holder: new Uint8Array() })
    assert.deepEqual(exit.stats.publish, { 'error:unreachable': 1, taken: 1 })
  })

  it('FIND_RELAYS returns at most the count asked, as many as fit one answer, each from the source', async () => {
    const ids = await Promise.all(Array.from({ length: 12 }, async () => await ephemeralIdentity()))
    const small = ids.slice(0, 6).map(id => relayDescriptor(id))
    const large = ids.slice(6).map(id => relayDescriptor(id, 6)) // ~700 bytes each: 3 fit
    const exit = new DirectoryExit({ directory: slowDirectory().directory, relayDescriptors: () => [...small, ...large] })
    const smallOnly = new DirectoryExit({ directory: slowDirectory().directory, relayDescriptors: () => small })
    const four = answerOf(await smallOnly.handle(encodeFindRelays(4)))
    assert.ok(four.status === 'relays' && four.descriptors.length === 4, 'the count asked, when they fit')
    const all = answerOf(await exit.handle(encodeFindRelays(64)))
    assert.ok(all.status === 'relays')
    const source = new Set([...small, ...large].map(d => Buffer.from(d).toString('hex')))
    for (const d of all.descriptors) assert.ok(source.has(Buffer.from(d).toString('hex')))
    // greedy "as many as fit": every descriptor left out would overflow the answer
    const size = encodeAnswer(all).length
    const chosen = new Set(all.descriptors.map(d => Buffer.from(d).toString('hex')))
    assert.ok(chosen.size < 12, 'all 12 (~6 KB) cannot fit one answer')
    for (const d of [...small, ...large]) {
      if (!chosen.has(Buffer.from(d).toString('hex'))) assert.ok(size + 2 + d.length > ANSWER_MAX_BYTES, `a ${d.length}-byte descriptor was left out of a ${size}-byte answer`)
    }
    const broken = new DirectoryExit({ directory: slowDirectory().directory, relayDescriptors: () => { throw new Error('no relays') } })
    assert.deepEqual(answerOf(await broken.handle(encodeFindRelays(4))), { op: OP_FIND_RELAYS, status: 'error', reason: 'internal' })
  })
})

describe('DirectoryExit on a 6-node loopback DHT', { timeout: 180_000 }, () => {
  const net = new TestNetwork()
  let peers: TestPeer[]
  let exits: DirectoryExit[]

  before(async () => {
    peers = await net.start(5)
    exits = peers.slice(0, 2).map(p => new DirectoryExit({ directory: p.directory, relayDescriptors: () => [] }))
  })
  after(async () => { await net.teardown() })

  it('publishes a user\'s record through one exit and finds it through two (they agree)', async () => {
    const user = await ephemeralIdentity() // a user: no DHT node of its own
    const rec = signRecord(nameRecord(user, 'gina'), user.signer)
    const stored = answerOf(await exits[0].handle(encodePublish(rec.bytes)))
    assert.ok(stored.status === 'stored' && stored.stored >= 1, JSON.stringify(stored))
    const answers = await Promise.all(exits.map(async e => await e.handle(encodeLookup('gina'))))
    for (const a of answers) {
      const found = answerOf(a)
      assert.ok(found.status === 'found')
      assert.deepEqual(found.record, rec.bytes, 'the record as the DHT vote chose it')
    }
    const verdict = compareLookups('gina', answers)
    assert.ok(verdict.verdict === 'found' && verdict.agreed)
    assert.deepEqual(verdict.record.identityKey, user.identityKey)
    assert.equal(exits[0].stats.publish.stored, 1)
    assert.equal(exits[1].stats.lookup.found, 1)
  })

  it('answers "taken" with the holder\'s record when another key holds the nick', async () => {
    const owner = await ephemeralIdentity()
    const thief = await ephemeralIdentity()
    const first = signRecord(nameRecord(owner, 'hana'), owner.signer).bytes
    assert.equal(answerOf(await exits[0].handle(encodePublish(first))).status, 'stored')
    const taken = answerOf(await exits[1].handle(encodePublish(signRecord(nameRecord(thief, 'hana'), thief.signer).bytes)))
    assert.ok(taken.status === 'taken')
    assert.deepEqual(taken.holder, first)
    const verdict = compareLookups('hana', await Promise.all(exits.map(async e => await e.handle(encodeLookup('hana')))))
    assert.ok(verdict.verdict === 'found' && Buffer.from(verdict.record.identityKey).equals(Buffer.from(owner.identityKey)))
  })

  it('refuses invalid records with their fault and stores nothing', async () => {
    const user = await ephemeralIdentity()
    const good = signRecord(nameRecord(user, 'ivan'), user.signer).bytes
    const tampered = good.slice()
    tampered[tampered.length - 1] ^= 1
    const relay = relayDescriptor(user)
    const expired = signRecord(nameRecord(user, 'ivan', { expiry: Date.now() - 1 }), user.signer).bytes
    const cases: Array<[Uint8Array, string]> = [[tampered, 'signature'], [v1Record(user, KIND_NAME, 'ivan'), 'version'], [relay, 'kind'], [expired, 'expired']]
    for (const [bytes, fault] of cases) {
      assert.deepEqual(answerOf(await exits[0].handle(encodePublish(bytes))), { op: OP_PUBLISH_NAME, status: 'refused', fault })
    }
    assert.deepEqual(answerOf(await exits[1].handle(encodeLookup('ivan'))), { op: OP_LOOKUP_NAME, status: 'not-found' })
    assert.deepEqual(exits[0].stats.publish['refused:signature'], 1)
  })

  it('an unknown nick is not found through both exits', async () => {
    const answers = await Promise.all(exits.map(async e => await e.handle(encodeLookup('nobody-at-all'))))
    assert.deepEqual(compareLookups('nobody-at-all', answers), { verdict: 'not-found', warnings: [] })
  })

  it('answers busy beyond its limit while real lookups run', async () => {
    const exit = new DirectoryExit({ directory: peers[3].directory, relayDescriptors: () => [], maxConcurrent: 1 })
    const running = exit.handle(encodeLookup('gina'))
    assert.equal(answerOf(await exit.handle(encodeLookup('gina'))).status, 'busy')
    assert.equal(answerOf(await running).status, 'found')
    assert.deepEqual(exit.stats.lookup, { busy: 1, found: 1 })
  })
})
