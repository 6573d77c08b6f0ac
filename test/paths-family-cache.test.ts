/**
 * Family verdicts cached per descriptor (protocols/directory/family.ts `familyOfCached`, used by
 * paths.ts `pathRelays` and admission.ts): the cache changes no verdict. A relay whose declaration does
 * not verify stays out of every call, a verified family stays, and a newer descriptor of the same relay
 * (another sequence, another record) gets its own verdict, not the older one's.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ephemeralIdentity } from '../node/identity.ts'
import type { EphemeralIdentity } from '../node/identity.ts'
import { ed25519SignerFromSeed, generateEd25519Seed } from '../protocols/crypto/keys.ts'
import { familyExtension, familyOf, familyOfCached } from '../protocols/directory/family.ts'
import { KIND_RELAY, signRecord } from '../protocols/directory/record.ts'
import type { RecordExtension } from '../protocols/directory/record.ts'
import { pathRelays } from '../protocols/onion/paths.ts'
import { RelayDirectory } from '../protocols/onion/relay-directory.ts'

const now = Date.now()

function descriptor (id: EphemeralIdentity, i: number, sequence: bigint, extensions: RecordExtension[]): Uint8Array {
  return signRecord({
    kind: KIND_RELAY,
    nick: '',
    identityKey: id.identityKey,
    onionKeys: [{ epoch: 1, notBefore: now - 1000, notAfter: now + 3600_000, key: id.onionPublic }],
    addrs: [`/ip4/10.${i + 1}.0.1/tcp/4001`],
    extensions,
    sequence,
    expiry: now + 3600_000
  }, id.signer).bytes
}

describe('family verdicts cached per descriptor', () => {
  it('pathRelays keeps a verified family and leaves out a false one on every call; a newer descriptor is judged afresh', async () => {
    const family = ed25519SignerFromSeed(generateEd25519Seed())
    const [plain, member, liar, changer] = await Promise.all([ephemeralIdentity(), ephemeralIdentity(), ephemeralIdentity(), ephemeralIdentity()])
    const dir = new RelayDirectory()
    assert.ok(dir.add(descriptor(plain, 0, 1n, [])) != null)
    assert.ok(dir.add(descriptor(member, 1, 1n, [familyExtension(family, member.identityKey)])) != null)
    // a certificate over another relay's key: the descriptor is well signed, its family claim false
    assert.ok(dir.add(descriptor(liar, 2, 1n, [familyExtension(family, plain.identityKey)])) != null)
    assert.ok(dir.add(descriptor(changer, 3, 1n, [familyExtension(family, plain.identityKey)])) != null)
    const familyHex = Buffer.from(family.publicKey).toString('hex')
    for (let call = 0; call < 3; call++) {
      const relays = new Map(pathRelays(dir.list(), now).map(r => [r.peerId, r]))
      assert.deepEqual([...relays.keys()].sort(), [plain.peerId.toString(), member.peerId.toString()].sort(), `call ${call}`)
      assert.equal(relays.get(member.peerId.toString())?.family, familyHex)
      assert.equal(relays.get(plain.peerId.toString())?.family, undefined)
    }
    // the same relay publishes a newer descriptor whose family verifies: it is used from then on
    assert.ok(dir.add(descriptor(changer, 3, 2n, [familyExtension(family, changer.identityKey)])) != null)
    assert.equal(pathRelays(dir.list(), now).find(r => r.peerId === changer.peerId.toString())?.family, familyHex)
    // and the other way round: a newer descriptor with a false claim drops the relay
    assert.ok(dir.add(descriptor(member, 1, 2n, [familyExtension(family, liar.identityKey)])) != null)
    assert.equal(pathRelays(dir.list(), now).find(r => r.peerId === member.peerId.toString()), undefined)
  })

  it('familyOfCached gives familyOf\'s verdict, the same error (by name and fault) at every call', async () => {
    const family = ed25519SignerFromSeed(generateEd25519Seed())
    const relay = await ephemeralIdentity()
    const good = { identityKey: relay.identityKey, extensions: [familyExtension(family, relay.identityKey)] }
    const none = { identityKey: relay.identityKey, extensions: [] }
    const bad = { identityKey: relay.identityKey, extensions: [familyExtension(family, new Uint8Array(32).fill(1))] }
    for (let i = 0; i < 3; i++) {
      assert.equal(familyOfCached(good), familyOf(good))
      assert.equal(familyOfCached(none), undefined)
      assert.throws(() => familyOfCached(bad), (e: Error & { fault?: string }) => e.name === 'FamilyError' && e.fault === 'family-signature')
    }
  })
})
