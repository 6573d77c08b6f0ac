import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createCipheriv, createPrivateKey, createPublicKey, diffieHellman, hkdfSync, randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import {
  BODY_INTEGRITY_BYTES,
  DEPOSIT_HEADER_BYTES,
  MAX_ENCODED_MESSAGE,
  MAX_ITEM,
  MAX_NAME_RECORD_BYTES,
  MAX_RECEIPT_BYTES,
  MAX_RECEIPT_IDS,
  MAX_TEXT_BYTES,
  MIN_ENCODED_MESSAGE,
  MIN_RECEIPT_BYTES,
  PACKET_BYTES,
  MAX_REPLY_BLOCK,
  MESSAGE_FIXED_BYTES,
  NICK_MAX_LENGTH,
  REPLY_BLOCK_BYTES,
  ENVELOPE_HEADER_BYTES,
  SEALED_OVERHEAD,
  SERVICE_HEADER_BYTES,
  SPHINX_HEADER_BYTES,
  assertValidNick,
  createMessage,
  createReceipt,
  decodeEnvelope,
  decodeMessage,
  decodeReceipt,
  ed25519SignerFromSeed,
  ed25519Verify,
  encodeEnvelope,
  encodeMessage,
  encodeReceipt,
  fingerprint,
  generateEd25519Seed,
  generateX25519KeyPair,
  inspectSeal,
  isFingerprint,
  normalizeFingerprint,
  openMessage,
  openSealed,
  nameRecordFits,
  receiptBlockFits,
  seal,
  sealEphemeralKey,
  sealMessage,
  sealReceipt,
  sealedMessageBytes,
  unseal,
  validateNick,
  verifyReceipt,
  x25519PublicFromPrivate,
  type ChatMessage,
  type KeyForEpoch,
  type MessageRecipient,
  type Signer,
  type X25519KeyPair
} from '../protocols/chat/index.ts'
import { FIRST_OPTIONAL_FIELD, KIND_NAME, MAX_MAILBOXES, MAX_ONION_KEYS, signRecord, verifyRecord, nameKey } from '../protocols/directory/record.ts'
import type { DirectoryRecord } from '../protocols/directory/record.ts'

function bytes (n: number): Uint8Array {
  return new Uint8Array(randomBytes(n))
}

interface User { signer: Signer, onion: X25519KeyPair, epoch: number, to: MessageRecipient, keys: KeyForEpoch }

function user (epoch = 7): User {
  const signer = ed25519SignerFromSeed(generateEd25519Seed())
  const onion = generateX25519KeyPair()
  return {
    signer,
    onion,
    epoch,
    to: { identityKey: signer.publicKey, onionKey: onion.publicKey, epoch },
    keys: (e) => e === epoch ? onion.privateKey : undefined
  }
}

function setup (): { alice: User, bob: User, carol: User, msg: ChatMessage } {
  const alice = user(1)
  const bob = user(7)
  const carol = user(7)
  const msg = createMessage({
    senderNick: 'alice',
    senderIdentityKey: alice.signer.publicKey,
    text: 'hello bob, ça va? 👋',
    nameRecord: bytes(300),
    replyBlock: bytes(REPLY_BLOCK_BYTES)
  })
  return { alice, bob, carol, msg }
}

/** Opens and asserts success, narrowing the result. */
function mustOpen (sealed: Uint8Array, u: User): { message: ChatMessage, signatureValid: boolean, epoch: number, ephemeralKey: Uint8Array } {
  const opened = openMessage(sealed, u.keys, u.signer.publicKey)
  assert.ok(opened.ok, opened.ok ? '' : `open failed: ${opened.reason}`)
  return opened
}

const hexOf = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const fromHex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'))

