import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import { Libp2pRecord } from '@libp2p/record'
import { MemoryDatastore } from 'datastore-core'
import { Key } from 'interface-datastore'
import { multiaddr } from '@multiformats/multiaddr'
import { ephemeralIdentity } from '../node/identity.ts'
import { ed25519SignerFromSeed } from '../protocols/crypto/keys.ts'
import type { Signer } from '../protocols/crypto/keys.ts'
import { GuardedDatastore, selectRecord } from '../protocols/directory/dht.ts'
import {
  decodeRecord, KIND_NAME, KIND_RELAY, loggableKey, MAX_NAME_LIFETIME_MS, MAX_RELAY_LIFETIME_MS, nameKey, RECORD_FAULTS, relayKey, signRecord, verifyRecord
} from '../protocols/directory/record.ts'
import type { DirectoryRecord, RecordFault } from '../protocols/directory/record.ts'
import { RelayDirectory } from '../protocols/onion/relay-directory.ts'
import { v1Record } from './helpers/records.ts'
import { VECTOR_NOW, vectorRecords } from './vectors/make-record-vector.ts'

type Id = Awaited<ReturnType<typeof ephemeralIdentity>>

const mailbox = (n: number): { relay: Uint8Array, id: Uint8Array } => ({ relay: new Uint8Array(32).fill(n), id: new Uint8Array(32).fill(0x80 + n) })

function record (id: Id, over: Partial<DirectoryRecord> = {}): DirectoryRecord {
  return {
    kind: KIND_NAME,
    nick: 'alice',
    identityKey: id.identityKey,
    onionKeys: [{ epoch: 0, notBefore: 0, notAfter: 0, key: id.onionPublic }],
    mailboxes: [mailbox(1), mailbox(2)],
    addrs: [],
    sequence: 10n,
    expiry: Date.now() + 3600_000,
    ...over
  }
}

function relayRecord (id: Id, over: Partial<DirectoryRecord> = {}): DirectoryRecord {
  return record(id, { kind: KIND_RELAY, nick: '', mailboxes: [], addrs: ['/ip4/127.0.0.1/tcp/4001', '/ip4/127.0.0.1/tcp/4002/ws'], ...over })
}

function fault (fn: () => unknown): RecordFault | undefined {
  try {
    fn()
    return undefined
  } catch (err) {
    assert.equal((err as Error).name, 'RecordError', `threw ${(err as Error).name}: ${(err as Error).message}`)
    return (err as { fault?: RecordFault }).fault
  }
}

const u16 = (n: number): number[] => [n >> 8, n & 0xff]
const u64 = (n: bigint | number): number[] => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(n)); return [...b] }

/**
 * An encoder written from the README's table alone, independent of record.ts: version, kind, the
 * fields as given (any order, any types), and a v2 signature over the DHT key and those bytes.
 */
function rawRecord (kind: number, fields: Array<[number, Uint8Array | number[]]>, signer: Signer, dhtKey: Uint8Array, version = 2): Uint8Array {
  const unsigned = Buffer.from([version, kind, ...fields.flatMap(([t, v]) => [t, ...u16(v.length), ...v])])
  const context = Buffer.from(version === 2 ? 'p2pchat-record-v2' : 'p2pchat-record-v1')
  const signature = signer.sign(Buffer.concat([context, Buffer.from(u16(dhtKey.length)), dhtKey, unsigned]))
  return new Uint8Array(Buffer.concat([unsigned, signature]))
}

/** The fields of a valid name record for `id`, in wire order. */
function nameFields (id: Id, nick = 'alice'): Array<[number, Uint8Array | number[]]> {
  return [
    [0x01, Buffer.from(nick)],
    [0x02, id.identityKey],
    [0x03, [...u64(0).slice(4), ...u64(0), ...u64(0), ...id.onionPublic]],
    [0x04, [...mailbox(1).relay, ...mailbox(1).id]],
    [0x06, u64(10)],
    [0x07, u64(Date.now() + 3600_000)]
  ]
}

