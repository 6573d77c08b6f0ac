/**
 * X25519 keys and the keyed primitives Sphinx composes, all from `node:crypto` (SPEC.md "Primitives").
 *
 * Performance note, measured in bench/sphinx.ts: `node:crypto` turns a raw Buffer key handed to
 * `createCipheriv` / `createHmac` into a KeyObject on every call, which costs ~20 us here, while
 * `createSecretKey` followed by the call with that KeyObject costs ~3 us + the operation. So every
 * symmetric key goes through `createSecretKey` first, and the fixed label keys are made once.
 */

import { createCipheriv, createHash, createHmac, createPrivateKey, createPublicKey, createSecretKey, diffieHellman, generateKeyPairSync } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { KEY_LENGTH, LABEL_MU, LABEL_PAD, LABEL_PI, LABEL_REPLAY, LABEL_RHO } from './constants.ts'
import { InvalidKeyError } from './errors.ts'

/** The fixed DER prefixes that wrap a raw X25519 key (RFC 8410). */
const PKCS8_X25519_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex')
const SPKI_X25519_PREFIX = Buffer.from('302a300506032b656e032100', 'hex')

/** ChaCha20 in `node:crypto` takes a 16-byte IV: 32-bit little-endian block counter || 96-bit nonce. All zero here. */
const ZERO_IV = Buffer.alloc(16)

/**
 * Node >= 24.? accepts `format: 'raw-public' | 'raw-private'`: the same key as the DER route,
 * ~13 us cheaper per import here (no DER decoder). Older Node (engines allows 22) falls back to DER.
 */
const RAW_KEY_FORMATS: boolean = (() => {
  try {
    createPublicKey({ key: Buffer.alloc(KEY_LENGTH, 9), format: 'raw-public', asymmetricKeyType: 'x25519' })
    return true
  } catch {
    return false
  }
})()

export function asBuffer (bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/** A raw 32-byte X25519 public point as a KeyObject, through the SPKI DER prefix. */
export function importPublicKeyDer (raw: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_X25519_PREFIX, raw]), format: 'der', type: 'spki' })
}

/** A raw 32-byte X25519 scalar as a KeyObject, through the PKCS8 DER prefix. */
export function importPrivateKeyDer (raw: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_X25519_PREFIX, raw]), format: 'der', type: 'pkcs8' })
}

/** A raw 32-byte X25519 public point as a KeyObject (raw import when Node has it, else DER). */
export function importPublicKey (raw: Uint8Array): KeyObject {
  if (RAW_KEY_FORMATS) return createPublicKey({ key: asBuffer(raw), format: 'raw-public', asymmetricKeyType: 'x25519' })
  return importPublicKeyDer(raw)
}

/** A raw 32-byte X25519 scalar as a KeyObject (raw import when Node has it, else DER). OpenSSL clamps on use. */
export function importPrivateKey (raw: Uint8Array): KeyObject {
  if (RAW_KEY_FORMATS) return createPrivateKey({ key: asBuffer(raw), format: 'raw-private', asymmetricKeyType: 'x25519' })
  return importPrivateKeyDer(raw)
}

/** The raw 32 bytes of an X25519 public key (given the public or the private KeyObject). */
export function exportPublicKey (key: KeyObject): Buffer {
  if (key.type === 'private') key = createPublicKey(key)
  if (RAW_KEY_FORMATS) return key.export({ format: 'raw-public' })
  return key.export({ format: 'der', type: 'spki' }).subarray(SPKI_X25519_PREFIX.length)
}

/** The raw 32 bytes of an X25519 private KeyObject. */
export function exportPrivateKey (key: KeyObject): Buffer {
  if (RAW_KEY_FORMATS) return key.export({ format: 'raw-private' })
  return key.export({ format: 'der', type: 'pkcs8' }).subarray(PKCS8_X25519_PREFIX.length)
}

/**
 * X25519(k, u) (RFC 7748): 32 bytes. Throws when the result is all zero (u of small order);
 * processPacket turns that into the drop reason 'bad-point'.
 */
export function x25519 (privateKey: KeyObject, publicKey: KeyObject): Buffer {
  return diffieHellman({ privateKey, publicKey })
}

/** A node's onion key, prepared once for processPacket: the X25519 private KeyObject and its public bytes. */
export interface OnionPrivateKey {
  readonly privateKey: KeyObject
  readonly publicKey: Uint8Array
}

/** Prepare a raw 32-byte X25519 private key (as stored in the data directory) for processPacket. */
export function onionPrivateKeyFromRaw (raw: Uint8Array): OnionPrivateKey {
  if (!(raw instanceof Uint8Array) || raw.length !== KEY_LENGTH) throw new InvalidKeyError()
  const privateKey = importPrivateKey(raw)
  return { privateKey, publicKey: new Uint8Array(exportPublicKey(privateKey)) }
}

/** A fresh onion key pair as raw bytes: publish `publicKey`, keep `privateKey` (mode 0600). */
export function generateOnionKey (): { publicKey: Uint8Array, privateKey: Uint8Array } {
  const pair = generateKeyPairSync('x25519')
  return { publicKey: new Uint8Array(exportPublicKey(pair.publicKey)), privateKey: new Uint8Array(exportPrivateKey(pair.privateKey)) }
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
