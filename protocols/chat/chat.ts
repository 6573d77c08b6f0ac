/** Sign-then-seal and open-then-verify: the two calls a chat node makes for each message. */
import { decodeMessage, encodeMessage, type ChatMessage, type DecodedMessage } from './message.ts'
import { seal, unseal } from './seal.ts'
import type { Signer } from '../crypto/keys.ts'

/**
 * Encodes `msg`, signs it with `signer` (whose public key must be `msg.senderIdentityKey`) and seals it to
 * the recipient's raw 32-byte X25519 onion key. Throws the named build errors of ./errors.ts.
 */
export function sealMessage (msg: ChatMessage, signer: Signer, recipientOnionPublic: Uint8Array): Uint8Array {
  return seal(encodeMessage(msg, signer), recipientOnionPublic)
}

/**
 * Opens a sealed message with the raw 32-byte X25519 onion private key, decodes it strictly and checks
 * its signature against the identity key it names. Never throws: bad input yields `{ ok: false, reason }`.
 */
export function openMessage (bytes: Uint8Array, onionPrivateRaw: Uint8Array): DecodedMessage {
  const opened = unseal(bytes, onionPrivateRaw)
  if (!opened.ok) return opened
  return decodeMessage(opened.plaintext)
}
