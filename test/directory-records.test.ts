import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Libp2pRecord } from '@libp2p/record'
import { MemoryDatastore } from 'datastore-core'
import { Key } from 'interface-datastore'
import { ephemeralIdentity } from '../node/identity.ts'
import { GuardedDatastore, selectRecord } from '../protocols/directory/dht.ts'
import {
  decodeRecord, KIND_NAME, KIND_RELAY, MAX_RECORD_LIFETIME_MS, nameKey, relayKey, signRecord, verifyRecord
} from '../protocols/directory/record.ts'
import type { DirectoryRecord, RecordFault } from '../protocols/directory/record.ts'

type Id = Awaited<ReturnType<typeof ephemeralIdentity>>

function record (id: Id, over: Partial<DirectoryRecord> = {}): DirectoryRecord {
  return {
    kind: KIND_NAME,
    nick: 'alice',
    identityKey: id.identityKey,
    onionKeys: [{ epoch: 0, notBefore: 0, notAfter: 0, key: id.onionPublic }],
    addrs: ['/ip4/127.0.0.1/tcp/4001', '/ip4/127.0.0.1/tcp/4002/ws'],
    sequence: 10n,
    expiry: Date.now() + 3600_000,
    ...over
  }
}

function fault (fn: () => unknown): RecordFault | undefined {
  try {
    fn()
    return undefined
  } catch (err) {
    return (err as { fault?: RecordFault }).fault
  }
}

describe('directory record codec and verification', () => {
  it('round-trips every field and derives the peer id from the identity key', async () => {
    const id = await ephemeralIdentity()
    const signed = signRecord(record(id), id.signer)
    const back = verifyRecord(nameKey('alice'), signed.bytes)
    assert.equal(back.nick, 'alice')
    assert.equal(back.peerId, id.peerId.toString())
    assert.deepEqual(back.addrs, ['/ip4/127.0.0.1/tcp/4001', '/ip4/127.0.0.1/tcp/4002/ws'])
    assert.deepEqual(back.onionKeys[0].key, id.onionPublic)
    assert.equal(back.sequence, 10n)
    assert.equal(signed.bytes.length, 3 + 5 + 32 + 1 + 52 + 1 + (2 + 8) + (2 + 10) + 16 + 64)
  })

  it('decodes a Buffer into plain Uint8Array fields that are copies, not views on the input', async () => {
    const id = await ephemeralIdentity()
    const signed = signRecord(record(id), id.signer)
    const wire = Buffer.from(signed.bytes) // what a datastore or socket read hands over
    const back = verifyRecord(nameKey('alice'), wire)
    for (const field of [back.identityKey, back.onionKeys[0].key, back.signature, back.bytes]) {
      assert.equal(Object.getPrototypeOf(field), Uint8Array.prototype)
    }
    assert.deepEqual(back.onionKeys[0].key, id.onionPublic)
    wire.fill(0)
    assert.deepEqual(back.identityKey, id.identityKey, 'the record must not change with the buffer it came from')
    assert.deepEqual(back.onionKeys[0].key, id.onionPublic)
    assert.deepEqual(back.bytes, signed.bytes)
  })

  it('names each fault', async () => {
    const id = await ephemeralIdentity()
    const other = await ephemeralIdentity()
    const good = signRecord(record(id), id.signer).bytes
    const flip = (i: number): Uint8Array => { const b = good.slice(); b[i] ^= 1; return b }
    assert.equal(fault(() => verifyRecord(nameKey('alice'), flip(good.length - 1))), 'signature')
    assert.equal(fault(() => verifyRecord(nameKey('alice'), flip(50))), 'signature')
    assert.equal(fault(() => verifyRecord(nameKey('bob'), good)), 'dht-key')
    assert.equal(fault(() => verifyRecord(relayKey(id.peerId.toString()), good)), 'dht-key')
    assert.equal(fault(() => verifyRecord(nameKey('alice'), flip(0))), 'version')
    assert.equal(fault(() => verifyRecord(nameKey('alice'), good.subarray(0, good.length - 1))), 'truncated')
    assert.equal(fault(() => verifyRecord(nameKey('alice'), new Uint8Array([...good, 0]))), 'trailing-bytes')
    assert.equal(fault(() => verifyRecord(nameKey('alice'), new Uint8Array(3000))), 'oversize')
    const expired = signRecord(record(id, { expiry: Date.now() - 1 }), id.signer).bytes
    assert.equal(fault(() => verifyRecord(nameKey('alice'), expired)), 'expired')
    const forever = signRecord(record(id, { expiry: Date.now() + MAX_RECORD_LIFETIME_MS + 3600_000 }), id.signer).bytes
    assert.equal(fault(() => verifyRecord(nameKey('alice'), forever)), 'lifetime')
    assert.equal(fault(() => signRecord(record(id, { nick: 'Alice' }), id.signer)), 'nick')
    assert.equal(fault(() => signRecord(record(id), other.signer)), 'key')
    assert.equal(fault(() => signRecord(record(id, { addrs: Array(17).fill('/ip4/127.0.0.1/tcp/1') }), id.signer)), 'addrs')
    const relay = signRecord(record(id, { kind: KIND_RELAY, nick: '' }), id.signer).bytes
    assert.equal(verifyRecord(relayKey(id.peerId.toString()), relay).peerId, id.peerId.toString())
    assert.equal(fault(() => verifyRecord(relayKey(other.peerId.toString()), relay)), 'dht-key')
    assert.equal(decodeRecord(relay).kind, KIND_RELAY)
  })

  it('the selector prefers the key most responders hold, then the highest sequence', async () => {
    const a = await ephemeralIdentity()
    const b = await ephemeralIdentity()
    const a1 = signRecord(record(a, { sequence: 1n }), a.signer).bytes
    const a2 = signRecord(record(a, { sequence: 2n }), a.signer).bytes
    const b9 = signRecord(record(b, { sequence: 9n }), b.signer).bytes
    assert.equal(selectRecord(nameKey('alice'), [b9, a1, a2]), 2)
    assert.equal(selectRecord(nameKey('alice'), [new Uint8Array(5), b9]), 1)
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
