/**
 * The two long-term keys of a data directory, created on first run and reused after:
 * - `identity.key`: Ed25519, the libp2p identity (peer id); signs directory records and messages.
 * - `onion.key`: X25519, receives onion packets.
 * Each file is JSON `{"v":1,"type":...,"privateKey":<base64>,"publicKey":<base64>}`, mode 0600.
 * A corrupt, unreadable or group/other-readable file stops the program with a message saying what
 * to do; it is never overwritten.
 */
import { closeSync, fstatSync, fsyncSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { generateKeyPair, privateKeyFromRaw } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Ed25519PrivateKey, PeerId } from '@libp2p/interface'
import { ed25519SignerFromSeed, generateEd25519Seed, generateX25519KeyPair } from '../protocols/crypto/keys.ts'
import type { Signer } from '../protocols/crypto/keys.ts'
import { fingerprint } from '../protocols/chat/fingerprint.ts'
import { checkSecretFile, exists, prepareDataDir, writeNewSecretFile } from './datadir.ts'
import { UserError } from './errors.ts'

export { fingerprint }

export const IDENTITY_FILE = 'identity.key'
export const ONION_FILE = 'onion.key'
/** The stable transport key of a relay or bootstrap node (protocol v2: never a user's chat identity). */
export const TRANSPORT_FILE = 'transport.key'

export interface Identity {
  dataDir: string
  privateKey: Ed25519PrivateKey
  peerId: PeerId
  /** Raw 32-byte Ed25519 public key. */
  identityKey: Uint8Array
  signer: Signer
  fingerprint: string
}

/** A throwaway identity for in-process tests: with a long-term onion key pair of its own (version 1's shape). */
export interface EphemeralIdentity extends Identity {
  onionPrivate: Uint8Array
  onionPublic: Uint8Array
}

interface KeyFile { v: 1, type: 'Ed25519' | 'X25519', privateKey: string, publicKey: string }

function b64 (bytes: Uint8Array): string { return Buffer.from(bytes).toString('base64') }

function readKeyFile (path: string, type: KeyFile['type']): { privateKey: Uint8Array, publicKey: Uint8Array } {
  checkSecretFile(path)
  const corrupt = (why: string): UserError => new UserError(
    `${path} is corrupt (${why}). It was left untouched: restore it from a backup, or move it away to create a new key (a new key is a new identity)`,
    'KEY_CORRUPT')
  let parsed: unknown
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'))
  } catch {
    throw corrupt('not valid JSON')
  }
  const f = parsed as Partial<KeyFile>
  if (f == null || typeof f !== 'object' || f.v !== 1 || f.type !== type ||
    typeof f.privateKey !== 'string' || typeof f.publicKey !== 'string') throw corrupt(`not a version 1 ${type} key file`)
  const privateKey = new Uint8Array(Buffer.from(f.privateKey, 'base64'))
  const publicKey = new Uint8Array(Buffer.from(f.publicKey, 'base64'))
  if (privateKey.length !== 32 || publicKey.length !== 32) throw corrupt('wrong key length')
  return { privateKey, publicKey }
}

function loadOrCreate (path: string, type: KeyFile['type'], create: () => { privateKey: Uint8Array, publicKey: Uint8Array },
  derivePublic: (priv: Uint8Array) => Uint8Array): { privateKey: Uint8Array, publicKey: Uint8Array, created: boolean } {
  let created = false
  if (!exists(path)) {
    const k = create()
    writeNewSecretFile(path, JSON.stringify({ v: 1, type, privateKey: b64(k.privateKey), publicKey: b64(k.publicKey) }) + '\n')
    created = true
  }
  const k = readKeyFile(path, type)
  let derived: Uint8Array
  try {
    derived = derivePublic(k.privateKey)
  } catch {
    throw new UserError(`${path} is corrupt (the private key is not a valid ${type} key). It was left untouched: restore it from a backup, or move it away to create a new key`, 'KEY_CORRUPT')
  }
  if (Buffer.compare(derived, k.publicKey) !== 0) {
    throw new UserError(`${path} is corrupt (its public key does not match its private key). It was left untouched: restore it from a backup, or move it away to create a new key`, 'KEY_CORRUPT')
  }
  return { ...k, created }
}

