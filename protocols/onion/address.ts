/**
 * Addresses (PROTOCOL-V2.md section 1): the raw 32-byte Ed25519 public key of a transport peer id, as
 * Sphinx slots and reply blocks carry it. A libp2p Ed25519 peer id is the identity multihash
 * `00 24` (identity, 36 bytes) of the protobuf public key `08 01` (type Ed25519) `12 20` (32 bytes) || key,
 * so the conversion is exact both ways. Peer ids of other key types (RSA, secp256k1) have no address.
 */
import { peerIdFromMultihash, peerIdFromString } from '@libp2p/peer-id'
import * as Digest from 'multiformats/hashes/digest'
import type { PeerId } from '@libp2p/interface'
import { ADDRESS_LENGTH, PEER_ID_LENGTH, PEER_ID_PREFIX } from './constants.ts'
import { InvalidAddressError } from './errors.ts'

/** The binary multihash (38 bytes) of the Ed25519 peer id whose key is `address`. Throws InvalidAddressError. */
export function peerIdBytesFromAddress (address: Uint8Array): Uint8Array {
  if (!(address instanceof Uint8Array) || address.length !== ADDRESS_LENGTH) throw new InvalidAddressError()
  const out = new Uint8Array(PEER_ID_LENGTH)
  out.set(PEER_ID_PREFIX, 0)
  out.set(address, PEER_ID_PREFIX.length)
  return out
}

/** The libp2p PeerId of an address. Throws InvalidAddressError. */
export function peerIdFromAddress (address: Uint8Array): PeerId {
  const bytes = peerIdBytesFromAddress(address)
  try {
    return peerIdFromMultihash(Digest.decode(bytes))
  } catch {
    throw new InvalidAddressError()
  }
}

/** The address (32 bytes, a fresh copy) of an Ed25519 peer id, given as a PeerId or its string form. Throws InvalidAddressError. */
export function addressFromPeerId (peerId: PeerId | string): Uint8Array {
  let id: PeerId
  try {
    id = typeof peerId === 'string' ? peerIdFromString(peerId) : peerId
  } catch {
    throw new InvalidAddressError('not a peer id')
  }
  const bytes = id.toMultihash().bytes
  if (bytes.length !== PEER_ID_LENGTH) throw new InvalidAddressError()
  for (let i = 0; i < PEER_ID_PREFIX.length; i++) if (bytes[i] !== PEER_ID_PREFIX[i]) throw new InvalidAddressError()
  return new Uint8Array(bytes.subarray(PEER_ID_PREFIX.length))
}