describe('byte budget (FORMAT.md "Byte budget", issue 10 item 6)', () => {
  it('a 3072-byte packet leaves MAX_ITEM = 2022 bytes for the sealed envelope', () => {
    assert.equal(SEALED_OVERHEAD, 53)
    assert.equal(SERVICE_HEADER_BYTES, 532)
    assert.equal(DEPOSIT_HEADER_BYTES, 35)
    assert.equal(MAX_ITEM, 2022)
    assert.equal(SPHINX_HEADER_BYTES + BODY_INTEGRITY_BYTES + SERVICE_HEADER_BYTES + DEPOSIT_HEADER_BYTES + MAX_ITEM, PACKET_BYTES)
    assert.equal(MIN_ENCODED_MESSAGE, 129)
    assert.equal(MAX_REPLY_BLOCK, 529)
    assert.equal(MAX_ENCODED_MESSAGE, 128 + 32 + 1024 + 784 + 529)
  })

  it('MAX_NAME_RECORD_BYTES is the most that leaves 1024 bytes of text with a 32-char nick: 784', () => {
    assert.equal(MAX_NAME_RECORD_BYTES, MAX_ITEM - SEALED_OVERHEAD - ENVELOPE_HEADER_BYTES - MESSAGE_FIXED_BYTES - NICK_MAX_LENGTH - MAX_TEXT_BYTES)
    assert.equal(MAX_NAME_RECORD_BYTES, 784)
    assert.equal(sealedMessageBytes({ textBytes: MAX_TEXT_BYTES, recordBytes: MAX_NAME_RECORD_BYTES }), MAX_ITEM)
    assert.ok(Number.isNaN(sealedMessageBytes({ textBytes: 0, recordBytes: MAX_NAME_RECORD_BYTES + 1 })))
    assert.equal(nameRecordFits(0), true)
    assert.equal(nameRecordFits(591), true)
    assert.equal(nameRecordFits(784), true)
    assert.equal(nameRecordFits(785), false)
    for (const bad of [-1, 1.5, Number.NaN]) assert.equal(nameRecordFits(bad), false)
  })

  it('the largest first-contact message (1024 bytes of text, 32-char nick, 784-byte record, no reply block) fills one item exactly', () => {
    const { alice, bob } = setup()
    const msg = createMessage({
      senderNick: 'a'.repeat(32),
      senderIdentityKey: alice.signer.publicKey,
      text: 'é'.repeat(MAX_TEXT_BYTES / 2),
      nameRecord: bytes(MAX_NAME_RECORD_BYTES)
    })
    const sealed = sealMessage(msg, alice.signer, bob.to)
    assert.equal(sealed.length, 53 + 1 + 128 + 32 + 1024 + 784)
    assert.equal(sealed.length, sealedMessageBytes({ textBytes: 1024, recordBytes: 784 }))
    assert.equal(sealed.length, MAX_ITEM)
    assert.deepEqual(mustOpen(sealed, bob).message, msg)
    // one more byte of record would not fit the item: the format refuses to build it
    assert.throws(() => createMessage({ ...msg, nameRecord: bytes(MAX_NAME_RECORD_BYTES + 1) }), { name: 'NameRecordTooLargeError' })
  })

  it('the largest record a client signs today (3 onion keys, 4 mailboxes, 32-char nick: 591 bytes) rides with 1024 bytes of text, with 193 bytes to spare for optional fields', () => {
    const { bob } = setup()
    const signer = ed25519SignerFromSeed(generateEd25519Seed())
    const nick = 'n'.repeat(NICK_MAX_LENGTH)
    const now = Date.now()
    const record = (extensions: DirectoryRecord['extensions']): Uint8Array => signRecord({
      kind: KIND_NAME,
      nick,
      identityKey: signer.publicKey,
      onionKeys: Array.from({ length: MAX_ONION_KEYS }, (_, i) => ({ epoch: i + 1, notBefore: now + (i - 1) * 3600_000, notAfter: now + i * 3600_000, key: bytes(32) })),
      addrs: [],
      mailboxes: Array.from({ length: MAX_MAILBOXES }, () => ({ relay: bytes(32), id: bytes(32) })),
      extensions,
      sequence: 1n,
      expiry: now + 3600_000
    }, signer).bytes
    const full = record([])
    assert.equal(full.length, 591)
    // an optional field of 190 value bytes (3 of field header) brings the record to exactly 784
    const largest = record([{ type: FIRST_OPTIONAL_FIELD, value: bytes(MAX_NAME_RECORD_BYTES - full.length - 3) }])
    assert.equal(largest.length, MAX_NAME_RECORD_BYTES)
    for (const rec of [full, largest]) {
      assert.equal(nameRecordFits(rec.length), true)
      const msg = createMessage({ senderNick: nick, senderIdentityKey: signer.publicKey, text: 'x'.repeat(MAX_TEXT_BYTES), nameRecord: rec })
      const sealed = sealMessage(msg, signer, bob.to)
      assert.ok(sealed.length <= MAX_ITEM, `${sealed.length} > ${MAX_ITEM}`)
      const opened = mustOpen(sealed, bob)
      assert.equal(opened.signatureValid, true)
      // the recipient can verify the carried record as the directory would
      assert.equal(verifyRecord(nameKey(nick), opened.message.nameRecord).nick, nick)
    }
    // one byte more of optional field and the sender must leave the record out
    const over = record([{ type: FIRST_OPTIONAL_FIELD, value: bytes(MAX_NAME_RECORD_BYTES - full.length - 2) }])
    assert.equal(nameRecordFits(over.length), false)
    assert.throws(() => createMessage({ senderNick: nick, senderIdentityKey: signer.publicKey, text: 'hi', nameRecord: over }), { name: 'NameRecordTooLargeError' })
  })

  it('receiptBlockFits says when the 529-byte receipt reply block fits: text + record <= 1279 with a 32-char nick', () => {
    assert.equal(receiptBlockFits(1024, 0), true)
    assert.equal(receiptBlockFits(879, 400), true)
    assert.equal(receiptBlockFits(880, 400), false)
    assert.equal(receiptBlockFits(1024, 512), false)
    assert.equal(receiptBlockFits(767, 512), true)
    assert.equal(receiptBlockFits(768, 512), false)
    assert.equal(receiptBlockFits(880, 400, 1), true)
    for (const bad of [-1, 1025, 1.5, Number.NaN]) assert.equal(receiptBlockFits(bad, 0), false)
    assert.equal(receiptBlockFits(0, 784), true)
    assert.equal(receiptBlockFits(495, 784), true)
    assert.equal(receiptBlockFits(496, 784), false)
    assert.equal(receiptBlockFits(0, 785), false)
  })

  it('receiptBlockFits agrees with sealing: the block seals into MAX_ITEM exactly when it says so', () => {
    const { alice, bob } = setup()
    const block = bytes(REPLY_BLOCK_BYTES)
    let fits = 0
    let refused = 0
    for (const [text, record, nick] of [[1024, 0, 32], [879, 400, 32], [880, 400, 32], [767, 512, 32], [768, 512, 32], [495, 784, 32], [496, 784, 32], [1024, 512, 1], [1024, 286, 1], [1024, 287, 1], [0, 784, 32]]) {
      const msg = createMessage({ senderNick: 'n'.repeat(nick), senderIdentityKey: alice.signer.publicKey, text: 'x'.repeat(text), nameRecord: bytes(record), replyBlock: block })
      const expected = receiptBlockFits(text, record, nick)
      if (expected) {
        assert.equal(sealMessage(msg, alice.signer, bob.to).length, sealedMessageBytes({ textBytes: text, recordBytes: record, nickBytes: nick, replyBlockBytes: REPLY_BLOCK_BYTES }))
        fits++
      } else {
        assert.throws(() => sealMessage(msg, alice.signer, bob.to), { name: 'EnvelopeTooLargeError' })
        refused++
      }
    }
    assert.ok(fits >= 4 && refused >= 4)
  })
})

