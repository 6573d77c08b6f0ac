/**
 * Relay attestations, version 1 (ATTEST.md): what a relay vouches for about the other relays it knows,
 * carried in its own signed descriptor (record.ts) as the optional field 0x81, so the descriptor's
 * signature covers it and no new signed structure is needed:
 *
 *   field 0x81 value = version u8 (=1) | flags u8 | count u8 (0..MAX_ATTESTED) | count x entry
 *   entry (26 bytes) = relay tag 16 | first seen u32 (unix seconds) | status u8 | group 5
 *   relay tag        = SHA-256("p2pchat-attest-v1" | the relay's transport key 32), first 16 bytes
 *   flags            bit 0 COMPLETE: the list names every relay the attester holds a live descriptor of
 *                    (then a relay it does not name counts as "not known": age 0, not probed, no address)
 *   status           bit 0 PROBED: a loop probe through the relay came back (within the attester's
 *                    probe interval); bit 1 REACHED: the attester connected to the relay at an address of
 *                    its descriptor (a new connection, Noise-authenticated as that relay)
 *   group            kind u8 (0 none, 4 IPv4, 6 IPv6) | 4 bytes: an IPv4 /16 (a, b, 0, 0) or an IPv6 /32;
 *                    the network group of the first descriptor address it reached (kind 0 without REACHED)
 *
 * Limits: at most MAX_ATTESTED entries (the record's 2048 bytes); a value of another length, an unknown
 * version, a count over the limit, unknown flag or status bits, a bad group kind, or two fields in one
 * descriptor is a malformed field (AttestError): the attester's attestations are all ignored, its
 * descriptor is still used. A reader that does not know field 0x81 ignores it (record.ts), so the
 * descriptor format stays version 2; this field has its own version.
 */
import { createHash } from 'node:crypto'
import type { RecordExtension, SignedRecord } from './record.ts'

export const FIELD_ATTEST = 0x81
export const ATTEST_VERSION = 1
/** Domain separation of the relay tag. */
export const ATTEST_CONTEXT = new TextEncoder().encode('p2pchat-attest-v1')
/** A relay tag: 128 bits, so grinding a key whose tag matches an old relay's is out of reach. */
export const TAG_BYTES = 16
export const ENTRY_BYTES = TAG_BYTES + 4 + 1 + 5
/**
 * Entries in one descriptor: 48 x 26 = 1,248 bytes, leaving room in a 2048-byte record for a relay's
 * addresses, three onion keys and a family. A network of more live relays gets partial lists
 * (COMPLETE unset), and a relay an attester does not name then counts as no vote.
 */
export const MAX_ATTESTED = 48
export const FLAG_COMPLETE = 0x01
export const STATUS_PROBED = 0x01
export const STATUS_REACHED = 0x02

export type AttestFault = 'attest-length' | 'attest-version' | 'attest-count' | 'attest-flags' | 'attest-status' | 'attest-group' | 'attest-twice'

/** A malformed attestation field; `fault` says how. */
export class AttestError extends Error {
  readonly fault: AttestFault
  constructor (fault: AttestFault, message?: string) {
    super(message ?? `malformed relay attestations: ${fault}`)
    this.name = 'AttestError'
    this.fault = fault
  }
}

export interface Attestation {
  /** relayTag() of the relay vouched for, hex. */
  tag: string
  /** When the attester first stored a descriptor of the relay (unix ms, whole seconds). */
  firstSeen: number
  probed: boolean
  /** The network group (subnet.ts form: `ip4:a.b`, `ip6:x:y`) of the first descriptor address the attester reached. */
  reached?: string
}

export interface Attestations {
  complete: boolean
  entries: Attestation[]
}

/** The tag under which relays are attested (hex): a hash of the 32-byte transport key. */
export function relayTag (transportKey: Uint8Array): string {
  return createHash('sha256').update(ATTEST_CONTEXT).update(transportKey).digest().subarray(0, TAG_BYTES).toString('hex')
}

