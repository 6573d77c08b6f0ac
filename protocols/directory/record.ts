/**
 * Directory records version 2: signed name records (`/p2pchat/name/<nick>`) and relay descriptors
 * (`/p2pchat/relay/<peer id>`). The byte layout is specified in README.md, "Directory records", and in
 * protocols/PROTOCOL-V2.md section 4; test/vectors/record-v2.json pins it byte for byte.
 *
 * Encoding (all integers big-endian):
 *   version u8 (=2) | kind u8 (1 name, 2 relay) | fields | signature[64]
 *   field = type u8 | length u16 | value; types strictly increasing, except that a repeatable type
 *   (onion key 0x03, mailbox 0x04, address 0x05, and every optional type 0x80..0xff) repeats in place.
 *   0x01 nick (1..32 of [a-z0-9_-])            names 1, relays 0
 *   0x02 identity key (32)                      1 (relays: the transport key, = the DHT key's peer id)
 *   0x03 onion key: epoch u32 | notBefore u64 | notAfter u64 | X25519 key 32     1..3
 *   0x04 mailbox: relay address 32 | mailbox id 32                              names 0..4, relays 0
 *   0x05 address: a multiaddr's bytes (1..255)  names 0 (a name carries no address), relays 0..16
 *   0x06 sequence u64, 0x07 expiry u64 (ms)     1 each
 *   any other type < 0x80 (0x40..0x7f reserved): refused ('unknown-field')
 *   0x80..0xff: optional, covered by the signature, kept in `extensions`, otherwise ignored
 * Signature: Ed25519 by the identity key over
 *   SIGNATURE_CONTEXT | u16 len(dht key) | dht key | every record byte before the signature.
 * Limits: a whole record at most MAX_RECORD_SIZE bytes; names live at most 8 days ahead, relay
 * descriptors 48 h (+ CLOCK_SKEW_MS). A version 1 record is refused with the fault 'version'.
 */