describe('directory record v2: known-answer vector (test/vectors/record-v2.json)', () => {
  const vector = JSON.parse(readFileSync(new URL('./vectors/record-v2.json', import.meta.url), 'utf8'))
  const { name, relay, nameSeed, relaySeed } = vectorRecords()

  for (const [label, rec, seed] of [['name', name, nameSeed], ['relay', relay, relaySeed]] as const) {
    it(`signs the ${label} vector to the committed bytes and decodes them back`, () => {
      const v = vector[label]
      assert.equal(Buffer.from(seed).toString('hex'), v.seed)
      const signed = signRecord(rec, ed25519SignerFromSeed(seed))
      assert.equal(Buffer.from(signed.bytes).toString('hex'), v.bytes)
      assert.equal(Buffer.from(signed.signature).toString('hex'), v.signature)
      const bytes = new Uint8Array(Buffer.from(v.bytes, 'hex'))
      const back = verifyRecord(new TextEncoder().encode(v.dhtKey), bytes, VECTOR_NOW)
      assert.equal(back.peerId, v.peerId)
      assert.equal(back.nick, v.fields.nick)
      assert.equal(Buffer.from(back.identityKey).toString('hex'), v.fields.identityKey)
      assert.deepEqual(back.onionKeys.map(k => ({ ...k, key: Buffer.from(k.key).toString('hex') })), v.fields.onionKeys)
      assert.deepEqual(back.mailboxes.map(m => ({ relay: Buffer.from(m.relay).toString('hex'), id: Buffer.from(m.id).toString('hex') })), v.fields.mailboxes)
      assert.deepEqual(back.addrs, v.fields.addrs)
      assert.deepEqual(back.extensions.map(e => ({ type: e.type, value: Buffer.from(e.value).toString('hex') })), v.fields.extensions)
      assert.equal(back.sequence.toString(), v.fields.sequence)
      assert.equal(back.expiry, v.fields.expiry)
      // the signature input the README describes, checked against the identity key directly
      const unsigned = Buffer.from(v.bytes, 'hex').subarray(0, -64)
      const dhtKey = Buffer.from(v.dhtKey)
      assert.equal(Buffer.concat([Buffer.from('p2pchat-record-v2'), Buffer.from(u16(dhtKey.length)), dhtKey, unsigned]).toString('hex'), v.signatureInput)
      // and the README's table alone, through the independent encoder, gives the same bytes
      const fields: Array<[number, Uint8Array | number[]]> = []
      if (rec.kind === KIND_NAME) fields.push([1, Buffer.from(rec.nick)])
      fields.push([2, rec.identityKey])
      for (const k of rec.onionKeys) fields.push([3, [...u64(k.epoch).slice(4), ...u64(k.notBefore), ...u64(k.notAfter), ...k.key]])
      for (const m of rec.mailboxes ?? []) fields.push([4, [...m.relay, ...m.id]])
      for (const a of rec.addrs) fields.push([5, multiaddr(a).bytes])
      fields.push([6, u64(rec.sequence)], [7, u64(rec.expiry)])
      for (const e of rec.extensions ?? []) fields.push([e.type, e.value])
      assert.equal(Buffer.from(rawRecord(rec.kind, fields, ed25519SignerFromSeed(seed), dhtKey)).toString('hex'), v.bytes)
    })
  }
})

