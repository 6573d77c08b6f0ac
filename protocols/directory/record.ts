/**
 * Directory records: signed name claims (`/p2pchat/name/<nick>`) and relay descriptors
 * (`/p2pchat/relay/<peer id>`). The byte layout is specified in README.md, "Directory records".
 *
 * Encoding (all integers big-endian):
 *   version u8 (=1) | kind u8 (1 name, 2 relay) | nickLen u8 | nick |
 *   identityKey[32] | onionKeyCount u8 | onionKeyCount * (epoch u32 | notBefore u64 | notAfter u64 | key[32]) |
 *   addrCount u8 | addrCount * (len u16 | multiaddr bytes) | sequence u64 | expiry u64 | signature[64]
 * Signature: Ed25519 by identityKey over SIGNATURE_CONTEXT | u16 dhtKeyLen | dhtKey | record bytes before the signature.
 */
import { publicKeyFromRaw } from '@libp2p/crypto/keys'
import { peerIdFromPublicKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { ed25519Verify } from '../crypto/keys.ts'
import type { Signer } from '../crypto/keys.ts'
import { validateNick } from '../chat/nick.ts'

export const RECORD_VERSION = 1
export const KIND_NAME = 1
export const KIND_RELAY = 2
export const NAME_PREFIX = '/p2pchat/name/'
export const RELAY_PREFIX = '/p2pchat/relay/'
export const SIGNATURE_CONTEXT = new TextEncoder().encode('p2pchat-record-v1')

/** Largest encoded record a validator accepts. A full record (16 addresses, 3 onion keys) is well under this. */
export const MAX_RECORD_SIZE = 2048
export const MAX_ADDRS = 16
export const MAX_ADDR_BYTES = 255
export const MAX_ONION_KEYS = 3
/** A record may not claim to live longer than this from now, so an abandoned name frees up. */
export const MAX_RECORD_LIFETIME_MS = 48 * 3600_000
/** Tolerated clock difference between the signer and a validator. */
export const CLOCK_SKEW_MS = 10 * 60_000


export interface OnionKeyEntry {
  epoch: number
  notBefore: number
  notAfter: number
  key: Uint8Array
}

export interface DirectoryRecord {
  kind: typeof KIND_NAME | typeof KIND_RELAY
  /** Empty for relay descriptors. */
  nick: string
  identityKey: Uint8Array
  onionKeys: OnionKeyEntry[]
  addrs: string[]
  sequence: bigint
  expiry: number
}

export interface SignedRecord extends DirectoryRecord {
  /** base58 peer id derived from identityKey. */
  peerId: string
  signature: Uint8Array
  bytes: Uint8Array
}

/** Why a record was refused; stable strings, counted by callers. */
export type RecordFault =
  | 'oversize' | 'truncated' | 'trailing-bytes' | 'version' | 'kind' | 'nick' | 'key' | 'onion-keys'
  | 'addrs' | 'expired' | 'lifetime' | 'signature' | 'dht-key' | 'peer-id'

export class RecordError extends Error {
  readonly fault: RecordFault
  constructor (fault: RecordFault, message?: string) {
    super(message ?? `invalid directory record: ${fault}`)
    this.name = 'RecordError'
    this.fault = fault
  }
}

export function isValidNick (nick: string): boolean {
  return validateNick(nick)
}

export function nameKey (nick: string): Uint8Array {
  return new TextEncoder().encode(NAME_PREFIX + nick)
}

export function relayKey (peerId: string): Uint8Array {
  return new TextEncoder().encode(RELAY_PREFIX + peerId)
}

export function peerIdOfIdentityKey (identityKey: Uint8Array): string {
  return peerIdFromPublicKey(publicKeyFromRaw(identityKey)).toString()
}

function body (rec: DirectoryRecord): Uint8Array {
  const nick = new TextEncoder().encode(rec.nick)
  const addrs = rec.addrs.map(a => multiaddr(a).bytes)
  const size = 3 + nick.length + 32 + 1 + rec.onionKeys.length * 52 + 1 +
    addrs.reduce((n, a) => n + 2 + a.length, 0) + 16
  const out = new Uint8Array(size)
  const view = new DataView(out.buffer)
  let o = 0
  out[o++] = RECORD_VERSION
  out[o++] = rec.kind
  out[o++] = nick.length
  out.set(nick, o); o += nick.length
  out.set(rec.identityKey, o); o += 32
  out[o++] = rec.onionKeys.length
  for (const k of rec.onionKeys) {
    view.setUint32(o, k.epoch); o += 4
    view.setBigUint64(o, BigInt(k.notBefore)); o += 8
    view.setBigUint64(o, BigInt(k.notAfter)); o += 8
    out.set(k.key, o); o += 32
  }
  out[o++] = addrs.length
  for (const a of addrs) {
    view.setUint16(o, a.length); o += 2
    out.set(a, o); o += a.length
  }
  view.setBigUint64(o, rec.sequence); o += 8
  view.setBigUint64(o, BigInt(rec.expiry))
  return out
}

function signatureInput (dhtKey: Uint8Array, unsigned: Uint8Array): Uint8Array {
  const out = new Uint8Array(SIGNATURE_CONTEXT.length + 2 + dhtKey.length + unsigned.length)
  out.set(SIGNATURE_CONTEXT, 0)
  new DataView(out.buffer).setUint16(SIGNATURE_CONTEXT.length, dhtKey.length)
  out.set(dhtKey, SIGNATURE_CONTEXT.length + 2)
  out.set(unsigned, SIGNATURE_CONTEXT.length + 2 + dhtKey.length)
  return out
}

export function dhtKeyOf (rec: Pick<DirectoryRecord, 'kind' | 'nick' | 'identityKey'>): Uint8Array {
  return rec.kind === KIND_NAME ? nameKey(rec.nick) : relayKey(peerIdOfIdentityKey(rec.identityKey))
}

/** Checks the fields a signer controls; the same rules the decoder enforces. */
function checkFields (rec: DirectoryRecord): void {
  if (rec.kind === KIND_NAME ? !isValidNick(rec.nick) : rec.nick !== '') throw new RecordError('nick')
  if (rec.identityKey.length !== 32) throw new RecordError('key')
  if (rec.onionKeys.length < 1 || rec.onionKeys.length > MAX_ONION_KEYS ||
    rec.onionKeys.some(k => k.key.length !== 32)) throw new RecordError('onion-keys')
  if (rec.addrs.length > MAX_ADDRS) throw new RecordError('addrs')
}

export function signRecord (rec: DirectoryRecord, signer: Signer): SignedRecord {
  checkFields(rec)
  if (!bytesEqual(signer.publicKey, rec.identityKey)) throw new RecordError('key', 'the signer is not the record\'s identity key')
  const unsigned = body(rec)
  const signature = signer.sign(signatureInput(dhtKeyOf(rec), unsigned))
  const bytes = new Uint8Array(unsigned.length + 64)
  bytes.set(unsigned, 0)
  bytes.set(signature, unsigned.length)
  if (bytes.length > MAX_RECORD_SIZE) throw new RecordError('oversize')
  return { ...rec, peerId: peerIdOfIdentityKey(rec.identityKey), signature, bytes }
}

class Reader {
  private o = 0
  private readonly buf: Uint8Array
  private readonly view: DataView
  constructor (buf: Uint8Array) {
    this.buf = buf
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  }

  need (n: number): void {
    if (this.o + n > this.buf.length) throw new RecordError('truncated')
  }

  u8 (): number { this.need(1); return this.buf[this.o++] }
  u16 (): number { this.need(2); const v = this.view.getUint16(this.o); this.o += 2; return v }
  u32 (): number { this.need(4); const v = this.view.getUint32(this.o); this.o += 4; return v }
  u64 (): bigint { this.need(8); const v = this.view.getBigUint64(this.o); this.o += 8; return v }
  bytes (n: number): Uint8Array { this.need(n); const v = this.buf.subarray(this.o, this.o + n); this.o += n; return v }
  get remaining (): number { return this.buf.length - this.o }
}

function safeTime (v: bigint): number {
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v)
}

