/**
 * Writes test/vectors/record-v2.json: a version 2 name record and relay descriptor signed with fixed
 * keys at fixed times, with their field values, signature inputs and bytes. Run it only when the format
 * changes on purpose:
 *
 *   npx node test/vectors/make-record-vector.ts
 *
 * test/directory-records.test.ts signs the same inputs and compares byte for byte; it never regenerates.
 * Ed25519 (RFC 8032) signatures are deterministic, so this script is too. Seeds and keys are
 * SHA-256(label): not secret, not random, only fixed.
 */
import { createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { ed25519SignerFromSeed } from '../../protocols/crypto/keys.ts'
import { dhtKeyOf, KIND_NAME, KIND_RELAY, SIGNATURE_CONTEXT, signRecord } from '../../protocols/directory/record.ts'
import type { DirectoryRecord } from '../../protocols/directory/record.ts'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const fixed = (label: string): Uint8Array => new Uint8Array(createHash('sha256').update(label).digest())

/** 2027-01-15T07:46:40Z: the "now" every time below is relative to. */
export const VECTOR_NOW = 1_799_999_200_000

export function vectorRecords (): { name: DirectoryRecord, relay: DirectoryRecord, nameSeed: Uint8Array, relaySeed: Uint8Array } {
  const nameSeed = fixed('p2pchat record-v2 vector: name identity seed')
  const relaySeed = fixed('p2pchat record-v2 vector: relay transport seed')
  const now = VECTOR_NOW
  const name: DirectoryRecord = {
    kind: KIND_NAME,
    nick: 'alice',
    identityKey: ed25519SignerFromSeed(nameSeed).publicKey,
    onionKeys: [
      { epoch: 7, notBefore: now - 3600_000, notAfter: now + 6 * 24 * 3600_000, key: fixed('vector: name onion key 7') },
      { epoch: 8, notBefore: now + 24 * 3600_000, notAfter: now + 8 * 24 * 3600_000, key: fixed('vector: name onion key 8') }
    ],
    mailboxes: [
      { relay: fixed('vector: mailbox relay 1'), id: fixed('vector: mailbox id 1') },
      { relay: fixed('vector: mailbox relay 2'), id: fixed('vector: mailbox id 2') }
    ],
    addrs: [],
    extensions: [{ type: 0xa0, value: new TextEncoder().encode('optional') }],
    sequence: BigInt(now),
    expiry: now + 7 * 24 * 3600_000
  }
  const relay: DirectoryRecord = {
    kind: KIND_RELAY,
    nick: '',
    identityKey: ed25519SignerFromSeed(relaySeed).publicKey,
    onionKeys: [
      { epoch: 500, notBefore: now - 600_000, notAfter: now + 3000_000, key: fixed('vector: relay epoch key 500') },
      { epoch: 501, notBefore: now + 3000_000, notAfter: now + 6600_000, key: fixed('vector: relay epoch key 501') }
    ],
    addrs: ['/ip4/192.0.2.7/tcp/4001', '/ip6/2001:db8::7/tcp/4001/ws'],
    extensions: [{ type: 0x80, value: fixed('vector: family key') }, { type: 0x80, value: fixed('vector: family key 2') }],
    sequence: BigInt(now),
    expiry: now + 24 * 3600_000
  }
  return { name, relay, nameSeed, relaySeed }
}

function describe (rec: DirectoryRecord, seed: Uint8Array): Record<string, unknown> {
  const signed = signRecord(rec, ed25519SignerFromSeed(seed))
  const dhtKey = dhtKeyOf(rec)
  const unsigned = signed.bytes.subarray(0, signed.bytes.length - 64)
  const input = Buffer.concat([SIGNATURE_CONTEXT, Buffer.from([dhtKey.length >> 8, dhtKey.length & 0xff]), dhtKey, unsigned])
  return {
    seed: hex(seed),
    dhtKey: new TextDecoder().decode(dhtKey),
    peerId: signed.peerId,
    fields: {
      kind: rec.kind,
      nick: rec.nick,
      identityKey: hex(rec.identityKey),
      onionKeys: rec.onionKeys.map(k => ({ epoch: k.epoch, notBefore: k.notBefore, notAfter: k.notAfter, key: hex(k.key) })),
      mailboxes: (rec.mailboxes ?? []).map(m => ({ relay: hex(m.relay), id: hex(m.id) })),
      addrs: rec.addrs,
      extensions: (rec.extensions ?? []).map(e => ({ type: e.type, value: hex(e.value) })),
      sequence: rec.sequence.toString(),
      expiry: rec.expiry
    },
    signatureInput: hex(input),
    signature: hex(signed.signature),
    bytes: hex(signed.bytes)
  }
}

if (import.meta.main) {
  const { name, relay, nameSeed, relaySeed } = vectorRecords()
  const vector = {
    description: 'p2pchat directory records version 2 (README "Directory records"): signRecord on these inputs gives these bytes',
    now: VECTOR_NOW,
    name: describe(name, nameSeed),
    relay: describe(relay, relaySeed)
  }
  writeFileSync(new URL('./record-v2.json', import.meta.url), JSON.stringify(vector, null, 2) + '\n')
}