function encodeGroup (group: string | undefined, out: Uint8Array): void {
  if (group == null) return
  const v4 = /^ip4:(\d{1,3})\.(\d{1,3})$/.exec(group)
  if (v4 != null) { out[0] = 4; out[1] = Number(v4[1]); out[2] = Number(v4[2]); return }
  const v6 = /^ip6:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(group)
  if (v6 != null) {
    const a = parseInt(v6[1], 16)
    const b = parseInt(v6[2], 16)
    out.set([6, a >> 8, a & 0xff, b >> 8, b & 0xff])
    return
  }
  throw new RangeError(`not a network group: ${group}`)
}

function decodeGroup (b: Uint8Array): string | undefined {
  if (b[0] === 0) {
    if (b[1] !== 0 || b[2] !== 0 || b[3] !== 0 || b[4] !== 0) throw new AttestError('attest-group')
    return undefined
  }
  if (b[0] === 4) {
    if (b[3] !== 0 || b[4] !== 0) throw new AttestError('attest-group')
    return `ip4:${b[1]}.${b[2]}`
  }
  if (b[0] === 6) return `ip6:${((b[1] << 8) | b[2]).toString(16)}:${((b[3] << 8) | b[4]).toString(16)}`
  throw new AttestError('attest-group')
}

/** The field a relay puts in its descriptor. Throws RangeError for more than MAX_ATTESTED entries or a bad tag/group. */
export function attestExtension (att: Attestations): RecordExtension {
  if (att.entries.length > MAX_ATTESTED) throw new RangeError(`at most ${MAX_ATTESTED} attestations`)
  const value = new Uint8Array(3 + att.entries.length * ENTRY_BYTES)
  value[0] = ATTEST_VERSION
  value[1] = att.complete ? FLAG_COMPLETE : 0
  value[2] = att.entries.length
  let o = 3
  for (const e of att.entries) {
    const tag = Buffer.from(e.tag, 'hex')
    if (tag.length !== TAG_BYTES) throw new RangeError('a relay tag is 16 bytes')
    value.set(tag, o)
    const seconds = Math.floor(e.firstSeen / 1000)
    if (!(seconds >= 0 && seconds <= 0xffffffff)) throw new RangeError('first seen out of range')
    new DataView(value.buffer).setUint32(o + TAG_BYTES, seconds)
    value[o + TAG_BYTES + 4] = (e.probed ? STATUS_PROBED : 0) | (e.reached != null ? STATUS_REACHED : 0)
    encodeGroup(e.reached, value.subarray(o + TAG_BYTES + 5, o + ENTRY_BYTES))
    o += ENTRY_BYTES
  }
  return { type: FIELD_ATTEST, value }
}

/**
 * The attestations a verified descriptor carries; undefined when it carries none. Throws AttestError
 * for a malformed field.
 */
export function attestationsOf (record: Pick<SignedRecord, 'extensions'>): Attestations | undefined {
  const fields = record.extensions.filter(e => e.type === FIELD_ATTEST)
  if (fields.length === 0) return undefined
  if (fields.length > 1) throw new AttestError('attest-twice')
  const v = fields[0].value
  if (v.length < 3) throw new AttestError('attest-length')
  if (v[0] !== ATTEST_VERSION) throw new AttestError('attest-version')
  if ((v[1] & ~FLAG_COMPLETE) !== 0) throw new AttestError('attest-flags')
  const count = v[2]
  if (count > MAX_ATTESTED) throw new AttestError('attest-count')
  if (v.length !== 3 + count * ENTRY_BYTES) throw new AttestError('attest-length')
  const view = new DataView(v.buffer, v.byteOffset, v.byteLength)
  const entries: Attestation[] = []
  for (let i = 0, o = 3; i < count; i++, o += ENTRY_BYTES) {
    const status = v[o + TAG_BYTES + 4]
    if ((status & ~(STATUS_PROBED | STATUS_REACHED)) !== 0) throw new AttestError('attest-status')
    const group = decodeGroup(v.subarray(o + TAG_BYTES + 5, o + ENTRY_BYTES))
    if (((status & STATUS_REACHED) !== 0) !== (group != null)) throw new AttestError('attest-group')
    entries.push({
      tag: Buffer.from(v.subarray(o, o + TAG_BYTES)).toString('hex'),
      firstSeen: view.getUint32(o + TAG_BYTES) * 1000,
      probed: (status & STATUS_PROBED) !== 0,
      ...(group != null ? { reached: group } : {})
    })
  }
  return { complete: (v[1] & FLAG_COMPLETE) !== 0, entries }
}
