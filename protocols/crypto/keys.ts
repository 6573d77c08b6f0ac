/**
 * Raw-key handling for the whole project: Ed25519 identity keys and X25519 onion keys travel as raw
 * 32-byte strings (RFC 8032 / RFC 7748 encodings); node:crypto works on KeyObjects. This module is the
 * one place that converts between the two, signs and verifies, and runs X25519.
 *
 * Two routes from raw bytes to a KeyObject:
 * - DER (any Node): the raw key behind the fixed prefixes of RFC 8410:
 *   Ed25519 private (PKCS#8): 302e020100300506032b657004220420 || seed(32)
 *   Ed25519 public  (SPKI):   302a300506032b6570032100 || key(32)
 *   X25519 private  (PKCS#8): 302e020100300506032b656e04220420 || scalar(32)
 *   X25519 public   (SPKI):   302a300506032b656e032100 || key(32)
 * - raw (Node 24): `format: 'raw-public' | 'raw-private'`, the same key without the DER decoder,
 *   ~13 us cheaper per import (bench/sphinx.ts). X25519, on the Sphinx hot path, takes it when Node
 *   has it and falls back to DER otherwise (engines allows Node 22); test/sphinx.test.ts checks that
 *   both routes give the same results.
 *
 * Every import runs through `quietly`: Node 24's key parsing probes its input with isKeyObject and
 * isCryptoKey, which throw and catch an internal error for anything that is not a key yet, and V8's
 * stack-trace capture for those errors is most of an import's cost (about 25 us of 36 us for a raw
 * public key here; `node --cpu-prof bench/sphinx.ts`, frames getKeyObjectSlots and getSlots).
 *
 * Ed25519 signing and verifying on raw keys: libsodium (crypto_sign_detached, crypto_sign_verify_detached),
 * with no KeyObject; see ed25519SignerFromSeed and ed25519Verify for the measurements and the checks.
 *
 * X25519 on raw bytes (`x25519Raw`, `x25519BaseRaw`): libsodium's crypto_scalarmult through
 * `sodium-native` (prebuilt binaries inside the npm package), with no KeyObject at all. Sphinx needs a
 * new scalar and a new point for every packet, and node:crypto can only take them as KeyObjects (a
 * private-key import derives the public key too: one more scalar multiplication). Measured here
 * (onion/SPEC.md section 13): one raw X25519 ~50 us against ~75 us (point import + diffieHellman) or
 * ~110 us (scalar import + diffieHellman) through node:crypto. Both clamp the scalar as RFC 7748 says
 * and give byte-identical results (test/sphinx.test.ts checks it against node:crypto).
 */
import {
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  randomBytes
} from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { createRequire } from 'node:module'

/** Every raw key here (Ed25519 seed and public key, X25519 scalar and point) is 32 bytes. */
export const RAW_KEY_BYTES = 32
/** An Ed25519 signature (RFC 8032). */
export const ED25519_SIGNATURE_BYTES = 64

const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex')
const X25519_SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex')

/** Whether this Node imports and exports `raw-public` / `raw-private` keys (probed once: a capability, not state). */
const RAW_KEY_FORMATS: boolean = (() => {
  try {
    createPublicKey({ key: Buffer.alloc(RAW_KEY_BYTES, 9), format: 'raw-public', asymmetricKeyType: 'x25519' })
    return true
  } catch {
    return false
  }
})()

/** A raw key of the wrong type or length, or an X25519 result that is all zeros. Tests assert on `name`. */
export class InvalidKeyError extends Error {
  static readonly code = 'ERR_INVALID_KEY'
  constructor (message = 'key must be 32 raw bytes') {
    super(message)
    this.name = 'InvalidKeyError'
  }
}

/** Anything that can produce Ed25519 signatures for one identity key. */
export interface Signer {
  /** raw 32-byte Ed25519 public key */
  readonly publicKey: Uint8Array
  /** returns a 64-byte Ed25519 signature over `data` */
  sign(data: Uint8Array): Uint8Array
}

/** A key pair as raw bytes. */
export interface X25519KeyPair {
  /** raw 32 bytes */
  publicKey: Uint8Array
  /** raw 32 bytes (the RFC 7748 scalar, before clamping) */
  privateKey: Uint8Array
}

/**
 * Runs a key import with stack traces off (see the header). A real failure is run again with stack
 * traces on, so callers get exactly the error they got before, stack included.
 */
function quietly<T> (importKey: () => T): T {
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  try {
    return importKey()
  } catch {
    // fall through: repeat with stack traces below
  } finally {
    Error.stackTraceLimit = limit
  }
  return importKey()
}

function checkRaw (raw: Uint8Array, what: string): void {
  if (!(raw instanceof Uint8Array) || raw.length !== RAW_KEY_BYTES) throw new InvalidKeyError(`${what} must be ${RAW_KEY_BYTES} raw bytes`)
}