/**
 * Decodes without checking the signature or the clock. Throws RecordError.
 * The record owns its bytes: the input is copied once into a plain Uint8Array, so no field is a view
 * on the caller's buffer (a Buffer's slice() does not copy) and every field has the same type whichever
 * path (network, datastore, local) the bytes came by.
 */
export function decodeRecord (input: Uint8Array): SignedRecord {
  if (input.length > MAX_RECORD_SIZE) throw new RecordError('oversize')
  const bytes = Uint8Array.from(input)
  const r = new Reader(bytes)
  if (r.u8() !== RECORD_VERSION) throw new RecordError('version')
  const kind = r.u8()
  if (kind !== KIND_NAME && kind !== KIND_RELAY) throw new RecordError('kind')
  const nickBytes = r.bytes(r.u8())
  const nick = String.fromCharCode(...nickBytes)
  if (kind === KIND_NAME ? !isValidNick(nick) : nick !== '') throw new RecordError('nick')
  const identityKey = r.bytes(32).slice()
  const onionCount = r.u8()
  if (onionCount < 1 || onionCount > MAX_ONION_KEYS) throw new RecordError('onion-keys')
  const onionKeys: OnionKeyEntry[] = []
  for (let i = 0; i < onionCount; i++) {
    onionKeys.push({ epoch: r.u32(), notBefore: safeTime(r.u64()), notAfter: safeTime(r.u64()), key: r.bytes(32).slice() })
  }
  const addrCount = r.u8()
  if (addrCount > MAX_ADDRS) throw new RecordError('addrs')
  const addrs: string[] = []
  for (let i = 0; i < addrCount; i++) {
    const len = r.u16()
    if (len === 0 || len > MAX_ADDR_BYTES) throw new RecordError('addrs')
    try {
      addrs.push(multiaddr(r.bytes(len)).toString())
    } catch (err) {
      if (err instanceof RecordError) throw err
      throw new RecordError('addrs')
    }
  }
  const sequence = r.u64()
  const expiry = safeTime(r.u64())
  const signature = r.bytes(64).slice()
  if (r.remaining !== 0) throw new RecordError('trailing-bytes')
  let peerId: string
  try {
    peerId = peerIdOfIdentityKey(identityKey)
  } catch {
    throw new RecordError('key')
  }
  return { kind, nick, identityKey, onionKeys, addrs, sequence, expiry, peerId, signature, bytes }
}

/**
 * Everything a storing node and a reader check: size, layout, that the record belongs under `dhtKey`
 * (nick or peer id), that it is live and not too long-lived, and its signature.
 */
export function verifyRecord (dhtKey: Uint8Array, bytes: Uint8Array, now = Date.now()): SignedRecord {
  const rec = decodeRecord(bytes)
  if (!bytesEqual(dhtKey, dhtKeyOf(rec))) throw new RecordError('dht-key')
  if (rec.expiry <= now) throw new RecordError('expired')
  if (rec.expiry > now + MAX_RECORD_LIFETIME_MS + CLOCK_SKEW_MS) throw new RecordError('lifetime')
  const unsigned = bytes.subarray(0, bytes.length - 64)
  if (!ed25519Verify(rec.identityKey, signatureInput(dhtKey, unsigned), rec.signature)) throw new RecordError('signature')
  return rec
}

export function bytesEqual (a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}
