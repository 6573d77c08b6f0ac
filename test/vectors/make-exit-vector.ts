/**
 * Writes test/vectors/directory-exit.json: directory exit requests and answers (protocols/directory/
 * EXIT.md) as bytes, built from the record vector (make-record-vector.ts). Run it only when the format
 * changes on purpose:
 *
 *   npx node test/vectors/make-exit-vector.ts
 *
 * test/directory-exit.test.ts encodes the same messages and decodes the bytes, and compares; it never
 * regenerates. Everything here is deterministic.
 */
import { writeFileSync } from 'node:fs'
import { ed25519SignerFromSeed } from '../../protocols/crypto/keys.ts'
import { encodeAnswer, encodeFindRelays, encodeLookup, encodePublish, OP_FIND_RELAYS, OP_LOOKUP_NAME, OP_PUBLISH_NAME } from '../../protocols/directory/exit.ts'
import type { ExitAnswer } from '../../protocols/directory/exit.ts'
import { signRecord } from '../../protocols/directory/record.ts'
import { vectorRecords } from './make-record-vector.ts'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

export function exitVectorMessages (): { name: Uint8Array, relay: Uint8Array, requests: Array<{ label: string, bytes: Uint8Array }>, answers: Array<{ label: string, answer: ExitAnswer }> } {
  const { name, relay, nameSeed, relaySeed } = vectorRecords()
  const nameBytes = signRecord(name, ed25519SignerFromSeed(nameSeed)).bytes
  const relayBytes = signRecord(relay, ed25519SignerFromSeed(relaySeed)).bytes
  return {
    name: nameBytes,
    relay: relayBytes,
    requests: [
      { label: 'LOOKUP_NAME alice', bytes: encodeLookup('alice') },
      { label: 'PUBLISH_NAME (the record vector\'s name)', bytes: encodePublish(nameBytes) },
      { label: 'FIND_RELAYS 5', bytes: encodeFindRelays(5) }
    ],
    answers: [
      { label: 'lookup found', answer: { op: OP_LOOKUP_NAME, status: 'found', record: nameBytes } },
      { label: 'lookup not found', answer: { op: OP_LOOKUP_NAME, status: 'not-found' } },
      { label: 'publish stored on 7 peers', answer: { op: OP_PUBLISH_NAME, status: 'stored', stored: 7 } },
      { label: 'publish taken', answer: { op: OP_PUBLISH_NAME, status: 'taken', holder: nameBytes } },
      { label: 'publish refused (signature)', answer: { op: OP_PUBLISH_NAME, status: 'refused', fault: 'signature' } },
      { label: 'find relays: two descriptors', answer: { op: OP_FIND_RELAYS, status: 'relays', descriptors: [relayBytes, relayBytes] } },
      { label: 'lookup busy', answer: { op: OP_LOOKUP_NAME, status: 'busy' } },
      { label: 'publish error timeout', answer: { op: OP_PUBLISH_NAME, status: 'error', reason: 'timeout' } },
      { label: 'unknown op 0x09 error', answer: { op: 0x09, status: 'error', reason: 'unknown-op' } }
    ]
  }
}

/** An answer as JSON: byte fields in hex. */
export function answerJson (a: ExitAnswer): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(a)) {
    out[k] = v instanceof Uint8Array ? hex(v) : Array.isArray(v) ? v.map(x => hex(x as Uint8Array)) : v
  }
  return out
}

if (import.meta.main) {
  const m = exitVectorMessages()
  const vector = {
    description: 'p2pchat directory exit requests and answers (protocols/directory/EXIT.md); record bytes from record-v2.json',
    requests: m.requests.map(r => ({ label: r.label, bytes: hex(r.bytes) })),
    answers: m.answers.map(a => ({ label: a.label, answer: answerJson(a.answer), bytes: hex(encodeAnswer(a.answer)) }))
  }
  writeFileSync(new URL('./directory-exit.json', import.meta.url), JSON.stringify(vector, null, 2) + '\n')
}
