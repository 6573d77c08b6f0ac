/**
 * The crypto under every Noise connection (`@chainsafe/libp2p-noise`'s pluggable ICryptoInterface):
 * ChaCha20-Poly1305 (IETF, RFC 8439) and X25519 from libsodium through `sodium-native`, SHA-256 from
 * node:crypto, HKDF from the library's own implementation. The wire is the same Noise XX as the
 * library's default crypto: a node with this crypto talks to any libp2p peer (test/noise-crypto.test.ts
 * checks byte equality with the library's crypto and a connection between the two).
 *
 * Why: the default crypto runs ChaCha20-Poly1305 through node:crypto for messages of 1,200 bytes and
 * more, and `createCipheriv` + `setAAD` + `final` + `getAuthTag` costs ~35-40 us per 3 KiB message on
 * this machine, mostly object set-up; libsodium seals the same message in ~5-7 us (bench/forwarding.ts
 * profile: Noise was half of a relay's CPU per forwarded frame). Messages under 1,200 bytes (window
 * updates, pings) went through a WebAssembly implementation at ~2.6 us; libsodium is as fast there.
 *
 * Limits: a Noise message is at most 65,535 bytes (the library splits larger writes); decryption writes
 * the plaintext over the ciphertext when the library hands a destination (it does, to save a copy).
 * Decryption failure throws, and the library then aborts the connection.
 */
import { createHash, randomBytes } from 'node:crypto'
import { pureJsCrypto } from '@chainsafe/libp2p-noise'
import type { ICryptoInterface } from '@chainsafe/libp2p-noise'
import { sodium, x25519BaseRaw, x25519Raw } from '../protocols/crypto/keys.ts'

const TAG_BYTES = 16

/** Thrown when a Noise transport message does not authenticate (the library aborts the connection). */
export class NoiseDecryptError extends Error {
  constructor (message = 'Noise message failed authentication') {
    super(message)
    this.name = 'NoiseDecryptError'
  }
}

/** What the library hands over: one buffer or a list of them (a Uint8ArrayList). */
type Bytes = Parameters<ICryptoInterface['hashSHA256']>[0]

function contiguous (data: Bytes): Uint8Array {
  return data instanceof Uint8Array ? data : data.subarray()
}

/** Do `a` and `b` share bytes without starting at the same one? (libsodium may write in place only at the same start.) */
function overlapsShifted (a: Uint8Array, b: Uint8Array): boolean {
  if (a.buffer !== b.buffer || a.byteOffset === b.byteOffset) return false
  return a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength
}

export const sodiumNoiseCrypto: ICryptoInterface = {
  hashSHA256 (data) {
    const h = createHash('sha256')
    if (data instanceof Uint8Array) h.update(data)
    else for (const buf of data) h.update(buf)
    return h.digest()
  },
  getHKDF: pureJsCrypto.getHKDF,
  generateX25519KeyPair () {
    const privateKey = new Uint8Array(randomBytes(32))
    return { privateKey, publicKey: x25519BaseRaw(privateKey) }
  },
  generateX25519KeyPairFromSeed (seed) {
    return { privateKey: seed, publicKey: x25519BaseRaw(seed) }
  },
  generateX25519SharedKey (privateKey, publicKey) {
    // throws InvalidKeyError on a small-order public key (all-zero result), as node:crypto does
    return x25519Raw(contiguous(privateKey), contiguous(publicKey))
  },
  chaCha20Poly1305Encrypt (plaintext, nonce, ad, k) {
    const length = plaintext.byteLength
    const out = Buffer.allocUnsafe(length + TAG_BYTES)
    // the plaintext (often a list: Yamux header + data) is gathered into the output, sealed in place
    if (plaintext instanceof Uint8Array) out.set(plaintext, 0)
    else {
      let at = 0
      for (const buf of plaintext) { out.set(buf, at); at += buf.byteLength }
    }
    sodium.crypto_aead_chacha20poly1305_ietf_encrypt(out, out.subarray(0, length), ad, null, nonce, k)
    return out
  },
  chaCha20Poly1305Decrypt (ciphertext, nonce, ad, k, dst) {
    const c = contiguous(ciphertext)
    if (c.byteLength < TAG_BYTES) throw new NoiseDecryptError('Noise message shorter than its tag')
    const m = dst != null && dst.byteLength === c.byteLength - TAG_BYTES && !overlapsShifted(dst, c)
      ? dst
      : Buffer.allocUnsafe(c.byteLength - TAG_BYTES)
    try {
      sodium.crypto_aead_chacha20poly1305_ietf_decrypt(m, null, c, ad, nonce, k)
    } catch {
      throw new NoiseDecryptError()
    }
    return m
  }
}
