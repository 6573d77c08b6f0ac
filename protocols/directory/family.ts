/**
 * Relay families, version 1 (FAMILY.md): relays run by one operator declare it, so that a client puts
 * at most one of them on a path (protocols/onion/paths.ts). A family is named by an operator key, an
 * Ed25519 key pair the operator keeps apart from its relays' keys; it is declared in a relay descriptor
 * (record.ts) by the optional field 0x80, signed both ways:
 *
 *   field 0x80 value (97 bytes) = version u8 (=1) | family public key 32 | certificate 64
 *   certificate = Ed25519(family key, "p2pchat-relay-family-v1" | the relay's transport key 32)
 *
 * The relay's descriptor signature covers the field (the relay claims the family), and the certificate
 * is the family key's signature over the relay's key (the family claims the relay): nobody can put a
 * relay in a family whose key it does not hold, nor claim a family for a relay whose key it does not
 * hold. A descriptor carries at most one such field. A reader that does not know field 0x80 ignores it
 * (record.ts: optional fields), so the descriptor format stays version 2; this field has its own version.
 */
import { ed25519Verify } from '../crypto/keys.ts'
import type { Signer } from '../crypto/keys.ts'
import type { RecordExtension, SignedRecord } from './record.ts'

/** The optional record field that carries a family declaration (the first optional type). */
export const FIELD_FAMILY = 0x80
export const FAMILY_VERSION = 1
/** Domain separation of the certificate, so it is never a valid signature of anything else. */
export const FAMILY_CONTEXT = new TextEncoder().encode('p2pchat-relay-family-v1')
/** version 1 + key 32 + certificate 64. */
export const FAMILY_FIELD_BYTES = 97

export type FamilyFault = 'family-length' | 'family-version' | 'family-signature' | 'family-twice'

/** A family declaration that does not verify; `fault` says why. */
export class FamilyError extends Error {
  readonly fault: FamilyFault
  constructor (fault: FamilyFault, message?: string) {
    super(message ?? `invalid relay family declaration: ${fault}`)
    this.name = 'FamilyError'
    this.fault = fault
  }
}

function certificateInput (relayKey: Uint8Array): Uint8Array {
  const out = new Uint8Array(FAMILY_CONTEXT.length + relayKey.length)
  out.set(FAMILY_CONTEXT)
  out.set(relayKey, FAMILY_CONTEXT.length)
  return out
}

/** The field a relay whose transport key is `relayKey` puts in its descriptor, certified by `family`. */
export function familyExtension (family: Signer, relayKey: Uint8Array): RecordExtension {
  if (relayKey.length !== 32) throw new RangeError('a relay key is 32 bytes')
  const value = new Uint8Array(FAMILY_FIELD_BYTES)
  value[0] = FAMILY_VERSION
  value.set(family.publicKey, 1)
  value.set(family.sign(certificateInput(relayKey)), 33)
  return { type: FIELD_FAMILY, value }
}

/**
 * The family key (hex) a verified relay descriptor declares, or undefined when it declares none.
 * Throws FamilyError for a declaration that does not verify (a relay that lies is left out of paths).
 */
export function familyOf (record: Pick<SignedRecord, 'identityKey' | 'extensions'>): string | undefined {
  const fields = record.extensions.filter(e => e.type === FIELD_FAMILY)
  if (fields.length === 0) return undefined
  if (fields.length > 1) throw new FamilyError('family-twice')
  const v = fields[0].value
  if (v.length !== FAMILY_FIELD_BYTES) throw new FamilyError('family-length')
  if (v[0] !== FAMILY_VERSION) throw new FamilyError('family-version')
  const key = v.subarray(1, 33)
  if (!ed25519Verify(key, certificateInput(record.identityKey), v.subarray(33))) throw new FamilyError('family-signature')
  return Buffer.from(key).toString('hex')
}

/**
 * `familyOf`'s verdict on a descriptor, computed once per descriptor: paths are chosen often (every
 * send reads the usable relays: protocols/onion/paths.ts `pathRelays`, admission.ts) and a family check
 * is an Ed25519 verification, so with 50 relays, one in four in a family, verifying at every call cost
 * milliseconds per path (bench row `paths.relays-read`: ~2 ms per call against ~0.05 ms cached, quick
 * run on a loaded machine). The verdict (the family key, none, or the FamilyError) is kept per
 * record object in a WeakMap: a record is immutable once decoded and verified, a new descriptor (a new
 * sequence, other bytes) is a new object and gets its own verdict, and the cache holds no more entries
 * than records are alive (the relay directory's, at most one per relay): bounded by the directory, and
 * nothing stays behind once a descriptor is replaced or expires.
 */
const verdicts = new WeakMap<object, string | FamilyError | null>()

export function familyOfCached (record: Pick<SignedRecord, 'identityKey' | 'extensions'>): string | undefined {
  let v = verdicts.get(record)
  if (v === undefined) {
    try {
      v = familyOf(record) ?? null
    } catch (err) {
      if (!(err instanceof FamilyError)) throw err
      v = err
    }
    verdicts.set(record, v)
  }
  if (v instanceof FamilyError) throw v
  return v ?? undefined
}