function rawEd25519 (): { privateKey: Uint8Array, publicKey: Uint8Array } {
  const seed = generateEd25519Seed()
  return { privateKey: seed, publicKey: ed25519SignerFromSeed(seed).publicKey }
}

/**
 * Loads (or on first run creates) the identity key of a data directory. Version 1's long-term
 * `onion.key`, which no longer receives anything (onion keys rotate in the store now), is erased if
 * present: whoever seized it later could otherwise open every message ever sealed to it.
 */
export async function loadIdentity (dataDir: string): Promise<Identity & { created: boolean, erasedV1OnionKey: boolean }> {
  prepareDataDir(dataDir)
  const id = loadOrCreate(join(dataDir, IDENTITY_FILE), 'Ed25519', rawEd25519, (seed) => ed25519SignerFromSeed(seed).publicKey)
  const erasedV1OnionKey = eraseFile(join(dataDir, ONION_FILE))
  const libp2pKey = privateKeyFromRaw(Buffer.concat([id.privateKey, id.publicKey])) as Ed25519PrivateKey
  return {
    dataDir,
    privateKey: libp2pKey,
    peerId: peerIdFromPrivateKey(libp2pKey),
    identityKey: id.publicKey,
    signer: ed25519SignerFromSeed(id.privateKey),
    fingerprint: fingerprint(id.publicKey),
    created: id.created,
    erasedV1OnionKey
  }
}

/** Overwrites a secret file with zeros (synced) and removes it; false when there was none. */
function eraseFile (path: string): boolean {
  if (!exists(path)) return false
  const fd = openSync(path, 'r+')
  try {
    writeSync(fd, new Uint8Array(fstatSync(fd).size), 0)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  unlinkSync(path)
  return true
}

/** A throwaway identity that never touches the disk (tests, the demo's in-process nodes). */
export async function ephemeralIdentity (): Promise<EphemeralIdentity> {
  const key = await generateKeyPair('Ed25519')
  const seed = key.raw.subarray(0, 32)
  const onion = generateX25519KeyPair()
  return {
    dataDir: '',
    privateKey: key,
    peerId: peerIdFromPrivateKey(key),
    identityKey: key.publicKey.raw,
    signer: ed25519SignerFromSeed(seed),
    onionPrivate: onion.privateKey,
    onionPublic: onion.publicKey,
    fingerprint: fingerprint(key.publicKey.raw)
  }
}

/**
 * A transport key: the libp2p private key a node connects with (PROTOCOL-V2.md section 1), apart from
 * the chat identity. Relays and bootstrap nodes are public by design and keep one in `transport.key`
 * (created on first run, mode 0600, same file format and refusals as identity.key); users pass
 * `fresh: true` and get a new key for every run that never touches the disk, so no two runs of a user
 * share a peer id and no peer id names the user.
 */
export async function loadTransportKey (dataDir: string, opts: { fresh?: boolean } = {}): Promise<{ privateKey: Ed25519PrivateKey, peerId: PeerId, created: boolean }> {
  if (opts.fresh === true) {
    const key = await generateKeyPair('Ed25519')
    return { privateKey: key, peerId: peerIdFromPrivateKey(key), created: true }
  }
  prepareDataDir(dataDir)
  const k = loadOrCreate(join(dataDir, TRANSPORT_FILE), 'Ed25519', rawEd25519, (seed) => ed25519SignerFromSeed(seed).publicKey)
  const privateKey = privateKeyFromRaw(Buffer.concat([k.privateKey, k.publicKey])) as Ed25519PrivateKey
  return { privateKey, peerId: peerIdFromPrivateKey(privateKey), created: k.created }
}
