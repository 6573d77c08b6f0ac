/**
 * Relay admission (issue 12, item 4, the parts done): a stale descriptor gossiped again (an older
 * sequence than the one held) is refused, ignored on gossip, and does not make its relay look alive;
 * a forged one is rejected; a relay list spreads
 * its 64 places over /16s, at most MAX_PER_SUBNET of one.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ed25519SignerFromSeed, generateEd25519Seed } from '../protocols/crypto/keys.ts'
import { decodeRecord, KIND_RELAY, signRecord } from '../protocols/directory/record.ts'
import { MAX_PER_SUBNET, MAX_RELAY_LIST, RelayListService } from '../protocols/directory/relay-list.ts'
import { subnetsOfAddrs } from '../protocols/directory/subnet.ts'
import { RelayDirectory } from '../protocols/onion/relay-directory.ts'

function descriptor (signer = ed25519SignerFromSeed(generateEd25519Seed()), addr = '/ip4/10.1.0.1/tcp/1', sequence = 1n, now = Date.now()): Uint8Array {
  return signRecord({
    kind: KIND_RELAY,
    nick: '',
    identityKey: signer.publicKey,
    onionKeys: [{ epoch: 1, notBefore: now - 1000, notAfter: now + 3600_000, key: new Uint8Array(32).fill(9) }],
    addrs: [addr],
    sequence,
    expiry: now + 3600_000
  }, signer).bytes
}

const noNode = {
  handle: async () => { throw new Error('not used') },
  unhandle: async () => { throw new Error('not used') },
  dialProtocol: async () => { throw new Error('not used') }
}

describe('relay admission', () => {
  it('refuses an older descriptor than the one held, without refreshing its relay', () => {
    let now = Date.now()
    const dir = new RelayDirectory()
    const relay = ed25519SignerFromSeed(generateEd25519Seed())
    const old = descriptor(relay, '/ip4/10.1.0.1/tcp/1', 5n)
    const fresh = descriptor(relay, '/ip4/10.2.0.1/tcp/1', 6n)
    assert.ok(dir.add(old, now) != null)
    assert.ok(dir.add(fresh, now) != null)
    now += 60_000
    assert.equal(dir.add(old, now), undefined, 'the stale copy is refused (the gossip validator rejects it)')
    assert.equal(dir.rejected.stale, 1)
    assert.equal(dir.list()[0].lastSeen, now - 60_000, 'and it does not make the relay look alive')
    assert.deepEqual(dir.list()[0].record.addrs, ['/ip4/10.2.0.1/tcp/1'])
    assert.ok(dir.add(descriptor(relay, '/ip4/10.3.0.1/tcp/1', 7n), now) != null, 'a newer one replaces it')
    // on gossip: a stale copy is ignored (outdated, not forged: whoever relayed it is not penalised)
    assert.equal(dir.gossipVerdict(old), 'ignore')
    assert.equal(dir.gossipVerdict(descriptor(relay, '/ip4/10.3.0.1/tcp/1', 8n)), 'accept')
    const forged = descriptor(relay, '/ip4/10.3.0.1/tcp/1', 9n).slice()
    forged[forged.length - 1] ^= 1
    assert.equal(dir.gossipVerdict(forged), 'reject')
  })

  it('a relay list takes at most MAX_PER_SUBNET descriptors of one /16, and fills up from the others', () => {
    const sybils = Array.from({ length: 200 }, (_, i) => descriptor(undefined, `/ip4/10.200.${i >> 8}.${(i & 0xff) + 1}/tcp/1`))
    const honest = Array.from({ length: 30 }, (_, i) => descriptor(undefined, `/ip4/10.${i + 1}.0.1/tcp/1`))
    const pairs = Array.from({ length: 10 }, (_, i) => descriptor(undefined, `/ip4/10.${100 + (i >> 1)}.0.${i + 1}/tcp/1`))
    const service = new RelayListService(noNode, { descriptors: () => [...sybils, ...honest, ...pairs] })
    for (let round = 0; round < 20; round++) {
      const list = service.choose()
      assert.ok(list.length <= MAX_RELAY_LIST)
      const bySubnet = new Map<string, number>()
      for (const d of list) { const s = subnetsOfAddrs(decodeRecord(d).addrs)[0]; bySubnet.set(s, (bySubnet.get(s) ?? 0) + 1) }
      assert.equal(bySubnet.get('ip4:10.200'), MAX_PER_SUBNET)
      assert.equal(list.length, MAX_PER_SUBNET + 30 + 10, 'every honest relay has a place')
    }
    // a small network in one /16 still gets a list
    const small = new RelayListService(noNode, { descriptors: () => sybils.slice(0, 3) })
    assert.equal(small.choose().length, 3)
  })
})