describe('known-answer vectors (test/vectors/chat-v2.json)', () => {
  const vector = JSON.parse(readFileSync(new URL('./vectors/chat-v2.json', import.meta.url), 'utf8'))
  type V = { identitySeed: string, identityKey: string, onionPrivateKey: string, onionPublicKey: string, onionEpoch: number }
  const users = vector.users as Record<string, V>
  const once = (hex: string) => (n: number): Uint8Array => { assert.equal(n, 32); return fromHex(hex) }

  /** The seal recomputed from the primitives FORMAT.md names, not through seal.ts. */
  function sealByHand (plaintext: Uint8Array, scalar: Uint8Array, recipient: V): Uint8Array {
    const e = createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b656e04220420', 'hex'), scalar]), format: 'der', type: 'pkcs8' })
    const E = new Uint8Array(createPublicKey(e).export({ format: 'der', type: 'spki' }).subarray(12))
    const R = fromHex(recipient.onionPublicKey)
    const rKey = createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b656e032100', 'hex'), R]), format: 'der', type: 'spki' })
    const dh = diffieHellman({ privateKey: e, publicKey: rKey })
    const epoch = Buffer.alloc(4)
    epoch.writeUInt32BE(recipient.onionEpoch)
    const okm = Buffer.from(hkdfSync('sha256', dh, Buffer.concat([E, R]), Buffer.concat([Buffer.from('p2pchat/seal/v2'), epoch]), 44))
    const header = Buffer.concat([Buffer.from([0x02]), epoch, E])
    const cipher = createCipheriv('chacha20-poly1305', okm.subarray(0, 32), okm.subarray(32), { authTagLength: 16 })
    cipher.setAAD(header, { plaintextLength: plaintext.length })
    return new Uint8Array(Buffer.concat([header, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]))
  }

  it('users: identity and onion keys from the recorded seeds', () => {
    for (const u of Object.values(users)) {
      assert.equal(hexOf(ed25519SignerFromSeed(fromHex(u.identitySeed)).publicKey), u.identityKey)
      assert.equal(hexOf(x25519PublicFromPrivate(fromHex(u.onionPrivateKey))), u.onionPublicKey)
    }
  })

  interface MessageVector {
    description: string, from: string, to: string, signatureInput: string, encoded: string, envelope: string, ephemeralScalar: string, sealed: string
    fields: { id: string, timestamp: number, senderNick: string, text: string, nameRecord: string, replyBlock: string }
  }
  for (const [i, v] of (vector.messages as MessageVector[]).entries()) {
    it(`message ${i}: ${v.description}`, () => {
      const from = users[v.from]
      const to = users[v.to]
      const signer = ed25519SignerFromSeed(fromHex(from.identitySeed))
      const msg = createMessage({
        id: fromHex(v.fields.id),
        timestamp: v.fields.timestamp,
        senderNick: v.fields.senderNick,
        senderIdentityKey: signer.publicKey,
        text: v.fields.text,
        nameRecord: fromHex(v.fields.nameRecord),
        replyBlock: fromHex(v.fields.replyBlock)
      })
      const encoded = encodeMessage(msg, signer, fromHex(to.identityKey))
      assert.equal(hexOf(encoded), v.encoded)
      // Ed25519 is deterministic (RFC 8032): the signature is the vector's, over the documented input
      assert.ok(ed25519Verify(signer.publicKey, fromHex(v.signatureInput), encoded.subarray(encoded.length - 64)))
      assert.equal(v.signatureInput, hexOf(Buffer.concat([Buffer.from('p2pchat/msg/v2'), fromHex(to.identityKey), encoded.subarray(0, encoded.length - 64)])))
      assert.equal(hexOf(encodeEnvelope({ type: 'message', encoded })), v.envelope)
      assert.equal(v.envelope, '01' + v.encoded)
      const recipient = { identityKey: fromHex(to.identityKey), onionKey: fromHex(to.onionPublicKey), epoch: to.onionEpoch }
      const sealed = sealMessage(msg, signer, recipient, { random: once(v.ephemeralScalar) })
      assert.equal(hexOf(sealed), v.sealed)
      assert.equal(hexOf(sealByHand(fromHex(v.envelope), fromHex(v.ephemeralScalar), to)), v.sealed)
      const opened = openMessage(fromHex(v.sealed), (e) => e === to.onionEpoch ? fromHex(to.onionPrivateKey) : undefined, fromHex(to.identityKey))
      assert.ok(opened.ok && opened.signatureValid)
      assert.deepEqual(opened.message, msg)
      assert.equal(opened.epoch, to.onionEpoch)
      assert.equal(hexOf(opened.ephemeralKey), v.sealed.slice(10, 74))
      // the same bytes are not addressed to carol
      const asCarol = decodeMessage(fromHex(v.encoded), fromHex(users.carol.identityKey))
      assert.ok(asCarol.ok)
      assert.equal(asCarol.signatureValid, false)
    })
  }

  it('receipt: batched, signed for the addressee, sealed', () => {
    const v = vector.receipt
    const signer = ed25519SignerFromSeed(fromHex(users[v.from].identitySeed))
    const to = users[v.to]
    const ids = (v.messageIds as string[]).map(fromHex)
    const receipt = createReceipt(ids, signer, fromHex(to.identityKey))
    assert.equal(hexOf(encodeReceipt(receipt)), v.encoded)
    assert.equal(v.signatureInput, hexOf(Buffer.concat([Buffer.from('p2pchat/receipt/v2'), fromHex(to.identityKey), fromHex(v.encoded).subarray(0, 2 + 16 * ids.length)])))
    assert.equal(hexOf(encodeEnvelope({ type: 'receipt', receipt })), v.envelope)
    const sealed = sealReceipt(receipt, { onionKey: fromHex(to.onionPublicKey), epoch: to.onionEpoch }, { random: once(v.ephemeralScalar) })
    assert.equal(hexOf(sealed), v.sealed)
    assert.equal(hexOf(sealByHand(fromHex(v.envelope), fromHex(v.ephemeralScalar), to)), v.sealed)
    const opened = openSealed(sealed, () => fromHex(to.onionPrivateKey), fromHex(to.identityKey))
    assert.ok(opened.ok && opened.type === 'receipt')
    assert.equal(verifyReceipt(opened.receipt, signer.publicKey, fromHex(to.identityKey)), true)
    assert.equal(verifyReceipt(opened.receipt, signer.publicKey, fromHex(users.carol.identityKey)), false)
  })
})

