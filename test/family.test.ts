/**
 * Relay families (protocols/directory/family.ts, FAMILY.md): the known-answer vector
 * (test/vectors/family-v1.json, never regenerated here), refusals, and the path code's use: a relay
 * whose declaration does not verify is left out, relays of one family are never on one path.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import { ed25519SignerFromSeed, generateEd25519Seed } from '../protocols/crypto/keys.ts'
import { FIELD_FAMILY, familyExtension, familyOf } from '../protocols/directory/family.ts'
import { KIND_RELAY, relayKey, signRecord, verifyRecord } from '../protocols/directory/record.ts'
import type { RecordExtension } from '../protocols/directory/record.ts'
import { chooseMixes, pathRelays } from '../protocols/onion/paths.ts'
import { RelayDirectory } from '../protocols/onion/relay-directory.ts'
import { familyVectorInputs, FAMILY_VECTOR_NOW } from './vectors/make-family-vector.ts'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'))

function descriptor (extensions: (relayKey: Uint8Array) => RecordExtension[], subnet: number, now = Date.now()): Uint8Array {
  const relay = ed25519SignerFromSeed(generateEd25519Seed())
  return signRecord({
    kind: KIND_RELAY,
    nick: '',
    identityKey: relay.publicKey,
    onionKeys: [{ epoch: 1, notBefore: now - 1000, notAfter: now + 3600_000, key: new Uint8Array(32).fill(9) }],
    addrs: [`/ip4/10.${subnet}.0.1/tcp/1`],
    extensions: extensions(relay.publicKey),
    sequence: 1n,
    expiry: now + 3600_000
  }, relay).bytes
}

describe('relay families', () => {
  it('matches the known-answer vector byte for byte', () => {
    const v = JSON.parse(readFileSync(new URL('./vectors/family-v1.json', import.meta.url), 'utf8'))
    const { familySeed, relaySeed, descriptor } = familyVectorInputs()
    assert.equal(hex(familySeed), v.familySeed)
    assert.equal(hex(ed25519SignerFromSeed(familySeed).publicKey), v.familyPublicKey)
    assert.equal(hex(descriptor.extensions?.[0].value as Uint8Array), v.field)
    const signed = signRecord(descriptor, ed25519SignerFromSeed(relaySeed))
    assert.equal(hex(signed.bytes), v.descriptor)
    const rec = verifyRecord(relayKey(signed.peerId), unhex(v.descriptor), FAMILY_VECTOR_NOW)
    assert.equal(familyOf(rec), v.familyPublicKey)
  })

  it('refuses a certificate for another relay, another version, a bad length, two declarations', () => {
    const family = ed25519SignerFromSeed(generateEd25519Seed())
    const relay = ed25519SignerFromSeed(generateEd25519Seed())
    const other = ed25519SignerFromSeed(generateEd25519Seed())
    const good = familyExtension(family, relay.publicKey)
    assert.equal(familyOf({ identityKey: relay.publicKey, extensions: [good] }), hex(family.publicKey))
    assert.equal(familyOf({ identityKey: relay.publicKey, extensions: [{ type: 0xa0, value: new Uint8Array(3) }] }), undefined)
    const cases: Array<[RecordExtension[], string]> = [
      [[familyExtension(family, other.publicKey)], 'family-signature'],
      [[{ type: FIELD_FAMILY, value: Uint8Array.from([2, ...good.value.subarray(1)]) }], 'family-version'],
      [[{ type: FIELD_FAMILY, value: good.value.subarray(0, 96) }], 'family-length'],
      [[good, good], 'family-twice']
    ]
    for (const [extensions, fault] of cases) {
      assert.throws(() => familyOf({ identityKey: relay.publicKey, extensions }), (e: Error & { fault?: string }) => e.name === 'FamilyError' && e.fault === fault)
    }
  })

  it('paths leave out a relay whose family does not verify, and never put two relays of one family on a path', () => {
    const family = ed25519SignerFromSeed(generateEd25519Seed())
    const stranger = ed25519SignerFromSeed(generateEd25519Seed())
    const dir = new RelayDirectory()
    // 3 relays of the family, in 3 /16s; 3 without; one claiming the family with a certificate for another key
    for (let i = 0; i < 3; i++) assert.ok(dir.add(descriptor(k => [familyExtension(family, k)], i + 1)) != null)
    for (let i = 0; i < 3; i++) assert.ok(dir.add(descriptor(() => [], i + 10)) != null)
    assert.ok(dir.add(descriptor(() => [familyExtension(family, stranger.publicKey)], 20)) != null, 'the record itself verifies')
    const relays = pathRelays(dir.list())
    assert.equal(relays.length, 6, 'the liar is left out')
    assert.equal(relays.filter(r => r.family === hex(family.publicKey)).length, 3)
    for (let i = 0; i < 2000; i++) {
      const { mixes, relaxed } = chooseMixes(relays, [], 4)
      assert.equal(relaxed, false)
      assert.ok(mixes.filter(m => m.family != null).length <= 1)
    }
  })
})