describe('directory record v2 codec and verification', () => {
  it('a key is logged with a relay\'s peer id but without a nick', async () => {
    const relay = (await ephemeralIdentity()).peerId.toString()
    assert.equal(loggableKey(relayKey(relay)), `/p2pchat/relay/${relay}`)
    assert.equal(loggableKey(nameKey('alice')), '/p2pchat/name/<nick>')
    assert.equal(loggableKey(nameKey('bob')), loggableKey(nameKey('alice')), 'nothing of the nick, not even a hash')
  })

  it('round-trips every field of a name (no address) and of a relay, and derives the peer id from the identity key', async () => {
    const id = await ephemeralIdentity()
    const signed = signRecord(record(id), id.signer)
    const back = verifyRecord(nameKey('alice'), signed.bytes)
    assert.equal(back.nick, 'alice')
    assert.equal(back.peerId, id.peerId.toString())
    assert.deepEqual(back.addrs, [])
    assert.deepEqual(back.mailboxes, [mailbox(1), mailbox(2)])
    assert.deepEqual(back.onionKeys[0].key, id.onionPublic)
    assert.deepEqual(back.extensions, [])
    assert.equal(back.sequence, 10n)
    assert.equal(signed.bytes.length, 2 + (3 + 5) + (3 + 32) + (3 + 52) + 2 * (3 + 64) + (3 + 8) + (3 + 8) + 64)
    const relay = signRecord(relayRecord(id), id.signer)
    const r = verifyRecord(relayKey(id.peerId.toString()), relay.bytes)
    assert.equal(r.kind, KIND_RELAY)
    assert.equal(r.nick, '')
    assert.deepEqual(r.addrs, ['/ip4/127.0.0.1/tcp/4001', '/ip4/127.0.0.1/tcp/4002/ws'])
    assert.equal(relay.bytes.length, 2 + (3 + 32) + (3 + 52) + (3 + 8) + (3 + 10) + (3 + 8) + (3 + 8) + 64)
  })

  it('decodes a Buffer into plain Uint8Array fields that are copies, not views on the input', async () => {
    const id = await ephemeralIdentity()
    const signed = signRecord(record(id, { extensions: [{ type: 0x90, value: new Uint8Array([1, 2, 3]) }] }), id.signer)
    const wire = Buffer.from(signed.bytes) // what a datastore or socket read hands over
    const back = verifyRecord(nameKey('alice'), wire)
    for (const field of [back.identityKey, back.onionKeys[0].key, back.mailboxes[0].relay, back.mailboxes[0].id, back.extensions[0].value, back.signature, back.bytes]) {
      assert.equal(Object.getPrototypeOf(field), Uint8Array.prototype)
    }
    wire.fill(0)
    assert.deepEqual(back.identityKey, id.identityKey, 'the record must not change with the buffer it came from')
    assert.deepEqual(back.onionKeys[0].key, id.onionPublic)
    assert.deepEqual(back.mailboxes[0], mailbox(1))
    assert.deepEqual(back.extensions[0].value, new Uint8Array([1, 2, 3]))
    assert.deepEqual(back.bytes, signed.bytes)
  })

  it('names each fault of a signed record: signature, key binding, version, framing, size, clock', async () => {
    const id = await ephemeralIdentity()
    const other = await ephemeralIdentity()
    const good = signRecord(record(id), id.signer).bytes
    const flip = (i: number): Uint8Array => { const b = good.slice(); b[i] ^= 1; return b }
    assert.equal(fault(() => verifyRecord(nameKey('alice'), flip(good.length - 1))), 'signature')
    assert.equal(fault(() => verifyRecord(nameKey('alice'), flip(60))), 'signature', 'an onion key byte')
    assert.equal(fault(() => verifyRecord(nameKey('bob'), good)), 'dht-key')
    assert.equal(fault(() => verifyRecord(relayKey(id.peerId.toString()), good)), 'dht-key')
    assert.equal(fault(() => verifyRecord(nameKey('alice'), flip(0))), 'version')
    assert.equal(fault(() => verifyRecord(nameKey('alice'), new Uint8Array([2, 3, ...good.subarray(2)]))), 'kind')
    assert.equal(fault(() => verifyRecord(nameKey('alice'), good.subarray(0, good.length - 1))), 'truncated')
    assert.equal(fault(() => verifyRecord(nameKey('alice'), good.subarray(0, 40))), 'truncated')
    assert.equal(fault(() => verifyRecord(nameKey('alice'), new Uint8Array([...good, 0]))), 'trailing-bytes')
    assert.equal(fault(() => verifyRecord(nameKey('alice'), new Uint8Array(3000))), 'oversize')
    assert.equal(fault(() => verifyRecord(nameKey('alice'), new Uint8Array())), 'truncated')
    const expired = signRecord(record(id, { expiry: Date.now() - 1 }), id.signer).bytes
    assert.equal(fault(() => verifyRecord(nameKey('alice'), expired)), 'expired')
    assert.equal(fault(() => signRecord(record(id, { nick: 'Alice' }), id.signer)), 'nick')
    assert.equal(fault(() => signRecord(record(id), other.signer)), 'key')
    const relay = signRecord(relayRecord(id), id.signer).bytes
    assert.equal(verifyRecord(relayKey(id.peerId.toString()), relay).peerId, id.peerId.toString())
    assert.equal(fault(() => verifyRecord(relayKey(other.peerId.toString()), relay)), 'dht-key')
    assert.equal(decodeRecord(relay).kind, KIND_RELAY)
  })

  it('limits lifetimes by kind: names 8 days, relay descriptors 48 hours (plus clock skew)', async () => {
    const id = await ephemeralIdentity()
    const now = Date.now()
    const name = (ms: number): Uint8Array => signRecord(record(id, { expiry: now + ms }), id.signer).bytes
    const relay = (ms: number): Uint8Array => signRecord(relayRecord(id, { expiry: now + ms }), id.signer).bytes
    assert.equal(fault(() => verifyRecord(nameKey('alice'), name(MAX_NAME_LIFETIME_MS), now)), undefined)
    assert.equal(fault(() => verifyRecord(nameKey('alice'), name(MAX_NAME_LIFETIME_MS + 3600_000), now)), 'lifetime')
    assert.equal(fault(() => verifyRecord(relayKey(id.peerId.toString()), relay(MAX_RELAY_LIFETIME_MS), now)), undefined)
    assert.equal(fault(() => verifyRecord(relayKey(id.peerId.toString()), relay(MAX_RELAY_LIFETIME_MS + 3600_000), now)), 'lifetime')
    assert.equal(fault(() => verifyRecord(relayKey(id.peerId.toString()), relay(3 * 24 * 3600_000), now)), 'lifetime', 'a name\'s lifetime is not a relay\'s')
  })

  it('refuses a name with an address, and every other field rule, with its fault (signing and decoding)', async () => {
    const id = await ephemeralIdentity()
    const key = nameKey('alice')
    const rkey = relayKey(id.peerId.toString())
    const s = id.signer
    const base = nameFields(id)
    const addr = [0x05, [0x04, 127, 0, 0, 1, 0x06, 0x0f, 0xa1]] as [number, number[]] // /ip4/127.0.0.1/tcp/4001
    assert.equal(fault(() => verifyRecord(key, rawRecord(1, base, s, key))), undefined, 'the raw encoder makes valid records')
    // a name carries no address
    assert.equal(fault(() => signRecord(record(id, { addrs: ['/ip4/127.0.0.1/tcp/4001'] }), s)), 'addrs')
    assert.equal(fault(() => verifyRecord(key, rawRecord(1, [...base.slice(0, 4), addr, ...base.slice(4)], s, key))), 'addrs')
    // order: types increase; a single-valued type does not repeat
    assert.equal(fault(() => verifyRecord(key, rawRecord(1, [base[1], base[0], ...base.slice(2)], s, key))), 'field-order')
    assert.equal(fault(() => verifyRecord(key, rawRecord(1, [base[0], ...base], s, key))), 'field-order')
    assert.equal(fault(() => verifyRecord(key, rawRecord(1, [...base, base[5]], s, key))), 'field-order')
    assert.equal(fault(() => verifyRecord(key, rawRecord(1, [...base, [0x80, [1]], [0x7f, [1]]], s, key))), 'field-order')
    // unknown critical types (0x00, 0x08..0x7f) refuse the record; 0x40..0x7f are reserved
    for (const t of [0x00, 0x08, 0x40, 0x7f]) {
      const fields = t === 0 ? [[t, [1]] as [number, number[]], ...base] : [...base, [t, [1]] as [number, number[]]]
      assert.equal(fault(() => verifyRecord(key, rawRecord(1, fields, s, key))), 'unknown-field', `type 0x${t.toString(16)}`)
    }
    assert.equal(fault(() => signRecord(record(id, { extensions: [{ type: 0x7f, value: new Uint8Array(1) }] }), s)), 'unknown-field')
    // lengths and counts
    assert.equal(fault(() => verifyRecord(key, rawRecord(1, [...base.slice(0, 4), [0x06, u64(10).slice(1)], base[5]], s, key))), 'field-length')
    assert.equal(fault(() => verifyRecord(key, rawRecord(1, [...base.slice(0, 5), [0x07, [...u64(Date.now() + 3600_000), 0]]], s, key))), 'field-length')
    assert.equal(fault(() => verifyRecord(key, rawRecord(1, base.slice(0, 5), s, key))), 'missing-field', 'no expiry')
    assert.equal(fault(() => verifyRecord(key, rawRecord(1, [base[0], ...base.slice(2)], s, key))), 'missing-field', 'no identity key')
    assert.equal(fault(() => verifyRecord(key, rawRecord(1, base.slice(1), s, key))), 'nick', 'a name without a nick')
    assert.equal(fault(() => verifyRecord(key, rawRecord(1, [[0x01, Buffer.from('Alice')], ...base.slice(1)], s, key))), 'nick')
    assert.equal(fault(() => verifyRecord(key, rawRecord(1, [base[0], [0x02, id.identityKey.subarray(1)], ...base.slice(2)], s, key))), 'key')
    assert.equal(fault(() => verifyRecord(key, rawRecord(1, [...base.slice(0, 2), ...base.slice(3)], s, key))), 'onion-keys', 'no onion key')
    assert.equal(fault(() => verifyRecord(key, rawRecord(1, [...base.slice(0, 3), base[2], base[2], base[2], ...base.slice(3)], s, key))), 'onion-keys', '4 onion keys')
    assert.equal(fault(() => verifyRecord(key, rawRecord(1, [...base.slice(0, 2), [0x03, (base[2][1] as number[]).slice(1)], ...base.slice(3)], s, key))), 'onion-keys')
    assert.equal(fault(() => signRecord(record(id, { onionKeys: [] }), s)), 'onion-keys')
    assert.equal(fault(() => verifyRecord(key, rawRecord(1, [...base.slice(0, 3), base[3], base[3], base[3], base[3], base[3], ...base.slice(4)], s, key))), 'mailboxes', '5 mailboxes')
    assert.equal(fault(() => verifyRecord(key, rawRecord(1, [...base.slice(0, 3), [0x04, new Uint8Array(63)], ...base.slice(4)], s, key))), 'mailboxes')
    assert.equal(fault(() => signRecord(record(id, { mailboxes: [1, 2, 3, 4, 5].map(mailbox) }), s)), 'mailboxes')
    // relays: no nick, no mailbox, at most 16 addresses
    const relayBase = base.slice(1).filter(([t]) => t !== 0x04)
    assert.equal(fault(() => verifyRecord(rkey, rawRecord(2, relayBase, s, rkey))), undefined)
    assert.equal(fault(() => verifyRecord(rkey, rawRecord(2, base, s, rkey))), 'nick')
    assert.equal(fault(() => verifyRecord(rkey, rawRecord(2, [...relayBase.slice(0, 2), base[3], ...relayBase.slice(2)], s, rkey))), 'mailboxes')
    assert.equal(fault(() => signRecord(relayRecord(id, { mailboxes: [mailbox(1)] }), s)), 'mailboxes')
    assert.equal(fault(() => verifyRecord(rkey, rawRecord(2, [...relayBase.slice(0, 2), ...Array(17).fill(addr), ...relayBase.slice(2)], s, rkey))), 'addrs')
    assert.equal(fault(() => verifyRecord(rkey, rawRecord(2, [...relayBase.slice(0, 2), [0x05, [0xff, 0xff]], ...relayBase.slice(2)], s, rkey))), 'addrs')
    assert.equal(fault(() => signRecord(relayRecord(id, { addrs: Array(17).fill('/ip4/127.0.0.1/tcp/1') }), s)), 'addrs')
  })

  it('keeps optional fields (0x80..0xff): signed, decoded into extensions in order, repeatable, otherwise ignored', async () => {
    const id = await ephemeralIdentity()
    const key = nameKey('alice')
    const ext = [[0x80, [1, 2]], [0x90, [3]], [0x90, []], [0xff, new Uint8Array(300).fill(7)]] as Array<[number, number[] | Uint8Array]>
    const bytes = rawRecord(1, [...nameFields(id), ...ext], id.signer, key)
    const rec = verifyRecord(key, bytes)
    assert.deepEqual(rec.extensions, ext.map(([type, v]) => ({ type, value: Uint8Array.from(v) })))
    assert.equal(rec.nick, 'alice')
    // covered by the signature
    const changed = bytes.slice()
    changed[bytes.length - 64 - 1] ^= 1
    assert.equal(fault(() => verifyRecord(key, changed)), 'signature')
    // an optional field may sit only after the core fields (types increase)
    assert.equal(fault(() => verifyRecord(key, rawRecord(1, [[0x80, [1]], ...nameFields(id)], id.signer, key))), 'field-order')
    // the encoder writes extensions sorted by type, equal types in the order given
    const signed = signRecord(record(id, { extensions: [{ type: 0x91, value: new Uint8Array([9]) }, { type: 0x80, value: new Uint8Array([1]) }, { type: 0x80, value: new Uint8Array([2]) }] }), id.signer)
    assert.deepEqual(signed.extensions.map(e => [e.type, e.value[0]]), [[0x80, 1], [0x80, 2], [0x91, 9]])
  })

  it('refuses a version 1 record as "version", and counts it where records are validated', async () => {
    const id = await ephemeralIdentity()
    const v1Name = v1Record(id, KIND_NAME, 'alice')
    const v1Relay = v1Record(id, KIND_RELAY, '')
    assert.equal(fault(() => verifyRecord(nameKey('alice'), v1Name)), 'version')
    assert.equal(fault(() => decodeRecord(v1Relay)), 'version')
    // a v1 layout relabelled as v2 does not parse as v2 either
    assert.notEqual(fault(() => verifyRecord(nameKey('alice'), new Uint8Array([2, ...v1Name.subarray(1)]))), undefined)
    const guard = new GuardedDatastore(new MemoryDatastore())
    await guard.put(new Key('/dht/record/v1'), new Libp2pRecord(nameKey('alice'), v1Name, new Date()).serialize())
    assert.equal(guard.refused.invalid, 1)
    assert.deepEqual(guard.refusedFaults, { version: 1 })
    const relays = new RelayDirectory()
    assert.equal(relays.add(v1Relay), undefined)
    assert.equal(relays.rejected.version, 1)
    assert.ok(RECORD_FAULTS.includes('version'))
  })

  it('the selector prefers the key most responders hold, then the highest sequence', async () => {
    const a = await ephemeralIdentity()
    const b = await ephemeralIdentity()
    const a1 = signRecord(record(a, { sequence: 1n }), a.signer).bytes
    const a2 = signRecord(record(a, { sequence: 2n }), a.signer).bytes
    const b9 = signRecord(record(b, { sequence: 9n }), b.signer).bytes
    assert.equal(selectRecord(nameKey('alice'), [b9, a1, a2]), 2)
    assert.equal(selectRecord(nameKey('alice'), [new Uint8Array(5), b9]), 1)
    assert.equal(selectRecord(nameKey('alice'), [v1Record(a, KIND_NAME, 'alice'), b9]), 1, 'a v1 record never wins')
  })
})

