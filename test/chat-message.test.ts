import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import {
  MAX_ENCODED_MESSAGE,
  MAX_ENVELOPE,
  MAX_REPLY_BLOCK,
  MAX_SEALED_MESSAGE,
  MAX_TEXT_BYTES,
  ONION_PAYLOAD_CAPACITY,
  RECEIPT_BYTES,
  SEALED_OVERHEAD,
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
  isFingerprint,
  normalizeFingerprint,
  openMessage,
  seal,
  sealMessage,
  unseal,
  validateNick,
  verifyReceipt,
  type ChatMessage,
  type Signer
} from '../protocols/chat/index.ts'

function bytes (n: number): Uint8Array {
  return new Uint8Array(randomBytes(n))
}

function setup (): { alice: Signer, bob: Signer, bobOnion: ReturnType<typeof generateX25519KeyPair>, msg: ChatMessage } {
  const alice = ed25519SignerFromSeed(generateEd25519Seed())
  const bob = ed25519SignerFromSeed(generateEd25519Seed())
  const bobOnion = generateX25519KeyPair()
  const msg = createMessage({
    senderNick: 'alice',
    senderIdentityKey: alice.publicKey,
    text: 'hello bob, ça va? 👋',
    replyBlock: bytes(64)
  })
  return { alice, bob, bobOnion, msg }
}

/** Opens and asserts success, narrowing the result. */
function mustOpen (sealed: Uint8Array, key: Uint8Array): { message: ChatMessage, signatureValid: boolean } {
  const opened = openMessage(sealed, key)
  assert.ok(opened.ok, opened.ok ? '' : `open failed: ${opened.reason}`)
  return opened
}

describe('sizes', () => {
  it('the largest message, sealed and enveloped, fits the onion payload', () => {
    assert.equal(SEALED_OVERHEAD, 49)
    assert.equal(MAX_ENCODED_MESSAGE, 1882)
    assert.equal(MAX_SEALED_MESSAGE, 1931)
    assert.equal(MAX_ENVELOPE, 1934)
    assert.ok(MAX_ENVELOPE < ONION_PAYLOAD_CAPACITY)
    const { alice, bobOnion } = setup()
    const msg = createMessage({
      senderNick: 'a'.repeat(32),
      senderIdentityKey: alice.publicKey,
      text: 'é'.repeat(MAX_TEXT_BYTES / 2),
      replyBlock: bytes(MAX_REPLY_BLOCK)
    })
    const sealed = sealMessage(msg, alice, bobOnion.publicKey)
    assert.equal(sealed.length, MAX_SEALED_MESSAGE)
    assert.equal(encodeEnvelope({ type: 'message', sealed }).length, MAX_ENVELOPE)
  })
})

describe('message round trip', () => {
  it('seals and opens to the same message with a valid signature', () => {
    const { alice, bobOnion, msg } = setup()
    const sealed = sealMessage(msg, alice, bobOnion.publicKey)
    assert.equal(sealed.length, encodeMessage(msg, alice).length + SEALED_OVERHEAD)
    const opened = mustOpen(sealed, bobOnion.privateKey)
    assert.equal(opened.signatureValid, true)
    assert.deepEqual(opened.message, msg)
  })

  it('keeps empty text and reply block, a leading BOM and the largest timestamp', () => {
    const { alice, bobOnion } = setup()
    for (const text of ['', '\uFEFFbom', 'x'.repeat(MAX_TEXT_BYTES)]) {
      const msg = createMessage({ senderNick: 'a', senderIdentityKey: alice.publicKey, text, timestamp: Number.MAX_SAFE_INTEGER })
      const opened = mustOpen(sealMessage(msg, alice, bobOnion.publicKey), bobOnion.privateKey)
      assert.deepEqual(opened.message, msg)
      assert.equal(opened.signatureValid, true)
    }
  })

  it('two seals of one message differ (fresh ephemeral key)', () => {
    const { alice, bobOnion, msg } = setup()
    const a = sealMessage(msg, alice, bobOnion.publicKey)
    const b = sealMessage(msg, alice, bobOnion.publicKey)
    assert.notDeepEqual(a, b)
  })

  it('accepts Buffer input and returns plain Uint8Arrays', () => {
    const { alice, bobOnion, msg } = setup()
    const sealed = Buffer.from(sealMessage(msg, alice, bobOnion.publicKey))
    const opened = mustOpen(sealed, Buffer.from(bobOnion.privateKey))
    assert.equal(Object.getPrototypeOf(opened.message.id), Uint8Array.prototype)
    assert.deepEqual(opened.message, msg)
  })
})