import { publicKeyFromRaw } from '@libp2p/crypto/keys'
import { peerIdFromPublicKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { ed25519Verify } from '../crypto/keys.ts'
import type { Signer } from '../crypto/keys.ts'
import { validateNick } from '../chat/nick.ts'

/** The first byte of every record this code writes and accepts (version 1 is refused: 'version'). */
export const RECORD_VERSION = 2
export const KIND_NAME = 1
export const KIND_RELAY = 2
export const NAME_PREFIX = '/p2pchat/name/'
export const RELAY_PREFIX = '/p2pchat/relay/'

/**
 * A DHT key as a log line may show it. Relays and bootstrap nodes log no nick (issue 10, item 9): a
 * name's key is shown without its nick, and not as a hash either (nicks are short and guessable, so a
 * hash would name one just as well). Relay keys are public and shown in full.
 */
export function loggableKey (key: Uint8Array): string {
  const text = new TextDecoder().decode(key)
  return text.startsWith(NAME_PREFIX) ? `${NAME_PREFIX}<nick>` : text
}

/** Domain separation of the record signature; the `-v2` keeps a v1 signature from verifying as v2. */
export const SIGNATURE_CONTEXT = new TextEncoder().encode('p2pchat-record-v2')

/** Field types (PROTOCOL-V2.md section 4). */
export const FIELD_NICK = 0x01
export const FIELD_IDENTITY_KEY = 0x02
export const FIELD_ONION_KEY = 0x03
export const FIELD_MAILBOX = 0x04
export const FIELD_ADDRESS = 0x05
export const FIELD_SEQUENCE = 0x06
export const FIELD_EXPIRY = 0x07
/** Types from here up are optional: signed, kept, ignored by a reader that does not know them. */
export const FIRST_OPTIONAL_FIELD = 0x80

/** version + kind. */
const HEADER_BYTES = 2
/** type u8 + length u16. */
const FIELD_HEADER_BYTES = 3
const SIGNATURE_BYTES = 64
/** epoch u32 + notBefore u64 + notAfter u64 + X25519 key 32. */
export const ONION_KEY_FIELD_BYTES = 52
/** relay address 32 + mailbox id 32. */
export const MAILBOX_FIELD_BYTES = 64

/**
 * Largest encoded record a validator accepts. A full name (3 onion keys, 4 mailboxes, 32-byte nick)
 * is 591 bytes; the rest is room for relays' addresses and optional fields, and a record still fits in
 * one onion reply payload (2588 bytes) with the exit's answer header.
 */
export const MAX_RECORD_SIZE = 2048
export const MAX_ADDRS = 16
export const MAX_ADDR_BYTES = 255
export const MAX_ONION_KEYS = 3
/** A name lists the mailboxes that accept packets for its owner (PROTOCOL-V2 asks for at least 2). */
export const MAX_MAILBOXES = 4
/** A name stays findable while messages may wait in a mailbox for its owner (7 days), plus a day. */
export const MAX_NAME_LIFETIME_MS = 8 * 24 * 3600_000
/** Relays re-announce hourly; a descriptor claiming more than two days is refused. */
export const MAX_RELAY_LIFETIME_MS = 48 * 3600_000
/** The longest lifetime of any record kind (names). */
export const MAX_RECORD_LIFETIME_MS = MAX_NAME_LIFETIME_MS
/** Tolerated clock difference between the signer and a validator. */
export const CLOCK_SKEW_MS = 10 * 60_000

export interface OnionKeyEntry {
  epoch: number
  notBefore: number
  notAfter: number
  key: Uint8Array
}

/** A mailbox that accepts packets for a name's owner (PROTOCOL-V2.md sections 1 and 4). */
export interface MailboxEntry {
  /** The mailbox relay's address: the raw Ed25519 public key of its transport peer id. */
  relay: Uint8Array
  /** SHA-256(`p2pchat-mailbox-v1` | mailbox public key), computed by the mailbox part. */
  id: Uint8Array
}

/** An optional field (type 0x80..0xff): signed and kept, meaning left to the issue that defines it. */
export interface RecordExtension {
  type: number
  value: Uint8Array
}

export interface DirectoryRecord {
  kind: typeof KIND_NAME | typeof KIND_RELAY
  /** Empty for relay descriptors. */
  nick: string
  identityKey: Uint8Array
  onionKeys: OnionKeyEntry[]
  /** Relays only (0..16); a name must have none. */
  addrs: string[]
  /** Names only (0..4); absent means none. */
  mailboxes?: MailboxEntry[]
  /** Optional fields 0x80..0xff, written in increasing type order (stable for equal types). */
  extensions?: RecordExtension[]
  sequence: bigint
  expiry: number
}

export interface SignedRecord extends DirectoryRecord {
  mailboxes: MailboxEntry[]
  extensions: RecordExtension[]
  /** base58 peer id derived from identityKey. */
  peerId: string
  signature: Uint8Array
  bytes: Uint8Array
}

/** Why a record was refused; stable strings, counted by callers. */
export type RecordFault =
  | 'oversize' | 'truncated' | 'trailing-bytes' | 'version' | 'kind' | 'nick' | 'key' | 'onion-keys'
  | 'addrs' | 'expired' | 'lifetime' | 'signature' | 'dht-key' | 'peer-id'
  | 'mailboxes' | 'field-order' | 'field-length' | 'missing-field' | 'unknown-field'

/** Every fault, for counters and checks that a fault is one of ours. */
export const RECORD_FAULTS: readonly RecordFault[] = [
  'oversize', 'truncated', 'trailing-bytes', 'version', 'kind', 'nick', 'key', 'onion-keys',
  'addrs', 'expired', 'lifetime', 'signature', 'dht-key', 'peer-id',
  'mailboxes', 'field-order', 'field-length', 'missing-field', 'unknown-field'
]

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

/** The longest a record of this kind may claim to live, from now (without the clock skew). */
export function maxLifetimeMs (kind: DirectoryRecord['kind']): number {
  return kind === KIND_NAME ? MAX_NAME_LIFETIME_MS : MAX_RELAY_LIFETIME_MS
}

/** Whether a type may appear more than once (consecutively). */
function repeatable (type: number): boolean {
  return type === FIELD_ONION_KEY || type === FIELD_MAILBOX || type === FIELD_ADDRESS || type >= FIRST_OPTIONAL_FIELD
}

function u64 (v: bigint | number): Uint8Array {
  const out = new Uint8Array(8)
  new DataView(out.buffer).setBigUint64(0, BigInt(v))
  return out
}

function addrBytes (addr: string): Uint8Array {
  let bytes: Uint8Array
  try {
    bytes = multiaddr(addr).bytes
  } catch {
    throw new RecordError('addrs', `not a multiaddr: ${addr}`)
  }
  if (bytes.length === 0 || bytes.length > MAX_ADDR_BYTES) throw new RecordError('addrs')
  return bytes
}

/** The fields in wire order, as [type, value]. */
function fieldsOf (rec: DirectoryRecord): Array<[number, Uint8Array]> {
  const fields: Array<[number, Uint8Array]> = []
  if (rec.kind === KIND_NAME) fields.push([FIELD_NICK, new TextEncoder().encode(rec.nick)])
  fields.push([FIELD_IDENTITY_KEY, rec.identityKey])
  for (const k of rec.onionKeys) {
    const v = new Uint8Array(ONION_KEY_FIELD_BYTES)
    const view = new DataView(v.buffer)
    view.setUint32(0, k.epoch)
    view.setBigUint64(4, BigInt(k.notBefore))
    view.setBigUint64(12, BigInt(k.notAfter))
    v.set(k.key, 20)
    fields.push([FIELD_ONION_KEY, v])
  }
  for (const m of rec.mailboxes ?? []) {
    const v = new Uint8Array(MAILBOX_FIELD_BYTES)
    v.set(m.relay, 0)
    v.set(m.id, 32)
    fields.push([FIELD_MAILBOX, v])
  }
  for (const a of rec.addrs) fields.push([FIELD_ADDRESS, addrBytes(a)])
  fields.push([FIELD_SEQUENCE, u64(rec.sequence)])
  fields.push([FIELD_EXPIRY, u64(rec.expiry)])
  const ext = [...(rec.extensions ?? [])].sort((a, b) => a.type - b.type) // Array.sort is stable
  for (const e of ext) fields.push([e.type, e.value])
  return fields
}

function body (rec: DirectoryRecord): Uint8Array {
  const fields = fieldsOf(rec)
  const size = HEADER_BYTES + fields.reduce((n, [, v]) => n + FIELD_HEADER_BYTES + v.length, 0)
  if (size + SIGNATURE_BYTES > MAX_RECORD_SIZE) throw new RecordError('oversize')
  const out = new Uint8Array(size)
  const view = new DataView(out.buffer)
  let o = 0
  out[o++] = RECORD_VERSION
  out[o++] = rec.kind
  for (const [type, value] of fields) {
    out[o++] = type
    view.setUint16(o, value.length); o += 2
    out.set(value, o); o += value.length
  }
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
  if (rec.kind !== KIND_NAME && rec.kind !== KIND_RELAY) throw new RecordError('kind')
  if (rec.kind === KIND_NAME ? !isValidNick(rec.nick) : rec.nick !== '') throw new RecordError('nick')
  if (rec.identityKey.length !== 32) throw new RecordError('key')
  if (rec.onionKeys.length < 1 || rec.onionKeys.length > MAX_ONION_KEYS ||
    rec.onionKeys.some(k => k.key.length !== 32)) throw new RecordError('onion-keys')
  const mailboxes = rec.mailboxes ?? []
  if (mailboxes.length > (rec.kind === KIND_NAME ? MAX_MAILBOXES : 0) ||
    mailboxes.some(m => m.relay.length !== 32 || m.id.length !== 32)) throw new RecordError('mailboxes')
  if (rec.addrs.length > (rec.kind === KIND_RELAY ? MAX_ADDRS : 0)) throw new RecordError('addrs', rec.kind === KIND_NAME ? 'a name record carries no address' : undefined)
  for (const e of rec.extensions ?? []) {
    if (!Number.isInteger(e.type) || e.type < FIRST_OPTIONAL_FIELD || e.type > 0xff) throw new RecordError('unknown-field', `extension type ${e.type} is not in 0x80..0xff`)
    if (e.value.length > 0xffff) throw new RecordError('oversize')
  }
}

export function signRecord (rec: DirectoryRecord, signer: Signer): SignedRecord {
  checkFields(rec)
  if (!bytesEqual(signer.publicKey, rec.identityKey)) throw new RecordError('key', 'the signer is not the record\'s identity key')
  const unsigned = body(rec)
  const signature = signer.sign(signatureInput(dhtKeyOf(rec), unsigned))
  const bytes = new Uint8Array(unsigned.length + SIGNATURE_BYTES)
  bytes.set(unsigned, 0)
  bytes.set(signature, unsigned.length)
  // decoded, so the result is exactly what every reader of these bytes will see
  return decodeRecord(bytes)
}

function safeTime (v: bigint): number {
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v)
}

