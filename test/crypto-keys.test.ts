/**
 * protocols/crypto/keys.ts's Ed25519 on libsodium (issue 13): RFC 8032's test vectors, byte-identical
 * signatures and the same public keys as node:crypto for random seeds, cross-verification both ways,
 * and crafted inputs it refuses (a small-order public key, S >= L).
 */
import assert from 'node:assert/strict'
import { createPublicKey, randomBytes, sign, verify } from 'node:crypto'
import { describe, it } from 'node:test'
import { ed25519PrivateKeyObject, ed25519SignerFromSeed, ed25519Verify, generateEd25519Seed } from '../protocols/crypto/keys.ts'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const bytes = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'))
const SPKI = Buffer.from('302a300506032b6570032100', 'hex')

/** RFC 8032 section 7.1, TEST 1, 2 and 3: seed, public key, message, signature. */
const RFC8032 = [
  ['9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60', 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a', '',
    'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b'],
  ['4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb', '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c', '72',
    '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00'],
  ['c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7', 'fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025', 'af82',
    '6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a']
] as const

describe('crypto keys: Ed25519 on libsodium', () => {
  it('RFC 8032 test vectors 1-3: public key and signature byte for byte, and they verify', () => {
    for (const [seed, publicKey, message, signature] of RFC8032) {
      const signer = ed25519SignerFromSeed(bytes(seed))
      assert.equal(hex(signer.publicKey), publicKey)
      assert.equal(hex(signer.sign(bytes(message))), signature)
      assert.equal(ed25519Verify(bytes(publicKey), bytes(message), bytes(signature)), true)
    }
  })

  it('the same public keys and signatures as node:crypto for random seeds and messages; each verifies the other', () => {
    for (let i = 0; i < 50; i++) {
      const seed = generateEd25519Seed()
      const message = new Uint8Array(randomBytes(i * 13))
      const signer = ed25519SignerFromSeed(seed)
      const keyObject = ed25519PrivateKeyObject(seed)
      const nodePublic = new Uint8Array(createPublicKey(keyObject).export({ format: 'der', type: 'spki' }).subarray(SPKI.length))
      assert.equal(hex(signer.publicKey), hex(nodePublic))
      const ours = signer.sign(message)
      const theirs = new Uint8Array(sign(null, message, keyObject))
      assert.equal(hex(ours), hex(theirs))
      const publicKeyObject = createPublicKey({ key: Buffer.concat([SPKI, signer.publicKey]), format: 'der', type: 'spki' })
      assert.equal(verify(null, message, publicKeyObject, ours), true)
      assert.equal(ed25519Verify(signer.publicKey, message, theirs), true)
    }
  })

  it('a changed message, signature bit or key does not verify; bad lengths and types are false, never a throw', () => {
    const signer = ed25519SignerFromSeed(generateEd25519Seed())
    const message = new Uint8Array(randomBytes(100))
    const signature = signer.sign(message)
    for (let bit = 0; bit < 512; bit += 37) {
      const bad = signature.slice()
      bad[bit >> 3] ^= 1 << (bit & 7)
      assert.equal(ed25519Verify(signer.publicKey, message, bad), false, `signature bit ${bit}`)
    }
    const changed = message.slice()
    changed[50] ^= 1
    assert.equal(ed25519Verify(signer.publicKey, changed, signature), false)
    assert.equal(ed25519Verify(ed25519SignerFromSeed(generateEd25519Seed()).publicKey, message, signature), false)
    assert.equal(ed25519Verify(signer.publicKey.subarray(1), message, signature), false)
    assert.equal(ed25519Verify(signer.publicKey, message, signature.subarray(1)), false)
    assert.equal(ed25519Verify(signer.publicKey, 'text' as unknown as Uint8Array, signature), false)
    assert.throws(() => ed25519SignerFromSeed(new Uint8Array(31)), { name: 'InvalidKeyError' })
  })

  it('refuses a small-order public key (the identity point) with the signature that fits every message', () => {
    // A = identity (y = 1), R = identity, S = 0: [S]B = R + [k]A holds for any message and any k;
    // libsodium refuses small-order A and R (see ed25519Verify)
    const identity = new Uint8Array(32)
    identity[0] = 1
    const forged = new Uint8Array(64)
    forged[0] = 1
    for (let i = 0; i < 5; i++) assert.equal(ed25519Verify(identity, new Uint8Array(randomBytes(40)), forged), false)
  })

  it('refuses S >= L (a malleated signature), as OpenSSL does', () => {
    const signer = ed25519SignerFromSeed(generateEd25519Seed())
    const message = new Uint8Array(randomBytes(32))
    const signature = signer.sign(message)
    // S + L, little-endian, L = 2^252 + 27742317777372353535851937790883648493
    const L = (1n << 252n) + 27742317777372353535851937790883648493n
    let s = 0n
    for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(signature[i])
    s += L
    const malleated = signature.slice()
    for (let i = 32; i < 64; i++) { malleated[i] = Number(s & 0xffn); s >>= 8n }
    assert.equal(ed25519Verify(signer.publicKey, message, malleated), false)
    const keyObject = createPublicKey({ key: Buffer.concat([SPKI, signer.publicKey]), format: 'der', type: 'spki' })
    assert.equal(verify(null, message, keyObject, malleated), false)
  })
})