describe('GuardedDatastore: first come, first served on every storing node', () => {
  const dsKey = new Key('/dht/record/abc')
  const wrap = (value: Uint8Array): Uint8Array => new Libp2pRecord(nameKey('alice'), value, new Date()).serialize()
  const held = async (ds: MemoryDatastore): Promise<Uint8Array> => Libp2pRecord.deserialize(await ds.get(dsKey)).value

  it('keeps the first live claim, accepts only newer sequences from its key, and drops invalid records', async () => {
    const a = await ephemeralIdentity()
    const b = await ephemeralIdentity()
    const inner = new MemoryDatastore()
    const guard = new GuardedDatastore(inner)
    const a5 = signRecord(record(a, { sequence: 5n }), a.signer).bytes
    await guard.put(dsKey, wrap(a5))
    await guard.put(dsKey, wrap(signRecord(record(b, { sequence: 99n }), b.signer).bytes))
    assert.deepEqual(await held(inner), a5, 'another key does not replace a live claim')
    await guard.put(dsKey, wrap(signRecord(record(a, { sequence: 4n }), a.signer).bytes))
    assert.deepEqual(await held(inner), a5, 'an older sequence does not replace')
    const a6 = signRecord(record(a, { sequence: 6n }), a.signer).bytes
    await guard.put(dsKey, wrap(a6))
    assert.deepEqual(await held(inner), a6, 'the owner\'s update replaces')
    const bad = a6.slice()
    bad[bad.length - 1] ^= 1
    await guard.put(dsKey, wrap(bad))
    assert.deepEqual(await held(inner), a6)
    assert.deepEqual(guard.refused, { taken: 1, stale: 1, invalid: 1 })
    assert.deepEqual(guard.refusedFaults, { signature: 1 })
  })

  it('lets a new key claim a nick whose record expired', async () => {
    const a = await ephemeralIdentity()
    const b = await ephemeralIdentity()
    const inner = new MemoryDatastore()
    const guard = new GuardedDatastore(inner)
    // an expired record can only be in the store if it was live when written
    await inner.put(dsKey, wrap(signRecord(record(a, { expiry: Date.now() - 1000 }), a.signer).bytes))
    const b1 = signRecord(record(b), b.signer).bytes
    await guard.put(dsKey, wrap(b1))
    assert.deepEqual(await held(inner), b1)
  })

  it('serialises concurrent writes to one key', async () => {
    const ids = await Promise.all(Array.from({ length: 5 }, async () => await ephemeralIdentity()))
    const inner = new MemoryDatastore()
    const guard = new GuardedDatastore(inner)
    const claims = ids.map(id => signRecord(record(id), id.signer).bytes)
    await Promise.all(claims.map(async c => await guard.put(dsKey, wrap(c))))
    assert.deepEqual(await held(inner), claims[0], 'exactly the first claim is held')
    assert.equal(guard.refused.taken, 4)
  })
})