describe('message round trip', () => {
  it('seals and opens to the same message with a valid signature, the epoch and E', () => {
    const { alice, bob, msg } = setup()
    const sealed = sealMessage(msg, alice.signer, bob.to)
    assert.equal(sealed.length, encodeMessage(msg, alice.signer, bob.signer.publicKey).length + 1 + SEALED_OVERHEAD)
    const opened = mustOpen(sealed, bob)
    assert.equal(opened.signatureValid, true)
    assert.deepEqual(opened.message, msg)
    assert.equal(opened.epoch, 7)
    assert.deepEqual(opened.ephemeralKey, sealEphemeralKey(sealed))
    assert.deepEqual(inspectSeal(sealed), { ok: true, epoch: 7, ephemeralKey: opened.ephemeralKey })
  })

  it('keeps empty text, record and reply block, a leading BOM, the largest timestamp', () => {
    const { alice, bob } = setup()
    for (const text of ['', '\uFEFFbom', 'x'.repeat(MAX_TEXT_BYTES)]) {
      for (const replyBlock of [new Uint8Array(0), bytes(REPLY_BLOCK_BYTES)]) {
        const msg = createMessage({ senderNick: 'a', senderIdentityKey: alice.signer.publicKey, text, replyBlock, timestamp: Number.MAX_SAFE_INTEGER })
        const opened = mustOpen(sealMessage(msg, alice.signer, bob.to), bob)
        assert.deepEqual(opened.message, msg)
        assert.equal(opened.signatureValid, true)
      }
    }
  })

  it('two seals of one message differ in E, which is what a recipient drops replays by', () => {
    const { alice, bob, msg } = setup()
    const a = sealMessage(msg, alice.signer, bob.to)
    const b = sealMessage(msg, alice.signer, bob.to)
    assert.notDeepEqual(sealEphemeralKey(a), sealEphemeralKey(b))
    assert.deepEqual(mustOpen(a, bob).message, mustOpen(b, bob).message)
    // E is readable without the key, and only from a v2 seal
    assert.deepEqual(sealEphemeralKey(a), a.subarray(5, 37))
    assert.equal(sealEphemeralKey(a.subarray(0, 52)), undefined)
    const v1 = a.slice()
    v1[0] = 1
    assert.equal(sealEphemeralKey(v1), undefined)
    assert.deepEqual(inspectSeal(v1), { ok: false, reason: 'version' })
  })

  it('accepts Buffer input and returns plain Uint8Arrays', () => {
    const { alice, bob, msg } = setup()
    const sealed = Buffer.from(sealMessage(msg, alice.signer, bob.to))
    const opened = openMessage(sealed, () => Buffer.from(bob.onion.privateKey), Buffer.from(bob.signer.publicKey))
    assert.ok(opened.ok)
    assert.equal(Object.getPrototypeOf(opened.message.id), Uint8Array.prototype)
    assert.deepEqual(opened.message, msg)
  })
})

