/**
 * The seal (FORMAT.md "Seal"): public-key authenticated encryption to the recipient's X25519 onion key,
 * in the spirit of HPKE base mode (RFC 9180) built from node:crypto primitives only:
 *
 *   (e, E)      = fresh X25519 key pair                      E: 32 bytes
 *   dh          = X25519(e, R)                               R: recipient onion public key, refused if all zeros
 *   okm         = HKDF-SHA256(ikm = dh, salt = E || R, info = "p2pchat/seal/v1", L = 44)
 *   key, nonce  = okm[0..32], okm[32..44]
 *   header      = version(0x01) || E
 *   ct, tag     = ChaCha20-Poly1305(key, nonce, aad = header, plaintext)
 *   sealed      = header || ct || tag
 *
 * E and R in the salt bind the key to both public keys (as HPKE's kem_context = enc || pkRm does), so a
 * changed byte of E, even a bit X25519 ignores, yields another key. Each key is used for one message only,
 * so the derived nonce never repeats under a key. The sender is anonymous at this layer: who wrote the
 * message is proven by the Ed25519 signature inside it.
 */
import { createCipheriv, createDecipheriv, generateKeyPairSync, hkdfSync } from 'node:crypto'
import {
  MAX_SEALED_MESSAGE,
  ONION_KEY_BYTES,
  SEAL_EPHEMERAL_BYTES,
  SEAL_KDF_LABEL,
  SEAL_KEY_BYTES,
  SEAL_NONCE_BYTES,
  SEAL_TAG_BYTES,
  SEAL_VERSION,
  SEALED_OVERHEAD
} from './constants.ts'
import { concat, copy, isBytes } from './bytes.ts'
import { InvalidKeyError } from './errors.ts'
import { x25519, x25519PrivateKeyObject, x25519PublicKeyObject, x25519RawPublicKey } from '../crypto/keys.ts'
import type { Failure } from './types.ts'

const HEADER_BYTES = 1 + SEAL_EPHEMERAL_BYTES

function deriveKeyAndNonce (dh: Uint8Array, ephemeralPublic: Uint8Array, recipientPublic: Uint8Array): { key: Uint8Array, nonce: Uint8Array } {
  const okm = new Uint8Array(hkdfSync(
    'sha256',
    dh,
    concat(ephemeralPublic, recipientPublic),
    SEAL_KDF_LABEL,
    SEAL_KEY_BYTES + SEAL_NONCE_BYTES
  ))
  return { key: okm.subarray(0, SEAL_KEY_BYTES), nonce: okm.subarray(SEAL_KEY_BYTES) }
}

/** Seals `plaintext` to a raw 32-byte X25519 public key. Throws InvalidKeyError for an unusable key. */
export function seal (plaintext: Uint8Array, recipientPublic: Uint8Array): Uint8Array {
  const recipient = x25519PublicKeyObject(recipientPublic)
  const ephemeral = generateKeyPairSync('x25519')
  const ephemeralPublic = x25519RawPublicKey(ephemeral.privateKey)
  let dh: Uint8Array
  try {
    dh = x25519(ephemeral.privateKey, recipient)
  } catch {
    throw new InvalidKeyError('recipient onion key is a low-order point')
  }
  const { key, nonce } = deriveKeyAndNonce(dh, ephemeralPublic, recipientPublic)
  const header = concat(Uint8Array.of(SEAL_VERSION), ephemeralPublic)
  const cipher = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: SEAL_TAG_BYTES })
  cipher.setAAD(header, { plaintextLength: plaintext.length })
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()])
  return concat(header, ciphertext, cipher.getAuthTag())
}

export type Unsealed = { ok: true, plaintext: Uint8Array } | Failure

/**
 * Opens a sealed payload with the raw 32-byte X25519 private key; never throws.
 * `maxLength` bounds the input before any work is done (default: the largest sealed message).
 */
export function unseal (sealed: Uint8Array, recipientPrivate: Uint8Array, maxLength = MAX_SEALED_MESSAGE): Unsealed {
  if (!isBytes(sealed) || !isBytes(recipientPrivate)) return { ok: false, reason: 'input' }
  if (sealed.length < 1) return { ok: false, reason: 'length' }
  if (sealed[0] !== SEAL_VERSION) return { ok: false, reason: 'version' }
  if (sealed.length < SEALED_OVERHEAD || sealed.length > maxLength) return { ok: false, reason: 'length' }
  if (recipientPrivate.length !== ONION_KEY_BYTES) return { ok: false, reason: 'key' }

  let privateKey
  let recipientPublic
  try {
    privateKey = x25519PrivateKeyObject(recipientPrivate)
    recipientPublic = x25519RawPublicKey(privateKey)
  } catch {
    return { ok: false, reason: 'key' }
  }
  const header = sealed.subarray(0, HEADER_BYTES)
  const ephemeralPublic = sealed.subarray(1, HEADER_BYTES)
  const ciphertext = sealed.subarray(HEADER_BYTES, sealed.length - SEAL_TAG_BYTES)
  const tag = sealed.subarray(sealed.length - SEAL_TAG_BYTES)

  let dh: Uint8Array
  try {
    dh = x25519(privateKey, x25519PublicKeyObject(ephemeralPublic))
  } catch {
    // a low-order ephemeral key: nothing authentic can come of it
    return { ok: false, reason: 'decrypt' }
  }
  const { key, nonce } = deriveKeyAndNonce(dh, ephemeralPublic, recipientPublic)
  try {
    const decipher = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: SEAL_TAG_BYTES })
    decipher.setAAD(header, { plaintextLength: ciphertext.length })
    decipher.setAuthTag(tag)
    const plaintext = Buffer.concat([decipher.update(ciphertext), decipher.final()])
    return { ok: true, plaintext: copy(plaintext) }
  } catch {
    return { ok: false, reason: 'decrypt' }
  }
}
