/**
 * Ed25519 and X25519 with raw 32-byte keys over node:crypto, which only takes KeyObjects: raw keys
 * are wrapped in the fixed DER prefixes of RFC 8410 (PKCS#8 for private, SPKI for public).
 */
import { createPrivateKey, createPublicKey, sign, verify } from 'node:crypto'
import type { KeyObject } from 'node:crypto'

const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex')
const X25519_SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex')

/** Signs with an identity key; publicKey is the raw 32-byte Ed25519 key. */
export interface Signer {
  readonly publicKey: Uint8Array
  sign: (data: Uint8Array) => Uint8Array
}

function checkLength (raw: Uint8Array, what: string): void {
  if (raw.length !== 32) throw new RangeError(`${what} must be 32 bytes, got ${raw.length}`)
}

export function ed25519PrivateKeyObject (seed: Uint8Array): KeyObject {
  checkLength(seed, 'Ed25519 seed')
  return createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' })
}

export function ed25519PublicKeyObject (raw: Uint8Array): KeyObject {
  checkLength(raw, 'Ed25519 public key')
  return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' })
}

export function x25519PrivateKeyObject (raw: Uint8Array): KeyObject {
  checkLength(raw, 'X25519 private key')
  return createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, raw]), format: 'der', type: 'pkcs8' })
}

export function x25519PublicKeyObject (raw: Uint8Array): KeyObject {
  checkLength(raw, 'X25519 public key')
  return createPublicKey({ key: Buffer.concat([X25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' })
}

/** The raw 32-byte public key of an Ed25519 or X25519 KeyObject (the last 32 bytes of its SPKI form). */
export function rawPublicKey (key: KeyObject): Uint8Array {
  const spki = (key.type === 'public' ? key : createPublicKey(key)).export({ format: 'der', type: 'spki' })
  return new Uint8Array(spki.subarray(spki.length - 32))
}

/** A Signer over a raw Ed25519 seed (the first 32 bytes of libp2p's 64-byte Ed25519 private key). */
export function ed25519Signer (seed: Uint8Array): Signer {
  const key = ed25519PrivateKeyObject(seed)
  const publicKey = rawPublicKey(key)
  return {
    publicKey,
    sign: (data) => new Uint8Array(sign(null, data, key))
  }
}

/** Verifies an Ed25519 signature; any malformed key or signature is simply false. */
export function ed25519Verify (publicKey: Uint8Array, data: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false
  try {
    return verify(null, data, ed25519PublicKeyObject(publicKey), signature)
  } catch {
    return false
  }
}
