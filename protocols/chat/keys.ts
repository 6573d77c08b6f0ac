/**
 * Raw-key helpers over node:crypto. Keys travel as raw 32-byte strings (RFC 8032 / RFC 7748 encodings);
 * node:crypto wants KeyObjects, so raw keys are wrapped in fixed DER prefixes:
 * - Ed25519 private (PKCS#8, RFC 8410): 302e020100300506032b657004220420 || seed(32)
 * - Ed25519 public  (SPKI,  RFC 8410): 302a300506032b6570032100 || key(32)
 * - X25519 private  (PKCS#8, RFC 8410): 302e020100300506032b656e04220420 || scalar(32)
 * - X25519 public   (SPKI,  RFC 8410): 302a300506032b656e032100 || key(32)
 */
import {
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  randomBytes,
  sign as cryptoSign,
  verify as cryptoVerify,
  type KeyObject
} from 'node:crypto'
import { ED25519_SEED_BYTES, IDENTITY_KEY_BYTES, ONION_KEY_BYTES, SIGNATURE_BYTES } from './constants.ts'
import { copy, isBytes } from './bytes.ts'
import { InvalidKeyError } from './errors.ts'
import type { Signer } from './types.ts'

const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex')
const X25519_SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex')
/** Both SPKI prefixes are 12 bytes, both PKCS#8 prefixes 16. */
const SPKI_PREFIX_BYTES = 12
const PKCS8_PREFIX_BYTES = 16

function checkLength (bytes: Uint8Array, length: number, what: string): void {
  if (!isBytes(bytes) || bytes.length !== length) throw new InvalidKeyError(`${what} must be ${length} raw bytes`)
}

function der (prefix: Buffer, raw: Uint8Array): Buffer {
  return Buffer.concat([prefix, raw])
}

function rawPublic (key: KeyObject): Uint8Array {
  const spki = key.export({ format: 'der', type: 'spki' })
  return copy(spki.subarray(SPKI_PREFIX_BYTES))
}

function rawPrivate (key: KeyObject): Uint8Array {
  const pkcs8 = key.export({ format: 'der', type: 'pkcs8' })
  return copy(pkcs8.subarray(PKCS8_PREFIX_BYTES))
}

/** A fresh random Ed25519 seed (the 32-byte RFC 8032 private key). */
export function generateEd25519Seed (): Uint8Array {
  return copy(randomBytes(ED25519_SEED_BYTES))
}

/**
 * A synchronous Ed25519 signer from a raw 32-byte seed.
 * A libp2p Ed25519 private key's `raw` is seed || public key (64 bytes): pass its first 32 bytes.
 */
export function ed25519SignerFromSeed (seed: Uint8Array): Signer {
  checkLength(seed, ED25519_SEED_BYTES, 'Ed25519 seed')
  const privateKey = createPrivateKey({ key: der(ED25519_PKCS8_PREFIX, seed), format: 'der', type: 'pkcs8' })
  const publicKey = rawPublic(createPublicKey(privateKey))
  return {
    publicKey,
    sign (data: Uint8Array): Uint8Array {
      return copy(cryptoSign(null, data, privateKey))
    }
  }
}

/** Verifies an Ed25519 signature with a raw 32-byte public key. Returns false, never throws, on any bad input. */
export function ed25519Verify (publicKey: Uint8Array, data: Uint8Array, signature: Uint8Array): boolean {
  if (!isBytes(publicKey) || publicKey.length !== IDENTITY_KEY_BYTES) return false
  if (!isBytes(signature) || signature.length !== SIGNATURE_BYTES) return false
  if (!isBytes(data)) return false
  try {
    const key = createPublicKey({ key: der(ED25519_SPKI_PREFIX, publicKey), format: 'der', type: 'spki' })
    return cryptoVerify(null, data, key, signature)
  } catch {
    return false
  }
}

export interface X25519KeyPair {
  /** raw 32 bytes */
  publicKey: Uint8Array
  /** raw 32 bytes (the RFC 7748 scalar, before clamping) */
  privateKey: Uint8Array
}

export function generateX25519KeyPair (): X25519KeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('x25519')
  return { publicKey: rawPublic(publicKey), privateKey: rawPrivate(privateKey) }
}

export function x25519PrivateKeyObject (privateKey: Uint8Array): KeyObject {
  checkLength(privateKey, ONION_KEY_BYTES, 'X25519 private key')
  return createPrivateKey({ key: der(X25519_PKCS8_PREFIX, privateKey), format: 'der', type: 'pkcs8' })
}

export function x25519PublicKeyObject (publicKey: Uint8Array): KeyObject {
  checkLength(publicKey, ONION_KEY_BYTES, 'X25519 public key')
  return createPublicKey({ key: der(X25519_SPKI_PREFIX, publicKey), format: 'der', type: 'spki' })
}

export function x25519PublicFromPrivate (privateKey: Uint8Array): Uint8Array {
  return x25519RawPublicOf(x25519PrivateKeyObject(privateKey))
}

/** The raw 32-byte public key of an X25519 private KeyObject. */
export function x25519RawPublicOf (privateKey: KeyObject): Uint8Array {
  return rawPublic(createPublicKey(privateKey))
}

/**
 * X25519(private, public). Throws if the result is all zeros (a low-order public key, RFC 7748 section 6.1):
 * OpenSSL refuses that derivation itself, and the check here keeps the rule explicit.
 */
export function x25519 (privateKey: KeyObject, publicKey: KeyObject): Uint8Array {
  const shared = copy(diffieHellman({ privateKey, publicKey }))
  let acc = 0
  for (const b of shared) acc |= b
  if (acc === 0) throw new InvalidKeyError('X25519 shared secret is all zeros')
  return shared
}