function asBuffer (bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/** The last 32 bytes of a DER encoding, as a plain Uint8Array (never a view into it). */
function rawTail (der: Buffer): Uint8Array {
  return new Uint8Array(der.subarray(der.length - RAW_KEY_BYTES))
}

// ---- Ed25519 ----

/** A raw 32-byte Ed25519 seed (the RFC 8032 private key) as a KeyObject. */
export function ed25519PrivateKeyObject (seed: Uint8Array): KeyObject {
  checkRaw(seed, 'Ed25519 seed')
  return quietly(() => createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' }))
}

/** A raw 32-byte Ed25519 public key as a KeyObject. */
export function ed25519PublicKeyObject (publicKey: Uint8Array): KeyObject {
  checkRaw(publicKey, 'Ed25519 public key')
  return quietly(() => createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' }))
}

/** A fresh random Ed25519 seed; its public key is `ed25519SignerFromSeed(seed).publicKey`. */
export function generateEd25519Seed (): Uint8Array {
  return new Uint8Array(randomBytes(RAW_KEY_BYTES))
}

/**
 * A synchronous Ed25519 signer from a raw 32-byte seed. Throws InvalidKeyError for anything else.
 * A libp2p Ed25519 private key's `raw` is seed || public key (64 bytes): pass its first 32 bytes.
 *
 * libsodium's crypto_sign_detached (RFC 8032 Ed25519 is deterministic: the same signature as
 * OpenSSL's, byte for byte, tested in test/chat-message.test.ts against node:crypto), ~2x faster here
 * than node:crypto's sign with a KeyObject (issue 13: signing and verifying are on every message's path).
 * The expanded secret key (seed || public key) lives in a Uint8Array of the signer's closure.
 */
export function ed25519SignerFromSeed (seed: Uint8Array): Signer {
  checkRaw(seed, 'Ed25519 seed')
  const publicKey = new Uint8Array(RAW_KEY_BYTES)
  const secretKey = new Uint8Array(2 * RAW_KEY_BYTES)
  sodium.crypto_sign_seed_keypair(publicKey, secretKey, seed)
  return {
    publicKey,
    sign: (data) => {
      const signature = new Uint8Array(ED25519_SIGNATURE_BYTES)
      sodium.crypto_sign_detached(signature, data, secretKey)
      return signature
    }
  }
}

/**
 * Verifies an Ed25519 signature with a raw 32-byte public key. Returns false, never throws, on any bad input.
 *
 * libsodium's crypto_sign_verify_detached: ~50 us against ~110-125 us for node:crypto's verify with a
 * KeyObject import per call (bench/sphinx.ts rows "Ed25519"). An honest signer's signature verifies
 * in both (test/crypto-keys.test.ts cross-checks them); on crafted input libsodium also refuses public
 * keys and R values of small order and non-canonical public-key encodings (checks RFC 8032 section
 * 5.1.7 leaves to the implementation; without them one signature can verify for many messages), and
 * S >= L, as OpenSSL does.
 */
export function ed25519Verify (publicKey: Uint8Array, data: Uint8Array, signature: Uint8Array): boolean {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== RAW_KEY_BYTES) return false
  if (!(signature instanceof Uint8Array) || signature.length !== ED25519_SIGNATURE_BYTES) return false
  if (!(data instanceof Uint8Array)) return false
  try {
    return sodium.crypto_sign_verify_detached(signature, data, publicKey)
  } catch {
    return false
  }
}

// ---- X25519 ----

/** A raw 32-byte X25519 point as a KeyObject, through the SPKI DER prefix (the fallback route). */
export function x25519PublicKeyObjectDer (publicKey: Uint8Array): KeyObject {
  checkRaw(publicKey, 'X25519 public key')
  return quietly(() => createPublicKey({ key: Buffer.concat([X25519_SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' }))
}

/** A raw 32-byte X25519 scalar as a KeyObject, through the PKCS#8 DER prefix (the fallback route). */
export function x25519PrivateKeyObjectDer (privateKey: Uint8Array): KeyObject {
  checkRaw(privateKey, 'X25519 private key')
  return quietly(() => createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, privateKey]), format: 'der', type: 'pkcs8' }))
}

/** A raw 32-byte X25519 point as a KeyObject (raw import when Node has it, else DER). */
export function x25519PublicKeyObject (publicKey: Uint8Array): KeyObject {
  if (!RAW_KEY_FORMATS) return x25519PublicKeyObjectDer(publicKey)
  checkRaw(publicKey, 'X25519 public key')
  return quietly(() => createPublicKey({ key: asBuffer(publicKey), format: 'raw-public', asymmetricKeyType: 'x25519' }))
}

/** A raw 32-byte X25519 scalar as a KeyObject (raw import when Node has it, else DER). OpenSSL clamps on use. */
export function x25519PrivateKeyObject (privateKey: Uint8Array): KeyObject {
  if (!RAW_KEY_FORMATS) return x25519PrivateKeyObjectDer(privateKey)
  checkRaw(privateKey, 'X25519 private key')
  return quietly(() => createPrivateKey({ key: asBuffer(privateKey), format: 'raw-private', asymmetricKeyType: 'x25519' }))
}

/** The raw 32-byte public key of an X25519 KeyObject, public or private. */
export function x25519RawPublicKey (key: KeyObject): Uint8Array {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key
  if (RAW_KEY_FORMATS) return new Uint8Array(publicKey.export({ format: 'raw-public' }))
  return rawTail(publicKey.export({ format: 'der', type: 'spki' }))
}

/** The raw 32-byte scalar of an X25519 private KeyObject. */
export function x25519RawPrivateKey (key: KeyObject): Uint8Array {
  if (RAW_KEY_FORMATS) return new Uint8Array(key.export({ format: 'raw-private' }))
  return rawTail(key.export({ format: 'der', type: 'pkcs8' }))
}

/** The raw public key of a raw X25519 private key. */
export function x25519PublicFromPrivate (privateKey: Uint8Array): Uint8Array {
  return x25519RawPublicKey(x25519PrivateKeyObject(privateKey))
}

/** A fresh X25519 key pair as raw bytes. */
export function generateX25519KeyPair (): X25519KeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('x25519')
  return { publicKey: x25519RawPublicKey(publicKey), privateKey: x25519RawPrivateKey(privateKey) }
}

/**
 * X25519(k, u) (RFC 7748): 32 bytes. Throws when the result would be all zeros (u of small order,
 * RFC 7748 section 6.1): OpenSSL refuses that derivation itself, and the check here keeps the rule explicit.
 */
export function x25519 (privateKey: KeyObject, publicKey: KeyObject): Buffer {
  const shared = diffieHellman({ privateKey, publicKey })
  let acc = 0
  for (let i = 0; i < shared.length; i++) acc |= shared[i]
  if (acc === 0) throw new InvalidKeyError('X25519 shared secret is all zeros')
  return shared
}

// ---- X25519 on raw bytes (libsodium) ----

/**
 * The part of sodium-native (libsodium) this project uses, typed here because the package ships no
 * TypeScript declarations. Every function writes its output into the first argument and throws an
 * Error on failure (crypto_scalarmult: an all-zero result, i.e. a small-order point).
 */
export interface SodiumBinding {
  crypto_scalarmult: (out: Uint8Array, scalar: Uint8Array, point: Uint8Array) => void
  crypto_scalarmult_base: (out: Uint8Array, scalar: Uint8Array) => void
  crypto_sign_seed_keypair: (publicKey: Uint8Array, secretKey: Uint8Array, seed: Uint8Array) => void
  crypto_sign_detached: (signature: Uint8Array, message: Uint8Array, secretKey: Uint8Array) => void
  crypto_sign_verify_detached: (signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array) => boolean
  crypto_stream_chacha20_ietf_xor_ic: (out: Uint8Array, input: Uint8Array, nonce: Uint8Array, counter: number, key: Uint8Array) => void
  /** out = message || tag; returns out's length; message and out may be the same bytes. */
  crypto_aead_chacha20poly1305_ietf_encrypt: (out: Uint8Array, message: Uint8Array, ad: Uint8Array | null, nsec: null, nonce: Uint8Array, key: Uint8Array) => number
  /** throws when the tag does not verify; out and ciphertext may start at the same byte. */
  crypto_aead_chacha20poly1305_ietf_decrypt: (out: Uint8Array, nsec: null, ciphertext: Uint8Array, ad: Uint8Array | null, nonce: Uint8Array, key: Uint8Array) => number
  crypto_hash_sha256: (out: Uint8Array, input: Uint8Array) => void
  crypto_hash_sha256_init: (state: Uint8Array) => void
  crypto_hash_sha256_update: (state: Uint8Array, input: Uint8Array) => void
  crypto_hash_sha256_final: (state: Uint8Array, out: Uint8Array) => void
  crypto_hash_sha256_STATEBYTES: number
  sodium_memzero: (bytes: Uint8Array) => void
}

/** libsodium, loaded once (a native addon: loading it is a capability, not state). */
export const sodium: SodiumBinding = createRequire(import.meta.url)('sodium-native') as SodiumBinding

/**
 * X25519(scalar, point) (RFC 7748) on raw 32-byte strings, written into `out` (32 bytes, may be a
 * view; must not overlap the inputs). The scalar is clamped as RFC 7748 says. Throws InvalidKeyError
 * for inputs of the wrong length and when the result is all zeros (a small-order point).
 */
export function x25519Raw (scalar: Uint8Array, point: Uint8Array, out: Uint8Array = new Uint8Array(RAW_KEY_BYTES)): Uint8Array {
  if (scalar.length !== RAW_KEY_BYTES || point.length !== RAW_KEY_BYTES || out.length !== RAW_KEY_BYTES) throw new InvalidKeyError()
  try {
    sodium.crypto_scalarmult(out, scalar, point)
  } catch {
    throw new InvalidKeyError('X25519 shared secret is all zeros')
  }
  return out
}

/** X25519(scalar, 9): the raw public key of a raw scalar, written into `out`. Throws InvalidKeyError for a wrong length. */
export function x25519BaseRaw (scalar: Uint8Array, out: Uint8Array = new Uint8Array(RAW_KEY_BYTES)): Uint8Array {
  if (scalar.length !== RAW_KEY_BYTES || out.length !== RAW_KEY_BYTES) throw new InvalidKeyError()
  sodium.crypto_scalarmult_base(out, scalar)
  return out
}
