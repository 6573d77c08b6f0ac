/**
 * Writes test/vectors/attest-v1.json: relay attestations (protocols/directory/attest.ts, ATTEST.md)
 * about two fixed relay keys, and a relay descriptor (record v2) that carries them, signed at a fixed
 * time. Run it only when the format changes on purpose:
 *
 *   npx node test/vectors/make-attest-vector.ts
 *
 * test/admission.test.ts makes the same inputs and compares byte for byte; it never regenerates. Ed25519
 * signatures are deterministic; seeds are SHA-256(label): not secret, not random, only fixed.
 */
import { createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { ed25519SignerFromSeed } from '../../protocols/crypto/keys.ts'
import { ATTEST_CONTEXT, attestExtension, relayTag } from '../../protocols/directory/attest.ts'
import type { Attestations } from '../../protocols/directory/attest.ts'
import { KIND_RELAY, signRecord } from '../../protocols/directory/record.ts'
import type { DirectoryRecord } from '../../protocols/directory/record.ts'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const fixed = (label: string): Uint8Array => new Uint8Array(createHash('sha256').update(label).digest())

/** 2027-01-15T07:46:40Z, as in record-v2.json. */
export const ATTEST_VECTOR_NOW = 1_799_999_200_000

export function attestVectorInputs (): { attesterSeed: Uint8Array, relayKeys: Uint8Array[], attestations: Attestations, descriptor: DirectoryRecord } {
  const attesterSeed = fixed('p2pchat attest-v1 vector: attester transport seed')
  const relayKeys = [ed25519SignerFromSeed(fixed('p2pchat attest-v1 vector: relay A')).publicKey, ed25519SignerFromSeed(fixed('p2pchat attest-v1 vector: relay B')).publicKey]
  const now = ATTEST_VECTOR_NOW
  const attestations: Attestations = {
    complete: true,
    entries: [
      { tag: relayTag(relayKeys[0]), firstSeen: now - 3 * 24 * 3600_000, probed: true, reached: 'ip4:203.0' },
      { tag: relayTag(relayKeys[1]), firstSeen: now - 600_000, probed: false, reached: 'ip6:2001:db8' }
    ]
  }
  const attester = ed25519SignerFromSeed(attesterSeed)
  const descriptor: DirectoryRecord = {
    kind: KIND_RELAY,
    nick: '',
    identityKey: attester.publicKey,
    onionKeys: [{ epoch: 500, notBefore: now - 600_000, notAfter: now + 3000_000, key: fixed('attest vector: relay epoch key 500') }],
    addrs: ['/ip4/198.51.100.9/tcp/4001'],
    extensions: [attestExtension(attestations)],
    sequence: BigInt(now),
    expiry: now + 24 * 3600_000
  }
  return { attesterSeed, relayKeys, attestations, descriptor }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { attesterSeed, relayKeys, attestations, descriptor } = attestVectorInputs()
  const signed = signRecord(descriptor, ed25519SignerFromSeed(attesterSeed))
  writeFileSync(new URL('./attest-v1.json', import.meta.url), JSON.stringify({
    description: 'relay attestations v1 (protocols/directory/ATTEST.md): record field 0x81 = version | flags | count | count x (tag 16 | first seen u32 s | status | group 5); tag = SHA-256(context | relay key)[0..16]',
    context: hex(ATTEST_CONTEXT),
    relayKeys: relayKeys.map(hex),
    tags: relayKeys.map(relayTag),
    attestations,
    field: hex(descriptor.extensions?.[0].value as Uint8Array),
    attesterSeed: hex(attesterSeed),
    now: ATTEST_VECTOR_NOW,
    descriptor: hex(signed.bytes)
  }, null, 1) + '\n')
}