describe('signatures', () => {
  it('a signature by another key than the claimed identity key gives signatureValid false', () => {
    const { alice, bob, bobOnion, msg } = setup()
    // a signer that claims alice's key but signs with bob's
    const liar: Signer = { publicKey: alice.publicKey, sign: (data) => bob.sign(data) }
    const opened = mustOpen(sealMessage(msg, liar, bobOnion.publicKey), bobOnion.privateKey)
    assert.equal(opened.signatureValid, false)
    assert.deepEqual(opened.message, msg)
  })

  it('refuses to sign with a signer that is not the sender', () => {
    const { bob, bobOnion, msg } = setup()
    assert.throws(() => sealMessage(msg, bob, bobOnion.publicKey), { name: 'SignerMismatchError' })
  })

  it('a tampered plaintext field breaks the signature', () => {
    const { alice, msg } = setup()
    const encoded = encodeMessage(msg, alice)
    // flip the low bit of the timestamp: the message still decodes, the signature no longer matches
    const timestampEnd = 1 + 16 + 1 + msg.senderNick.length + 32 + 8
    encoded[timestampEnd - 1] ^= 1
    const decoded = decodeMessage(encoded)
    assert.ok(decoded.ok)
    assert.equal(decoded.signatureValid, false)
  })

  it('ed25519Verify checks the domain-separated input and never throws', () => {
    const { alice, msg } = setup()
    const encoded = encodeMessage(msg, alice)
    const sig = encoded.subarray(encoded.length - 64)
    const fields = encoded.subarray(0, encoded.length - 64)
    assert.equal(ed25519Verify(alice.publicKey, fields, sig), false)
    assert.equal(ed25519Verify(new Uint8Array(32).fill(0xff), fields, sig), false)
    assert.equal(ed25519Verify(new Uint8Array(3), fields, sig), false)
  })

  it('the seed fixes the key (RFC 8032 test vector 1)', () => {
    const seed = Buffer.from('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60', 'hex')
    const signer = ed25519SignerFromSeed(seed)
    assert.equal(Buffer.from(signer.publicKey).toString('hex'), 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a')
    assert.equal(
      Buffer.from(signer.sign(new Uint8Array(0))).toString('hex'),
      'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b'
    )
  })
})

describe('tampering and wrong keys', () => {
  it('every single-bit flip of a sealed message fails to open', () => {
    const { alice, bobOnion, msg } = setup()
    const sealed = sealMessage(msg, alice, bobOnion.publicKey)
    const reasons = new Map<string, number>()
    for (let bit = 0; bit < sealed.length * 8; bit++) {
      const flipped = sealed.slice()
      flipped[bit >>> 3] ^= 1 << (bit & 7)
      const opened = openMessage(flipped, bobOnion.privateKey)
      assert.equal(opened.ok, false, `bit ${bit} opened`)
      if (!opened.ok) reasons.set(opened.reason, (reasons.get(opened.reason) ?? 0) + 1)
    }
    assert.deepEqual([...reasons.keys()].sort(), ['decrypt', 'version'])
    assert.equal(reasons.get('version'), 8)
  })

  it('rejects every truncation and extension', () => {
    const { alice, bobOnion, msg } = setup()
    const sealed = sealMessage(msg, alice, bobOnion.publicKey)
    for (let n = 0; n < sealed.length; n++) {
      const opened = openMessage(sealed.subarray(0, n), bobOnion.privateKey)
      assert.equal(opened.ok, false, `truncated to ${n} opened`)
    }
    for (const extra of [Uint8Array.of(0), Uint8Array.of(1), bytes(16)]) {
      const longer = new Uint8Array([...sealed, ...extra])
      assert.equal(openMessage(longer, bobOnion.privateKey).ok, false)
    }
  })

  it('the wrong recipient key fails with decrypt', () => {
    const { alice, bobOnion, msg } = setup()
    const sealed = sealMessage(msg, alice, bobOnion.publicKey)
    const eve = generateX25519KeyPair()
    assert.deepEqual(openMessage(sealed, eve.privateKey), { ok: false, reason: 'decrypt' })
    assert.deepEqual(openMessage(sealed, new Uint8Array(31)), { ok: false, reason: 'key' })
  })

  it('an ephemeral key of low order is rejected, a recipient key of low order refused', () => {
    const { bobOnion } = setup()
    const sealed = seal(bytes(200), bobOnion.publicKey)
    sealed.fill(0, 1, 33)
    assert.deepEqual(unseal(sealed, bobOnion.privateKey), { ok: false, reason: 'decrypt' })
    assert.throws(() => seal(bytes(10), new Uint8Array(32)), { name: 'InvalidKeyError' })
  })
})

describe('strict decoding of the plaintext message', () => {
  // offsets into the encoded message of setup() (nick 'alice', 5 bytes)
  const NICK_LEN = 17
  const TS = 18 + 5 + 32
  const TEXT_LEN = TS + 8

  function encoded (): Uint8Array {
    const { alice, msg } = setup()
    return encodeMessage(msg, alice)
  }

  const cases: Array<[string, (b: Uint8Array) => Uint8Array, string]> = [
    ['unknown version', (b) => { b[0] = 2; return b }, 'version'],
    ['empty', () => new Uint8Array(0), 'length'],
    ['trailing byte', (b) => new Uint8Array([...b, 0]), 'length'],
    ['missing byte', (b) => b.subarray(0, b.length - 1), 'length'],
    ['nick length 0', (b) => { b[NICK_LEN] = 0; return b }, 'nick'],
    ['nick length 33', (b) => { b[NICK_LEN] = 33; return b }, 'nick'],
    // the sixth byte would be the key's first, which is random: make it a byte no nick may hold
    ['nick length longer than the nick', (b) => { b[NICK_LEN] = 6; b[NICK_LEN + 6] = 0x2e; return b }, 'nick'],
    ['upper-case nick', (b) => { b[NICK_LEN + 1] = 0x41; return b }, 'nick'],
    ['timestamp above 2^53', (b) => { b[TS] = 0x01; return b }, 'timestamp'],
    ['text length above 1024', (b) => { b[TEXT_LEN] = 0x04; b[TEXT_LEN + 1] = 0x01; return b }, 'length'],
    ['text length past the end', (b) => { b[TEXT_LEN] = 0x03; return b }, 'length'],
    ['invalid UTF-8', (b) => { b[TEXT_LEN + 2] = 0xff; return b }, 'utf8'],
    ['overlong UTF-8', (b) => { b[TEXT_LEN + 2] = 0xc0; b[TEXT_LEN + 3] = 0x80; return b }, 'utf8'],
    ['NUL in text', (b) => { b[TEXT_LEN + 2] = 0; return b }, 'text'],
    ['not bytes', () => 'hello' as unknown as Uint8Array, 'input']
  ]
  for (const [name, mutate, reason] of cases) {
    it(`${name} -> ${reason}`, () => {
      assert.deepEqual(decodeMessage(mutate(encoded())), { ok: false, reason })
    })
  }
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
    assert.throws(() => createMessage({ ...base, senderNick: 'a'.repeat(33) }), { name: 'InvalidNickError' })
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
    assert.throws(() => createMessage({ ...base, replyBlock: new Uint8Array(MAX_REPLY_BLOCK + 1) }), { name: 'ReplyBlockTooLargeError' })
    assert.throws(() => createMessage({ ...base, id: new Uint8Array(15) }), { name: 'InvalidMessageIdError' })
    assert.throws(() => createMessage({ ...base, id: 'x' as unknown as Uint8Array }), { name: 'InvalidMessageIdError' })
    assert.throws(() => createMessage({ ...base, replyBlock: [1] as unknown as Uint8Array }), { name: 'ReplyBlockTooLargeError' })
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
    assert.throws(() => sealMessage(msg, signer, generateX25519KeyPair().publicKey), { name: 'TextTooLongError' })
  })
})

