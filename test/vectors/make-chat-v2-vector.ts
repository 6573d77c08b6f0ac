/**
 * Writes test/vectors/chat-v2.json: chat payload version 2 (protocols/chat/FORMAT.md) built from fixed keys,
 * fixed fields and fixed ephemeral scalars. Run it only when the format changes on purpose:
 *
 *   node_modules/.bin/node test/vectors/make-chat-v2-vector.ts
 *
 * test/chat-message.test.ts rebuilds every item from the inputs recorded here and compares byte for byte,
 * recomputes each seal from the primitives FORMAT.md names (X25519, HKDF-SHA256, ChaCha20-Poly1305), and
 * opens each one; it never regenerates. All inputs come from SHA-256 of fixed labels, so this is deterministic.
 */
import { createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import {
  createMessage, createReceipt, ed25519SignerFromSeed, encodeEnvelope, encodeMessage, encodeReceipt,
  messageSignatureInput, receiptSignatureInput, sealMessage, sealReceipt, x25519PublicFromPrivate
} from '../../protocols/chat/index.ts'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
/** `n` bytes: SHA-256(label || counter) blocks, concatenated. */
function fixed (label: string, n: number): Uint8Array {
  const out = Buffer.alloc(n)
  for (let i = 0, off = 0; off < n; i++, off += 32) createHash('sha256').update(`${label} ${i}`).digest().copy(out, off)
  return new Uint8Array(out)
}
const once = (bytes: Uint8Array) => (n: number): Uint8Array => {
  if (n !== bytes.length) throw new Error(`expected a draw of ${bytes.length} bytes, got ${n}`)
  return bytes
}

const users = Object.fromEntries(['alice', 'bob', 'carol'].map((name, i) => {
  const identitySeed = fixed(`chat-v2 ${name} identity seed`, 32)
  const onionPrivateKey = fixed(`chat-v2 ${name} onion key`, 32)
  return [name, {
    identitySeed: hex(identitySeed),
    identityKey: hex(ed25519SignerFromSeed(identitySeed).publicKey),
    onionPrivateKey: hex(onionPrivateKey),
    onionPublicKey: hex(x25519PublicFromPrivate(onionPrivateKey)),
    onionEpoch: 0x00010203 * (i + 1)
  }]
}))
const key = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'))
const signer = (name: string) => ed25519SignerFromSeed(key(users[name].identitySeed))

function messageVector (label: string, init: { text: string, nameRecord: Uint8Array, replyBlock: Uint8Array, nick: string }): Record<string, unknown> {
  const alice = signer('alice')
  const bob = users.bob
  const msg = createMessage({
    id: fixed(`${label} id`, 16),
    timestamp: 1_764_547_200_000,
    senderNick: init.nick,
    senderIdentityKey: alice.publicKey,
    text: init.text,
    nameRecord: init.nameRecord,
    replyBlock: init.replyBlock
  })
  const encoded = encodeMessage(msg, alice, key(bob.identityKey))
  const ephemeralScalar = fixed(`${label} ephemeral scalar`, 32)
  const sealed = sealMessage(msg, alice, { identityKey: key(bob.identityKey), onionKey: key(bob.onionPublicKey), epoch: bob.onionEpoch }, { random: once(ephemeralScalar) })
  return {
    description: `${label}: alice -> bob, sealed to bob's onion key of epoch ${bob.onionEpoch}`,
    from: 'alice',
    to: 'bob',
    fields: {
      id: hex(msg.id),
      timestamp: msg.timestamp,
      senderNick: msg.senderNick,
      text: msg.text,
      nameRecord: hex(msg.nameRecord),
      replyBlock: hex(msg.replyBlock)
    },
    signatureInput: hex(messageSignatureInput(key(bob.identityKey), encoded.subarray(0, encoded.length - 64))),
    encoded: hex(encoded),
    envelope: hex(encodeEnvelope({ type: 'message', encoded })),
    ephemeralScalar: hex(ephemeralScalar),
    sealed: hex(sealed)
  }
}

function receiptVector (): Record<string, unknown> {
  const bob = signer('bob')
  const alice = users.alice
  const ids = [1, 2, 3].map(i => fixed(`chat-v2 receipt id ${i}`, 16))
  const receipt = createReceipt(ids, bob, key(alice.identityKey))
  const ephemeralScalar = fixed('chat-v2 receipt ephemeral scalar', 32)
  return {
    description: 'bob receipts three of alice\'s messages; sealed to alice\'s onion key of her epoch',
    from: 'bob',
    to: 'alice',
    messageIds: ids.map(hex),
    signatureInput: hex(receiptSignatureInput(key(alice.identityKey), ids)),
    encoded: hex(encodeReceipt(receipt)),
    envelope: hex(encodeEnvelope({ type: 'receipt', receipt })),
    ephemeralScalar: hex(ephemeralScalar),
    sealed: hex(sealReceipt(receipt, { onionKey: key(alice.onionPublicKey), epoch: alice.onionEpoch }, { random: once(ephemeralScalar) }))
  }
}

const vector = {
  description: 'p2pchat chat payload v2 known answers (protocols/chat/FORMAT.md). Inputs: SHA-256 of fixed labels, see make-chat-v2-vector.ts. ' +
    'Each seal drew exactly one 32-byte ephemeral scalar, recorded as ephemeralScalar.',
  users,
  messages: [
    messageVector('chat-v2 first contact', { nick: 'alice', text: 'hello bob, ça va? 👋', nameRecord: fixed('chat-v2 record', 400), replyBlock: new Uint8Array(0) }),
    messageVector('chat-v2 with reply block', { nick: 'alice', text: '', nameRecord: new Uint8Array(0), replyBlock: fixed('chat-v2 reply block', 529) })
  ],
  receipt: receiptVector()
}

writeFileSync(new URL('./chat-v2.json', import.meta.url), JSON.stringify(vector, null, 2) + '\n')
console.log('wrote test/vectors/chat-v2.json')