function readU64 (v: Uint8Array, at = 0): bigint {
  return new DataView(v.buffer, v.byteOffset, v.byteLength).getBigUint64(at)
}

/**
 * Decodes without checking the signature or the clock. Throws RecordError.
 * The record owns its bytes: the input is copied once into a plain Uint8Array, so no field is a view
 * on the caller's buffer (a Buffer's slice() does not copy) and every field has the same type whichever
 * path (network, datastore, local) the bytes came by.
 * Faults are found in byte order: the first field that breaks a rule names the fault.
 */
export function decodeRecord (input: Uint8Array): SignedRecord {
  if (input.length > MAX_RECORD_SIZE) throw new RecordError('oversize')
  const bytes = Uint8Array.from(input)
  if (bytes.length < 1) throw new RecordError('truncated')
  if (bytes[0] !== RECORD_VERSION) throw new RecordError('version')
  if (bytes.length < 2) throw new RecordError('truncated')
  const kind = bytes[1]
  if (kind !== KIND_NAME && kind !== KIND_RELAY) throw new RecordError('kind')
  if (bytes.length < HEADER_BYTES + SIGNATURE_BYTES) throw new RecordError('truncated')
  const end = bytes.length - SIGNATURE_BYTES
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)

  let nick: string | undefined
  let identityKey: Uint8Array | undefined
  const onionKeys: OnionKeyEntry[] = []
  const mailboxes: MailboxEntry[] = []
  const addrs: string[] = []
  const extensions: RecordExtension[] = []
  let sequence: bigint | undefined
  let expiry: number | undefined
  let last = -1
  let o = HEADER_BYTES
  while (o < end) {
    // bytes left over before the signature that cannot hold a field header
    if (end - o < FIELD_HEADER_BYTES) throw new RecordError('trailing-bytes')
    const type = bytes[o]
    const len = view.getUint16(o + 1)
    o += FIELD_HEADER_BYTES
    if (o + len > end) throw new RecordError('truncated')
    const value = bytes.slice(o, o + len)
    o += len
    if (type < last || (type === last && !repeatable(type))) throw new RecordError('field-order')
    last = type
    switch (type) {
      case FIELD_NICK: {
        if (kind !== KIND_NAME) throw new RecordError('nick')
        const s = String.fromCharCode(...value)
        if (!isValidNick(s)) throw new RecordError('nick')
        nick = s
        break
      }
      case FIELD_IDENTITY_KEY:
        if (len !== 32) throw new RecordError('key')
        identityKey = value
        break
      case FIELD_ONION_KEY: {
        if (len !== ONION_KEY_FIELD_BYTES) throw new RecordError('onion-keys')
        if (onionKeys.length === MAX_ONION_KEYS) throw new RecordError('onion-keys')
        const v = new DataView(value.buffer)
        onionKeys.push({ epoch: v.getUint32(0), notBefore: safeTime(v.getBigUint64(4)), notAfter: safeTime(v.getBigUint64(12)), key: value.slice(20) })
        break
      }
      case FIELD_MAILBOX:
        if (kind !== KIND_NAME || len !== MAILBOX_FIELD_BYTES || mailboxes.length === MAX_MAILBOXES) throw new RecordError('mailboxes')
        mailboxes.push({ relay: value.slice(0, 32), id: value.slice(32) })
        break
      case FIELD_ADDRESS:
        if (kind !== KIND_RELAY) throw new RecordError('addrs', 'a name record carries no address')
        if (len === 0 || len > MAX_ADDR_BYTES || addrs.length === MAX_ADDRS) throw new RecordError('addrs')
        try {
          addrs.push(multiaddr(value).toString())
        } catch {
          throw new RecordError('addrs')
        }
        break
      case FIELD_SEQUENCE:
        if (len !== 8) throw new RecordError('field-length')
        sequence = readU64(value)
        break
      case FIELD_EXPIRY:
        if (len !== 8) throw new RecordError('field-length')
        expiry = safeTime(readU64(value))
        break
      default:
        if (type < FIRST_OPTIONAL_FIELD) throw new RecordError('unknown-field', `unknown field type 0x${type.toString(16).padStart(2, '0')} below 0x80`)
        extensions.push({ type, value })
    }
  }
  if (kind === KIND_NAME && nick == null) throw new RecordError('nick')
  if (identityKey == null || sequence == null || expiry == null) throw new RecordError('missing-field')
  if (onionKeys.length < 1) throw new RecordError('onion-keys')
  const signature = bytes.slice(end)
  let peerId: string
  try {
    peerId = peerIdOfIdentityKey(identityKey)
  } catch {
    throw new RecordError('key')
  }
  return { kind, nick: nick ?? '', identityKey, onionKeys, mailboxes, addrs, extensions, sequence, expiry, peerId, signature, bytes }
}

/**
 * Everything a storing node and a reader check: size, layout, that the record belongs under `dhtKey`
 * (nick or peer id), that it is live and not too long-lived for its kind, and its signature.
 */
export function verifyRecord (dhtKey: Uint8Array, bytes: Uint8Array, now = Date.now()): SignedRecord {
  const rec = decodeRecord(bytes)
  if (!bytesEqual(dhtKey, dhtKeyOf(rec))) throw new RecordError('dht-key')
  if (rec.expiry <= now) throw new RecordError('expired')
  if (rec.expiry > now + maxLifetimeMs(rec.kind) + CLOCK_SKEW_MS) throw new RecordError('lifetime')
  const unsigned = rec.bytes.subarray(0, rec.bytes.length - SIGNATURE_BYTES)
  if (!ed25519Verify(rec.identityKey, signatureInput(dhtKey, unsigned), rec.signature)) throw new RecordError('signature')
  return rec
}

export function bytesEqual (a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}