describe('receipts and envelopes', () => {
  it('a receipt round-trips through an envelope and verifies only under the recipient key', () => {
    const { alice, bob, msg } = setup()
    const receipt = createReceipt(msg.id, bob)
    assert.equal(encodeReceipt(receipt).length, RECEIPT_BYTES)
    const decoded = decodeEnvelope(encodeEnvelope({ type: 'receipt', receipt }))
    assert.ok(decoded.ok && decoded.envelope.type === 'receipt')
    assert.deepEqual(decoded.envelope.receipt, receipt)
    assert.equal(verifyReceipt(decoded.envelope.receipt, bob.publicKey), true)
    assert.equal(verifyReceipt(decoded.envelope.receipt, alice.publicKey), false)
    const other = { ...receipt, messageId: bytes(16) }
    assert.equal(verifyReceipt(other, bob.publicKey), false)
    // a message signature is not a receipt signature (domain separation)
    const encoded = encodeMessage(msg, alice)
    assert.equal(verifyReceipt({ messageId: msg.id, signature: encoded.subarray(encoded.length - 64) }, alice.publicKey), false)
  })

  it('a sealed message round-trips through a padded envelope', () => {
    const { alice, bobOnion, msg } = setup()
    const sealed = sealMessage(msg, alice, bobOnion.publicKey)
    const payload = encodeEnvelope({ type: 'message', sealed }, { padTo: ONION_PAYLOAD_CAPACITY })
    assert.equal(payload.length, ONION_PAYLOAD_CAPACITY)
    assert.deepEqual(decodeEnvelope(payload), { ok: false, reason: 'length' })
    const decoded = decodeEnvelope(payload, { padded: true })
    assert.ok(decoded.ok && decoded.envelope.type === 'message')
    assert.deepEqual(mustOpen(decoded.envelope.sealed, bobOnion.privateKey).message, msg)
    payload[payload.length - 1] = 1
    assert.deepEqual(decodeEnvelope(payload, { padded: true }), { ok: false, reason: 'padding' })
    assert.throws(() => encodeEnvelope({ type: 'message', sealed }, { padTo: 100 }), { name: 'EnvelopeTooLargeError' })
  })

  it('rejects bad envelopes and receipts', () => {
    const { bob, msg } = setup()
    const good = encodeEnvelope({ type: 'receipt', receipt: createReceipt(msg.id, bob) })
    assert.deepEqual(decodeEnvelope(new Uint8Array(0)), { ok: false, reason: 'length' })
    assert.deepEqual(decodeEnvelope(Uint8Array.of(9, 0, 0)), { ok: false, reason: 'type' })
    assert.deepEqual(decodeEnvelope(good.subarray(0, good.length - 1)), { ok: false, reason: 'length' })
    assert.deepEqual(decodeEnvelope(new Uint8Array([...good, 0])), { ok: false, reason: 'length' })
    const badVersion = good.slice()
    badVersion[3] = 7
    assert.deepEqual(decodeEnvelope(badVersion), { ok: false, reason: 'version' })
    assert.deepEqual(decodeEnvelope(Uint8Array.of(1, 0, 3, 1, 2, 3)), { ok: false, reason: 'length' })
    assert.deepEqual(decodeReceipt(new Uint8Array([...encodeReceipt(createReceipt(msg.id, bob)), 0])), { ok: false, reason: 'length' })
    assert.throws(() => createReceipt(new Uint8Array(8), bob), { name: 'InvalidMessageIdError' })
  })
})

