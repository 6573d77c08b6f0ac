/**
 * The keyed primitives Sphinx composes, all from `node:crypto` (SPEC.md "Primitives"), and the onion key
 * prepared for processPacket. Raw X25519 keys, their import/export and X25519 itself live in
 * ../crypto/keys.ts.
 *
 * Performance note, measured in bench/sphinx.ts: `node:crypto` turns a raw Buffer key handed to
 * `createCipheriv` / `createHmac` into a KeyObject on every call, which costs ~20 us here, while
 * `createSecretKey` followed by the call with that KeyObject costs ~3 us + the operation. So every
 * symmetric key goes through `createSecretKey` first, and the fixed label keys are made once.
 */

import { createCipheriv, createHash, createHmac, createSecretKey } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { x25519PrivateKeyObject, x25519RawPublicKey } from '../crypto/keys.ts'
import { LABEL_MU, LABEL_PAD, LABEL_PI, LABEL_REPLAY, LABEL_RHO } from './constants.ts'

/** ChaCha20 in `node:crypto` takes a 16-byte IV: 32-bit little-endian block counter || 96-bit nonce. All zero here. */
const ZERO_IV = Buffer.alloc(16)

/** A node's onion key, prepared once for processPacket: the X25519 private KeyObject and its public bytes. */
export interface OnionPrivateKey {
  readonly privateKey: KeyObject
  readonly publicKey: Uint8Array
}

/**
 * Prepare a raw 32-byte X25519 private key (as stored in the data directory) for processPacket.
 * Throws InvalidKeyError for anything but 32 bytes.
 */
export function onionPrivateKeyFromRaw (raw: Uint8Array): OnionPrivateKey {
  const privateKey = x25519PrivateKeyObject(raw)
  return { privateKey, publicKey: x25519RawPublicKey(privateKey) }
}

/** SPEC.md "Key derivation": the labels, as HMAC keys made once. */
export type Label = typeof LABEL_RHO | typeof LABEL_MU | typeof LABEL_PI | typeof LABEL_REPLAY | typeof LABEL_PAD
const LABEL_KEYS: Readonly<Record<Label, KeyObject>> = Object.freeze({
  [LABEL_RHO]: createSecretKey(Buffer.from(LABEL_RHO, 'ascii')),
  [LABEL_MU]: createSecretKey(Buffer.from(LABEL_MU, 'ascii')),
  [LABEL_PI]: createSecretKey(Buffer.from(LABEL_PI, 'ascii')),
  [LABEL_REPLAY]: createSecretKey(Buffer.from(LABEL_REPLAY, 'ascii')),
  [LABEL_PAD]: createSecretKey(Buffer.from(LABEL_PAD, 'ascii'))
})

/** key_label = HMAC-SHA256(key = ASCII(label), message = secret), as BOLT #4's generateKey. */
export function deriveKey (label: Label, secret: Uint8Array): Buffer {
  return createHmac('sha256', LABEL_KEYS[label]).update(secret).digest()
}

/** HMAC-SHA256(key, part_1 || part_2 || ...). */
export function hmacSha256 (key: Uint8Array | KeyObject, ...parts: Uint8Array[]): Buffer {
  const mac = createHmac('sha256', key instanceof Uint8Array ? createSecretKey(key) : key)
  for (const part of parts) mac.update(part)
  return mac.digest()
}

/** SHA-256(part_1 || part_2 || ...). */
export function sha256 (...parts: Uint8Array[]): Buffer {
  const hash = createHash('sha256')
  for (const part of parts) hash.update(part)
  return hash.digest()
}

/**
 * ChaCha20 (RFC 8439 block function, OpenSSL's 'chacha20': 32-byte key, zero IV, counter from 0)
 * as a stream cipher: returns data XOR keystream. Each key in this format encrypts one stream only.
 */
export function chacha20 (key: Uint8Array | KeyObject, data: Uint8Array): Buffer {
  return createCipheriv('chacha20', key instanceof Uint8Array ? createSecretKey(key) : key, ZERO_IV).update(data)
}

/** A ChaCha20 keystream continued across calls: `next(data)` XORs the next data.length bytes. */
export function chacha20Stream (key: Uint8Array | KeyObject): { next: (data: Uint8Array) => Buffer } {
  const cipher = createCipheriv('chacha20', key instanceof Uint8Array ? createSecretKey(key) : key, ZERO_IV)
  return { next: (data) => cipher.update(data) }
}