describe('addressing: the signature covers the recipient identity key', () => {
  it('a message signed to bob does not verify as addressed to carol', () => {
    const { alice, bob, carol, msg } = setup()
    const encoded = encodeMessage(msg, alice.signer, bob.signer.publicKey)
    const asBob = decodeMessage(encoded, bob.signer.publicKey)
    const asCarol = decodeMessage(encoded, carol.signer.publicKey)
    assert.ok(asBob.ok && asCarol.ok)
    assert.equal(asBob.signatureValid, true)
    assert.equal(asCarol.signatureValid, false)
    assert.deepEqual(asCarol.message, msg)
  })

  it('a forger who won alice\'s lookup and re-seals her message to the real bob: bob sees it unverified', () => {
    const { alice, bob } = setup()
    const forger = user(3)
    const msg = createMessage({ senderNick: 'alice', senderIdentityKey: alice.signer.publicKey, text: 'meet at 9' })
    // alice seals to the forged "bob" record: the forger's identity and onion keys
    const toForger = sealMessage(msg, alice.signer, forger.to)
    const atForger = mustOpen(toForger, forger)
    assert.equal(atForger.signatureValid, true)
    // the forger opens the seal and re-seals the same signed bytes to the real bob
    const plain = unseal(toForger, forger.keys)
    assert.ok(plain.ok)
    const resealed = seal(plain.plaintext, bob.onion.publicKey, bob.epoch)
    const atBob = mustOpen(resealed, bob)
    assert.deepEqual(atBob.message, msg)
    assert.equal(atBob.signatureValid, false)
  })

  it('a signature by another key than the claimed identity key gives signatureValid false', () => {
    const { alice, bob, msg } = setup()
    const liar: Signer = { publicKey: alice.signer.publicKey, sign: (data) => bob.signer.sign(data) }
    const opened = mustOpen(sealMessage(msg, liar, bob.to), bob)
    assert.equal(opened.signatureValid, false)
  })

  it('refuses to sign with a signer that is not the sender, or for a malformed recipient key', () => {
    const { bob, alice, msg } = setup()
    assert.throws(() => sealMessage(msg, bob.signer, bob.to), { name: 'SignerMismatchError' })
    assert.throws(() => encodeMessage(msg, alice.signer, new Uint8Array(31)), { name: 'InvalidKeyError' })
    assert.deepEqual(decodeMessage(encodeMessage(msg, alice.signer, bob.signer.publicKey), new Uint8Array(31)), { ok: false, reason: 'key' })
  })

  it('every single-bit flip of the signed bytes breaks the signature or the decoding', () => {
    const { alice, bob } = setup()
    const msg = createMessage({ senderNick: 'al', senderIdentityKey: alice.signer.publicKey, text: 'hi', nameRecord: bytes(8), replyBlock: new Uint8Array(0) })
    const encoded = encodeMessage(msg, alice.signer, bob.signer.publicKey)
    for (let bit = 0; bit < encoded.length * 8; bit++) {
      const flipped = encoded.slice()
      flipped[bit >>> 3] ^= 1 << (bit & 7)
      const decoded = decodeMessage(flipped, bob.signer.publicKey)
      assert.ok(!decoded.ok || !decoded.signatureValid, `bit ${bit} still verifies`)
    }
  })

  it('ed25519Verify checks the domain-separated input and never throws; RFC 8032 test vector 1', () => {
    const { alice, bob, msg } = setup()
    const encoded = encodeMessage(msg, alice.signer, bob.signer.publicKey)
    const sig = encoded.subarray(encoded.length - 64)
    const fields = encoded.subarray(0, encoded.length - 64)
    assert.equal(ed25519Verify(alice.signer.publicKey, fields, sig), false)
    assert.equal(ed25519Verify(new Uint8Array(3), fields, sig), false)
    const seed = Buffer.from('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60', 'hex')
    const signer = ed25519SignerFromSeed(seed)
    assert.equal(hexOf(signer.publicKey), 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a')
    assert.equal(
      hexOf(signer.sign(new Uint8Array(0))),
      'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b'
    )
  })
})

describe('seal: epochs, tampering and wrong keys', () => {
  it('an epoch the recipient has no key for is `epoch`; a relabelled epoch does not open even under the right key', () => {
    const { alice, bob, msg } = setup()
    const sealed = sealMessage(msg, alice.signer, bob.to)
    assert.deepEqual(openMessage(sealed, () => undefined, bob.signer.publicKey), { ok: false, reason: 'epoch' })
    const relabelled = sealed.slice()
    relabelled[4] ^= 1 // epoch 7 -> 6
    assert.deepEqual(inspectSeal(relabelled), { ok: true, epoch: 6, ephemeralKey: sealed.subarray(5, 37) })
    assert.deepEqual(openMessage(relabelled, () => bob.onion.privateKey, bob.signer.publicKey), { ok: false, reason: 'decrypt' })
    assert.deepEqual(openMessage(relabelled, bob.keys, bob.signer.publicKey), { ok: false, reason: 'epoch' })
    assert.deepEqual(openMessage(sealed, () => { throw new Error('store closed') }, bob.signer.publicKey), { ok: false, reason: 'key' })
  })

  it('every single-bit flip of a sealed message fails to open', () => {
    const { alice, bob } = setup()
    const msg = createMessage({ senderNick: 'alice', senderIdentityKey: alice.signer.publicKey, text: 'short' })
    const sealed = sealMessage(msg, alice.signer, bob.to)
    const reasons = new Map<string, number>()
    for (let bit = 0; bit < sealed.length * 8; bit++) {
      const flipped = sealed.slice()
      flipped[bit >>> 3] ^= 1 << (bit & 7)
      const opened = openMessage(flipped, () => bob.onion.privateKey, bob.signer.publicKey)
      assert.equal(opened.ok, false, `bit ${bit} opened`)
      if (!opened.ok) reasons.set(opened.reason, (reasons.get(opened.reason) ?? 0) + 1)
    }
    assert.deepEqual([...reasons.keys()].sort(), ['decrypt', 'version'])
    assert.equal(reasons.get('version'), 8)
  })

  it('rejects every truncation and extension', () => {
    const { alice, bob, msg } = setup()
    const sealed = sealMessage(msg, alice.signer, bob.to)
    for (let n = 0; n < sealed.length; n++) {
      assert.equal(openMessage(sealed.subarray(0, n), bob.keys, bob.signer.publicKey).ok, false, `truncated to ${n} opened`)
    }
    for (const extra of [Uint8Array.of(0), Uint8Array.of(1), bytes(16)]) {
      assert.equal(openMessage(new Uint8Array([...sealed, ...extra]), bob.keys, bob.signer.publicKey).ok, false)
    }
  })

  it('the wrong recipient key fails with decrypt; an unusable one with key', () => {
    const { alice, bob, carol, msg } = setup()
    const sealed = sealMessage(msg, alice.signer, bob.to)
    assert.deepEqual(openMessage(sealed, () => carol.onion.privateKey, bob.signer.publicKey), { ok: false, reason: 'decrypt' })
    assert.deepEqual(openMessage(sealed, () => new Uint8Array(31), bob.signer.publicKey), { ok: false, reason: 'key' })
  })

  it('an ephemeral key of low order is rejected, a recipient key of low order refused', () => {
    const { bob } = setup()
    const sealed = seal(bytes(200), bob.onion.publicKey, 7)
    sealed.fill(0, 5, 37)
    assert.deepEqual(unseal(sealed, bob.keys), { ok: false, reason: 'decrypt' })
    assert.throws(() => seal(bytes(10), new Uint8Array(32), 0), { name: 'InvalidKeyError' })
  })

  it('epochs are u32; the random source must give 32 bytes', () => {
    const { bob } = setup()
    for (const epoch of [-1, 2 ** 32, 1.5, Number.NaN]) assert.throws(() => seal(bytes(10), bob.onion.publicKey, epoch), { name: 'InvalidEpochError' })
    const top = seal(bytes(10), bob.onion.publicKey, 2 ** 32 - 1)
    assert.deepEqual(unseal(top, () => bob.onion.privateKey).ok, true)
    assert.throws(() => seal(bytes(10), bob.onion.publicKey, 0, { random: () => new Uint8Array(31) }), { name: 'InvalidRandomError' })
  })
})

describe('strict decoding of the plaintext message', () => {
  // offsets into an encoded message with nick 'alice' (5 bytes) and text 'hello' (5 bytes)
  const NICK_LEN = 25
  const TS = 17
  const TEXT_LEN = 26 + 5 + 32
  const RECORD_LEN = TEXT_LEN + 2 + 5
  const REPLY_LEN = RECORD_LEN + 2 + 3
  const { alice, bob } = setup()

  function encoded (): Uint8Array {
    const msg = createMessage({ senderNick: 'alice', senderIdentityKey: alice.signer.publicKey, text: 'hello', nameRecord: bytes(3) })
    return encodeMessage(msg, alice.signer, bob.signer.publicKey)
  }

  const cases: Array<[string, (b: Uint8Array) => Uint8Array, string]> = [
    ['unknown version', (b) => { b[0] = 1; return b }, 'version'],
    ['empty', () => new Uint8Array(0), 'length'],
    ['trailing byte', (b) => new Uint8Array([...b, 0]), 'length'],
    ['missing byte', (b) => b.subarray(0, b.length - 1), 'length'],
    ['timestamp above 2^53', (b) => { b[TS] = 0x01; return b }, 'timestamp'],
    ['nick length 0', (b) => { b[NICK_LEN] = 0; return b }, 'nick'],
    ['nick length 33', (b) => { b[NICK_LEN] = 33; return b }, 'nick'],
    ['nick length longer than the nick', (b) => { b[NICK_LEN] = 6; b[NICK_LEN + 6] = 0x2e; return b }, 'nick'],
    ['upper-case nick', (b) => { b[NICK_LEN + 1] = 0x41; return b }, 'nick'],
    ['text length above 1024', (b) => { b[TEXT_LEN] = 0x04; b[TEXT_LEN + 1] = 0x01; return b }, 'length'],
    ['text length past the end', (b) => { b[TEXT_LEN] = 0x03; return b }, 'length'],
    ['invalid UTF-8', (b) => { b[TEXT_LEN + 2] = 0xff; return b }, 'utf8'],
    ['overlong UTF-8', (b) => { b[TEXT_LEN + 2] = 0xc0; b[TEXT_LEN + 3] = 0x80; return b }, 'utf8'],
    ['NUL in text', (b) => { b[TEXT_LEN + 2] = 0; return b }, 'text'],
    ['record length 785, past the end', (b) => { b[RECORD_LEN] = 0x03; b[RECORD_LEN + 1] = 0x11; return b }, 'length'],
    ['reply block length 100', (b) => { b[REPLY_LEN + 1] = 100; return b }, 'length'],
    ['reply block length 529 past the end', (b) => { b[REPLY_LEN] = 0x02; b[REPLY_LEN + 1] = 0x11; return b }, 'length'],
    ['not bytes', () => 'hello' as unknown as Uint8Array, 'input']
  ]
  it('the offsets above match the encoding', () => {
    const b = encoded()
    assert.equal(b[NICK_LEN], 5)
    assert.equal((b[TEXT_LEN] << 8) | b[TEXT_LEN + 1], 5)
    assert.equal((b[RECORD_LEN] << 8) | b[RECORD_LEN + 1], 3)
    assert.equal((b[REPLY_LEN] << 8) | b[REPLY_LEN + 1], 0)
    assert.equal(b.length, REPLY_LEN + 2 + 64)
  })
  for (const [name, mutate, reason] of cases) {
    it(`${name} -> ${reason}`, () => {
      assert.deepEqual(decodeMessage(mutate(encoded()), bob.signer.publicKey), { ok: false, reason })
    })
  }

  /** Grows the field whose u16 length sits at `at` by `extra` bytes, keeping everything else (the signature then fails, the framing holds). */
  function grow (b: Uint8Array, at: number, extra: number): Uint8Array {
    const length = (b[at] << 8) | b[at + 1]
    const out = new Uint8Array([...b.subarray(0, at + 2 + length), ...new Uint8Array(extra), ...b.subarray(at + 2 + length)])
    out[at] = (length + extra) >> 8
    out[at + 1] = (length + extra) & 0xff
    return out
  }

  it('a well-framed record of 785 bytes is refused (length), one of 784 is read', () => {
    const make = (record: number): Uint8Array => encodeMessage(createMessage({ senderNick: 'alice', senderIdentityKey: alice.signer.publicKey, text: 'hello', nameRecord: bytes(record) }), alice.signer, bob.signer.publicKey)
    const atLimit = make(MAX_NAME_RECORD_BYTES)
    const decoded = decodeMessage(atLimit, bob.signer.publicKey)
    assert.ok(decoded.ok && decoded.signatureValid && decoded.message.nameRecord.length === 784)
    // the same bytes with the record grown by one: framing intact, so only the bound refuses it
    const grown = grow(atLimit, RECORD_LEN, 1)
    assert.equal((grown[RECORD_LEN] << 8) | grown[RECORD_LEN + 1], 785)
    assert.deepEqual(decodeMessage(grown, bob.signer.publicKey), { ok: false, reason: 'length' })
    // control: growing a smaller record by one is read (with a failing signature), so the refusal above is the bound's
    const control = decodeMessage(grow(make(700), RECORD_LEN, 1), bob.signer.publicKey)
    assert.ok(control.ok && !control.signatureValid)
  })

  it('a well-framed 561-byte (Sphinx v1) reply block is refused (length); only 0 and 529 are read', () => {
    const withBlock = encodeMessage(createMessage({ senderNick: 'alice', senderIdentityKey: alice.signer.publicKey, text: 'hello', nameRecord: bytes(3), replyBlock: bytes(REPLY_BLOCK_BYTES) }), alice.signer, bob.signer.publicKey)
    const decoded = decodeMessage(withBlock, bob.signer.publicKey)
    assert.ok(decoded.ok && decoded.signatureValid && decoded.message.replyBlock.length === 529)
    for (const extra of [32, -1, 1]) {
      const b = extra > 0 ? grow(withBlock, REPLY_LEN, extra) : new Uint8Array([...withBlock.subarray(0, REPLY_LEN + 2 + 528), ...withBlock.subarray(REPLY_LEN + 2 + 529)])
      if (extra < 0) { b[REPLY_LEN] = 0x02; b[REPLY_LEN + 1] = 0x10 }
      assert.deepEqual(decodeMessage(b, bob.signer.publicKey), { ok: false, reason: 'length' }, `block of ${529 + extra}`)
    }
  })
})

describe('build-time limits', () => {
  const key = ed25519SignerFromSeed(generateEd25519Seed()).publicKey
  const base = { senderNick: 'bob', senderIdentityKey: key, text: 'hi' }

  it('nick rules', () => {
    for (const nick of ['a', 'a'.repeat(32), 'bob_the-2nd', '0', '-_-']) assert.equal(validateNick(nick), true, nick)
    for (const nick of ['', 'a'.repeat(33), 'Bob', 'bob smith', 'bøb', 'bob\n', 'bob.x', 'ｂob', 42, null, undefined]) {
      assert.equal(validateNick(nick), false, String(nick))
      assert.throws(() => assertValidNick(nick), { name: 'InvalidNickError' })
    }
    assert.throws(() => createMessage({ ...base, senderNick: 'Bob' }), { name: 'InvalidNickError' })
  })

  it('text limits are counted in UTF-8 bytes', () => {
    createMessage({ ...base, text: 'x'.repeat(MAX_TEXT_BYTES) })
    createMessage({ ...base, text: '€'.repeat(341) }) // 1023 bytes
    assert.throws(() => createMessage({ ...base, text: 'x'.repeat(MAX_TEXT_BYTES + 1) }), { name: 'TextTooLongError' })
    assert.throws(() => createMessage({ ...base, text: '€'.repeat(342) }), { name: 'TextTooLongError' })
    assert.throws(() => createMessage({ ...base, text: 'a\u0000b' }), { name: 'InvalidTextError' })
    assert.throws(() => createMessage({ ...base, text: 'lone \uD800 surrogate' }), { name: 'InvalidTextError' })
  })

  it('other fields', () => {
    createMessage({ ...base, nameRecord: new Uint8Array(MAX_NAME_RECORD_BYTES) })
    assert.throws(() => createMessage({ ...base, nameRecord: new Uint8Array(MAX_NAME_RECORD_BYTES + 1) }), { name: 'NameRecordTooLargeError' })
    assert.throws(() => createMessage({ ...base, nameRecord: [1] as unknown as Uint8Array }), { name: 'NameRecordTooLargeError' })
    for (const n of [1, 100, 528, 530, 561, 700]) {
      assert.throws(() => createMessage({ ...base, replyBlock: new Uint8Array(n) }), { name: 'InvalidReplyBlockError' }, String(n))
    }
    assert.throws(() => createMessage({ ...base, replyBlock: [1] as unknown as Uint8Array }), { name: 'InvalidReplyBlockError' })
    assert.throws(() => createMessage({ ...base, id: new Uint8Array(15) }), { name: 'InvalidMessageIdError' })
    assert.throws(() => createMessage({ ...base, id: 'x' as unknown as Uint8Array }), { name: 'InvalidMessageIdError' })
    assert.throws(() => createMessage({ ...base, senderIdentityKey: new Uint8Array(33) }), { name: 'InvalidKeyError' })
    for (const timestamp of [-1, 1.5, Number.NaN, 2 ** 53]) {
      assert.throws(() => createMessage({ ...base, timestamp }), { name: 'InvalidTimestampError' })
    }
    assert.throws(() => ed25519SignerFromSeed(new Uint8Array(31)), { name: 'InvalidKeyError' })
    assert.throws(() => fingerprint(new Uint8Array(31)), { name: 'InvalidKeyError' })
  })

  it('a message mutated after creation is still checked when sealed', () => {
    const signer = ed25519SignerFromSeed(generateEd25519Seed())
    const msg = createMessage({ ...base, senderIdentityKey: signer.publicKey })
    msg.text = 'x'.repeat(MAX_TEXT_BYTES + 1)
    assert.throws(() => sealMessage(msg, signer, user().to), { name: 'TextTooLongError' })
  })
})

describe('receipts', () => {
  it('a batched receipt round-trips sealed and verifies only for its signer and its addressee', () => {
    const { alice, bob, carol } = setup()
    const ids = [bytes(16), bytes(16), bytes(16)]
    const receipt = createReceipt(ids, bob.signer, alice.signer.publicKey)
    assert.equal(encodeReceipt(receipt).length, 2 + 3 * 16 + 64)
    const sealed = sealReceipt(receipt, alice.to)
    const opened = openSealed(sealed, alice.keys, alice.signer.publicKey)
    assert.ok(opened.ok && opened.type === 'receipt')
    assert.deepEqual(opened.receipt, receipt)
    assert.deepEqual(opened.ephemeralKey, sealEphemeralKey(sealed))
    assert.equal(verifyReceipt(opened.receipt, bob.signer.publicKey, alice.signer.publicKey), true)
    // not addressed to carol, not signed by carol or alice
    assert.equal(verifyReceipt(opened.receipt, bob.signer.publicKey, carol.signer.publicKey), false)
    assert.equal(verifyReceipt(opened.receipt, carol.signer.publicKey, alice.signer.publicKey), false)
    assert.equal(verifyReceipt(opened.receipt, alice.signer.publicKey, alice.signer.publicKey), false)
    // a changed, dropped or reordered id breaks it
    assert.equal(verifyReceipt({ ...receipt, messageIds: [ids[0], ids[1], bytes(16)] }, bob.signer.publicKey, alice.signer.publicKey), false)
    assert.equal(verifyReceipt({ ...receipt, messageIds: [ids[0], ids[1]] }, bob.signer.publicKey, alice.signer.publicKey), false)
    assert.equal(verifyReceipt({ ...receipt, messageIds: [ids[1], ids[0], ids[2]] }, bob.signer.publicKey, alice.signer.publicKey), false)
    // a receipt is not a message
    assert.deepEqual(openMessage(sealed, alice.keys, alice.signer.publicKey), { ok: false, reason: 'type' })
  })

  it('a message signature is not a receipt signature (domain separation)', () => {
    const { alice, bob, msg } = setup()
    const encoded = encodeMessage(msg, alice.signer, bob.signer.publicKey)
    const fake = { messageIds: [msg.id], signature: encoded.subarray(encoded.length - 64) }
    assert.equal(verifyReceipt(fake, alice.signer.publicKey, bob.signer.publicKey), false)
  })

  it('every single-bit flip of an encoded receipt is refused or does not verify', () => {
    const { alice, bob } = setup()
    const receipt = createReceipt([bytes(16), bytes(16)], bob.signer, alice.signer.publicKey)
    const encoded = encodeReceipt(receipt)
    for (let bit = 0; bit < encoded.length * 8; bit++) {
      const flipped = encoded.slice()
      flipped[bit >>> 3] ^= 1 << (bit & 7)
      const decoded = decodeReceipt(flipped)
      assert.ok(!decoded.ok || !verifyReceipt(decoded.receipt, bob.signer.publicKey, alice.signer.publicKey), `bit ${bit} still verifies`)
    }
  })

  it('limits: 1..32 distinct ids', () => {
    const { alice, bob } = setup()
    const to = alice.signer.publicKey
    const id = bytes(16)
    assert.equal(encodeReceipt(createReceipt([id], bob.signer, to)).length, MIN_RECEIPT_BYTES)
    const many = Array.from({ length: MAX_RECEIPT_IDS }, () => bytes(16))
    const big = encodeReceipt(createReceipt(many, bob.signer, to))
    assert.equal(big.length, MAX_RECEIPT_BYTES)
    assert.throws(() => createReceipt([], bob.signer, to), { name: 'InvalidReceiptError' })
    assert.throws(() => createReceipt([...many, bytes(16)], bob.signer, to), { name: 'InvalidReceiptError' })
    assert.throws(() => createReceipt([id, id], bob.signer, to), { name: 'InvalidReceiptError' })
    assert.throws(() => createReceipt([new Uint8Array(8)], bob.signer, to), { name: 'InvalidMessageIdError' })
    assert.throws(() => createReceipt([id], bob.signer, new Uint8Array(31)), { name: 'InvalidKeyError' })
    const two = encodeReceipt(createReceipt([id, bytes(16)], bob.signer, to))
    const cases: Array<[Uint8Array, string]> = [
      [new Uint8Array(0), 'length'],
      [Uint8Array.of(1, ...two.subarray(1)), 'version'],
      [Uint8Array.of(2, 0, ...two.subarray(2)), 'count'],
      [Uint8Array.of(2, 33, ...big.subarray(2)), 'count'],
      [Uint8Array.of(2, 3, ...two.subarray(2)), 'length'],
      [Uint8Array.of(2, 2, ...id, ...id, ...two.subarray(34)), 'duplicate'],
      [new Uint8Array([...two, 0]), 'length'],
      [two.subarray(0, two.length - 1), 'length'],
      [new Uint8Array([...big, ...bytes(16)]), 'length']
    ]
    for (const [input, reason] of cases) assert.deepEqual(decodeReceipt(input), { ok: false, reason })
  })
})

describe('envelopes', () => {
  it('type byte then the body; unknown types and empty input rejected', () => {
    const { alice, bob, msg } = setup()
    const encoded = encodeMessage(msg, alice.signer, bob.signer.publicKey)
    const env = encodeEnvelope({ type: 'message', encoded })
    assert.deepEqual(env, new Uint8Array([1, ...encoded]))
    const decoded = decodeEnvelope(env, bob.signer.publicKey)
    assert.ok(decoded.ok && decoded.type === 'message' && decoded.signatureValid)
    assert.deepEqual(decoded.message, msg)
    const receipt = createReceipt([msg.id], bob.signer, alice.signer.publicKey)
    const r = decodeEnvelope(encodeEnvelope({ type: 'receipt', receipt }), alice.signer.publicKey)
    assert.ok(r.ok && r.type === 'receipt')
    assert.deepEqual(r.receipt, receipt)
    assert.deepEqual(decodeEnvelope(new Uint8Array(0), bob.signer.publicKey), { ok: false, reason: 'length' })
    for (const t of [0, 3, 0xff]) assert.deepEqual(decodeEnvelope(Uint8Array.of(t, ...encoded), bob.signer.publicKey), { ok: false, reason: 'type' })
    // a message body under the receipt type: same version byte, but no receipt is that long
    assert.deepEqual(decodeEnvelope(Uint8Array.of(2, ...encoded), bob.signer.publicKey), { ok: false, reason: 'length' })
    assert.deepEqual(decodeEnvelope(Uint8Array.of(1, ...encoded, 0), bob.signer.publicKey), { ok: false, reason: 'length' })
    assert.throws(() => encodeEnvelope({ type: 'message', encoded: new Uint8Array(10) }), { name: 'EnvelopeTooLargeError' })
    assert.throws(() => sealMessage(msg, alice.signer, bob.to, { maxLength: 100 }), { name: 'EnvelopeTooLargeError' })
  })
})

describe('fingerprint', () => {
  it('is SHA-256 of the key, first 10 bytes in base32 groups of 4', () => {
    assert.equal(fingerprint(new Uint8Array(32)), 'mzuh-vlpy-mk6x-o3ep')
    const key = ed25519SignerFromSeed(generateEd25519Seed()).publicKey
    const fp = fingerprint(key)
    assert.equal(isFingerprint(fp), true)
    assert.equal(normalizeFingerprint(fp.toUpperCase().replaceAll('-', ' ')), fp)
    assert.equal(normalizeFingerprint('abcd-efgh'), undefined)
    assert.equal(normalizeFingerprint('abcd-efgh-ijkl-mno1'), undefined)
  })
})

describe('random input never throws', () => {
  it('10,000 random and mutated inputs to every decoder', () => {
    const { alice, bob, msg } = setup()
    const sealed = sealMessage(msg, alice.signer, bob.to)
    const plain = encodeMessage(msg, alice.signer, bob.signer.publicKey)
    const receipt = encodeEnvelope({ type: 'receipt', receipt: createReceipt([msg.id], bob.signer, alice.signer.publicKey) })
    const seeds = [sealed, plain, receipt]
    const anyKey: KeyForEpoch = () => bob.onion.privateKey
    let opened = 0
    for (let i = 0; i < 10_000; i++) {
      let input: Uint8Array
      if (i % 2 === 0) {
        input = bytes(Math.floor(Math.random() * 2400))
        if (i % 4 === 0 && input.length > 0) input[0] = 2 // get past the version byte
      } else {
        input = seeds[i % 3].slice()
        // 1-4 distinct bytes, each XORed with a non-zero byte: a mutation always changes its byte (a random
        // value written over a byte left it as it was 1 time in 256, and a sealed seed left whole opened)
        const at = new Set<number>()
        for (let tries = 0; at.size < 1 + (i % 4) && tries < 64; tries++) at.add(Math.floor(Math.random() * input.length))
        for (const p of at) input[p] ^= 1 + Math.floor(Math.random() * 255)
        if (i % 5 === 0) input = input.subarray(0, Math.floor(Math.random() * input.length))
        if (i % 7 === 0) input = new Uint8Array([...input, ...bytes(i % 13)])
      }
      const results = [
        openSealed(input, anyKey, bob.signer.publicKey),
        openMessage(input, bob.keys, bob.signer.publicKey),
        decodeMessage(input, bob.signer.publicKey),
        decodeEnvelope(input, bob.signer.publicKey),
        decodeReceipt(input),
        unseal(input, () => input.subarray(0, 32)),
        inspectSeal(input)
      ]
      for (const r of results) assert.equal(typeof r.ok, 'boolean')
      if (results[0].ok) opened++
    }
    assert.equal(opened, 0)
  })
})