describe('fingerprint', () => {
  it('is SHA-256 of the key, first 10 bytes in base32 groups of 4', () => {
    // SHA-256 of 32 zero bytes = 66687aadf862bd776c8fc18b8e9f8e20...
    // 66687aadf862bd776c8f in base32 (RFC 4648, lower case) = mzuhvlpymk6xo3ep
    assert.equal(fingerprint(new Uint8Array(32)), 'mzuh-vlpy-mk6x-o3ep')
    const key = ed25519SignerFromSeed(generateEd25519Seed()).publicKey
    const fp = fingerprint(key)
    assert.equal(isFingerprint(fp), true)
    assert.equal(fingerprint(key), fp)
    assert.equal(normalizeFingerprint(fp.toUpperCase().replaceAll('-', ' ')), fp)
    assert.equal(normalizeFingerprint('abcd-efgh'), undefined)
    assert.equal(normalizeFingerprint('abcd-efgh-ijkl-mno1'), undefined)
  })
})

describe('random input never throws', () => {
  it('10,000 random and mutated inputs to every decoder', () => {
    const { alice, bob, bobOnion, msg } = setup()
    const sealed = sealMessage(msg, alice, bobOnion.publicKey)
    const plain = encodeMessage(msg, alice)
    const envelope = encodeEnvelope({ type: 'receipt', receipt: createReceipt(msg.id, bob) })
    const seeds = [sealed, plain, envelope]
    let opened = 0
    for (let i = 0; i < 10_000; i++) {
      let input: Uint8Array
      if (i % 2 === 0) {
        input = bytes(Math.floor(Math.random() * 2400))
        if (i % 4 === 0 && input.length > 0) input[0] = 1 // get past the version byte
      } else {
        // a valid encoding with a few random bytes changed, cut or extended
        input = seeds[i % 3].slice()
        for (let k = 0; k < 1 + (i % 4); k++) input[Math.floor(Math.random() * input.length)] = Math.floor(Math.random() * 256)
        if (i % 5 === 0) input = input.subarray(0, Math.floor(Math.random() * input.length))
        if (i % 7 === 0) input = new Uint8Array([...input, ...bytes(i % 13)])
      }
      const results = [
        openMessage(input, bobOnion.privateKey),
        decodeMessage(input),
        decodeEnvelope(input),
        decodeEnvelope(input, { padded: true }),
        decodeReceipt(input),
        unseal(input, input.subarray(0, 32))
      ]
      for (const r of results) assert.equal(typeof r.ok, 'boolean')
      if (results[0].ok) opened++
    }
    assert.equal(opened, 0)
  })
})
