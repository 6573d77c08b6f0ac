/**
 * Writes test/vectors/family-v1.json: a relay family declaration (protocols/directory/family.ts,
 * FAMILY.md) made with fixed keys, and a relay descriptor (record v2) that carries it, signed at a fixed
 * time. Run it only when the format changes on purpose:
 *
 *   npx node test/vectors/make-family-vector.ts
 *
 * test/family.test.ts makes the same inputs and compares byte for byte; it never regenerates. Ed25519
 * signatures are deterministic; seeds are SHA-256(label): not secret, not random, only fixed.
 */
import { createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { ed25519SignerFromSeed } from '../../protocols/crypto/keys.ts'
import { FAMILY_CONTEXT, familyExtension } from '../../protocols/directory/family.ts'
import { KIND_RELAY, signRecord } from '../../protocols/directory/record.ts'
import type { DirectoryRecord } from '../../protocols/directory/record.ts'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const fixed = (label: string): Uint8Array => new Uint8Array(createHash('sha256').update(label).digest())

/** 2027-01-15T07:46:40Z, as in record-v2.json. */
export const FAMILY_VECTOR_NOW = 1_799_999_200_000

export function familyVectorInputs (): { familySeed: Uint8Array, relaySeed: Uint8Array, descriptor: DirectoryRecord } {
  const familySeed = fixed('p2pchat family-v1 vector: operator family seed')
  const relaySeed = fixed('p2pchat family-v1 vector: relay transport seed')
  const relay = ed25519SignerFromSeed(relaySeed)
  const now = FAMILY_VECTOR_NOW
  const descriptor: DirectoryRecord = {
    kind: KIND_RELAY,
    nick: '',
    identityKey: relay.publicKey,
    onionKeys: [{ epoch: 500, notBefore: now - 600_000, notAfter: now + 3000_000, key: fixed('family vector: relay epoch key 500') }],
    addrs: ['/ip4/198.51.100.7/tcp/4001'],
    extensions: [familyExtension(ed25519SignerFromSeed(familySeed), relay.publicKey)],
    sequence: BigInt(now),
    expiry: now + 24 * 3600_000
  }
  return { familySeed, relaySeed, descriptor }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { familySeed, relaySeed, descriptor } = familyVectorInputs()
  const family = ed25519SignerFromSeed(familySeed)
  const signed = signRecord(descriptor, ed25519SignerFromSeed(relaySeed))
  const field = descriptor.extensions?.[0].value as Uint8Array
  writeFileSync(new URL('./family-v1.json', import.meta.url), JSON.stringify({
    description: 'relay family declaration v1 (protocols/directory/FAMILY.md): record field 0x80 = version | family key | Ed25519(family key, context | relay key)',
    familySeed: hex(familySeed),
    familyPublicKey: hex(family.publicKey),
    relaySeed: hex(relaySeed),
    relayPublicKey: hex(descriptor.identityKey),
    certificateInput: hex(FAMILY_CONTEXT) + hex(descriptor.identityKey),
    field: hex(field),
    now: FAMILY_VECTOR_NOW,
    descriptor: hex(signed.bytes)
  }, null, 1) + '\n')
}
