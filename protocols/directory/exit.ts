/**
 * Onion-routed directory requests: the exit side (a relay runs the DHT operation for a user and answers
 * through the request's reply block) and the client's codec and comparison rule. Spec: EXIT.md beside
 * this file; PROTOCOL-V2.md section 5 (service 0x02). Vectors: test/vectors/directory-exit.json.
 *
 * The caller (the relay's service dispatcher) strips `service u8 | reply block length u16 | reply block`
 * and hands over the rest, the request; it sends the answer back as the reply payload `0x02 | answer`.
 *
 *   request = op u8 | ...                      (no trailing bytes)
 *     0x01 LOOKUP_NAME   nick length u8 (1..32) | nick
 *     0x02 PUBLISH_NAME  record length u16 (1..2048) | record (a signed v2 name record)
 *     0x03 FIND_RELAYS   max count u8 (1..64)
 *   answer = op u8 (the request's) | status u8 | ...   at most ANSWER_MAX_BYTES (2588)
 *     0x00 OK         lookup: record length u16 | record (as the DHT vote chose it)
 *                     publish: stored u16 (remote DHT peers that acknowledged the put)
 *                     find-relays: count u8 | (descriptor length u16 | descriptor)*
 *     0x01 NOT_FOUND  lookup only: no live valid record
 *     0x02 TAKEN      publish only: holder record length u16 (0 = unknown) | the holder's record
 *     0x03 REFUSED    publish only: fault length u8 (1..32) | fault (ASCII [a-z-], a RecordFault)
 *     0x04 BUSY       the exit runs its limit of DHT operations; ask another exit
 *     0x05 ERROR      reason u8: 0x01 timeout, 0x02 unreachable (no DHT peer answered or stored),
 *                     0x03 bad-request, 0x04 unknown-op, 0x05 internal
 * Decoders never throw (they return { ok: false, reason }); encoders throw ExitCodecError.
 */
import { randomInt } from 'node:crypto'
import { logger } from '@libp2p/logger'
import type { AbortOptions } from '@libp2p/interface'
import { bytesEqual, isValidNick, MAX_RECORD_SIZE, nameKey, RecordError, verifyRecord } from './record.ts'
import type { PublishResult } from './index.ts'
import type { SignedRecord } from './record.ts'

const log = logger('p2pchat:directory:exit')

/** The directory service's number in a SERVICE body (PROTOCOL-V2.md section 5). */
export const DIRECTORY_SERVICE = 0x02
/** Payload capacity of a Sphinx v2 packet (2589, PROTOCOL-V2.md section 3) minus the answer's service byte. */
export const ANSWER_MAX_BYTES = 2589 - 1
/** The payload capacity minus the service header with a reply block (1 + 2 + 529): what a request may use. */
export const REQUEST_MAX_BYTES = 2589 - 1 - 2 - 529

export const OP_LOOKUP_NAME = 0x01
export const OP_PUBLISH_NAME = 0x02
export const OP_FIND_RELAYS = 0x03

export const STATUS_OK = 0x00
export const STATUS_NOT_FOUND = 0x01
export const STATUS_TAKEN = 0x02
export const STATUS_REFUSED = 0x03
export const STATUS_BUSY = 0x04
export const STATUS_ERROR = 0x05

/** Error reasons (status ERROR), by code. */
export const ERROR_REASONS = { 1: 'timeout', 2: 'unreachable', 3: 'bad-request', 4: 'unknown-op', 5: 'internal' } as const
export type ExitErrorReason = typeof ERROR_REASONS[keyof typeof ERROR_REASONS]
const ERROR_CODES: Record<ExitErrorReason, number> = { timeout: 1, unreachable: 2, 'bad-request': 3, 'unknown-op': 4, internal: 5 }

/** The relay-list limit (PROTOCOL-V2.md section 2): a client never needs more from one answer. */
export const MAX_FIND_RELAYS = 64
/** A fault name in a REFUSED answer: RecordFault strings are short ASCII words. */
const MAX_FAULT_LENGTH = 32
const FAULT_PATTERN = /^[a-z-]{1,32}$/

/** DHT operations one exit runs at once; more are answered BUSY (a lookup holds ~20 DHT streams). */
export const DEFAULT_EXIT_MAX_CONCURRENT = 8
/** A lookup's bound at the exit: Directory's own lookup timeout (10 s) plus slack. */
export const DEFAULT_EXIT_LOOKUP_TIMEOUT_MS = 15_000
/** A publish is lookup + put + read-back (10 + 20 + 10 s in Directory's defaults) plus slack. */
export const DEFAULT_EXIT_PUBLISH_TIMEOUT_MS = 45_000

export type ExitRequest =
  | { op: typeof OP_LOOKUP_NAME, nick: string }
  | { op: typeof OP_PUBLISH_NAME, record: Uint8Array }
  | { op: typeof OP_FIND_RELAYS, max: number }

export type ExitAnswer =
  | { op: typeof OP_LOOKUP_NAME, status: 'found', record: Uint8Array }
  | { op: typeof OP_LOOKUP_NAME, status: 'not-found' }
  | { op: typeof OP_PUBLISH_NAME, status: 'stored', stored: number }
  | { op: typeof OP_PUBLISH_NAME, status: 'taken', holder: Uint8Array }
  | { op: typeof OP_PUBLISH_NAME, status: 'refused', fault: string }
  | { op: typeof OP_FIND_RELAYS, status: 'relays', descriptors: Uint8Array[] }
  | { op: number, status: 'busy' }
  | { op: number, status: 'error', reason: ExitErrorReason }

export type Decoded<T> = { ok: true, value: T } | { ok: false, reason: string }

/** An encoder was given something the format cannot carry; `reason` says what. */
export class ExitCodecError extends Error {
  readonly reason: string
  constructor (reason: string, message?: string) {
    super(message ?? `cannot encode a directory exit message: ${reason}`)
    this.name = 'ExitCodecError'
    this.reason = reason
  }
}

// ---- requests ----

export function encodeLookup (nick: string): Uint8Array {
  if (!isValidNick(nick)) throw new ExitCodecError('nick', `invalid nick "${nick}"`)
  return Uint8Array.from([OP_LOOKUP_NAME, nick.length, ...new TextEncoder().encode(nick)])
}

export function encodePublish (record: Uint8Array): Uint8Array {
  if (record.length < 1 || record.length > MAX_RECORD_SIZE) throw new ExitCodecError('record-length', `a record is 1..${MAX_RECORD_SIZE} bytes, not ${record.length}`)
  const out = new Uint8Array(3 + record.length)
  out[0] = OP_PUBLISH_NAME
  out[1] = record.length >> 8
  out[2] = record.length & 0xff
  out.set(record, 3)
  return out
}

export function encodeFindRelays (max: number): Uint8Array {
  if (!Number.isInteger(max) || max < 1 || max > MAX_FIND_RELAYS) throw new ExitCodecError('count', `max count is 1..${MAX_FIND_RELAYS}, not ${max}`)
  return Uint8Array.from([OP_FIND_RELAYS, max])
}

export function decodeRequest (bytes: Uint8Array): Decoded<ExitRequest> {
  if (bytes.length < 1) return { ok: false, reason: 'empty' }
  if (bytes.length > REQUEST_MAX_BYTES) return { ok: false, reason: 'oversize' }
  switch (bytes[0]) {
    case OP_LOOKUP_NAME: {
      if (bytes.length < 2) return { ok: false, reason: 'truncated' }
      const n = bytes[1]
      if (bytes.length !== 2 + n) return { ok: false, reason: bytes.length < 2 + n ? 'truncated' : 'trailing-bytes' }
      const nick = String.fromCharCode(...bytes.subarray(2))
      if (!isValidNick(nick)) return { ok: false, reason: 'nick' }
      return { ok: true, value: { op: OP_LOOKUP_NAME, nick } }
    }
    case OP_PUBLISH_NAME: {
      if (bytes.length < 3) return { ok: false, reason: 'truncated' }
      const n = (bytes[1] << 8) | bytes[2]
      if (n < 1 || n > MAX_RECORD_SIZE) return { ok: false, reason: 'record-length' }
      if (bytes.length !== 3 + n) return { ok: false, reason: bytes.length < 3 + n ? 'truncated' : 'trailing-bytes' }
      return { ok: true, value: { op: OP_PUBLISH_NAME, record: new Uint8Array(bytes.subarray(3)) } } // a copy: a Buffer's slice() is a view
    }
    case OP_FIND_RELAYS: {
      if (bytes.length !== 2) return { ok: false, reason: bytes.length < 2 ? 'truncated' : 'trailing-bytes' }
      if (bytes[1] < 1 || bytes[1] > MAX_FIND_RELAYS) return { ok: false, reason: 'count' }
      return { ok: true, value: { op: OP_FIND_RELAYS, max: bytes[1] } }
    }
    default:
      return { ok: false, reason: 'unknown-op' }
  }
}

// ---- answers ----

function withLength16 (head: number[], body: Uint8Array): Uint8Array {
  const out = new Uint8Array(head.length + 2 + body.length)
  out.set(head, 0)
  out[head.length] = body.length >> 8
  out[head.length + 1] = body.length & 0xff
  out.set(body, head.length + 2)
  return out
}

/** Encodes an answer; throws ExitCodecError when a field is out of range or the answer exceeds ANSWER_MAX_BYTES. */
export function encodeAnswer (a: ExitAnswer): Uint8Array {
  if (!Number.isInteger(a.op) || a.op < 0 || a.op > 0xff) throw new ExitCodecError('op')
  let out: Uint8Array
  switch (a.status) {
    case 'found':
      if (a.record.length < 1 || a.record.length > MAX_RECORD_SIZE) throw new ExitCodecError('record-length')
      out = withLength16([a.op, STATUS_OK], a.record)
      break
    case 'not-found':
      out = Uint8Array.from([a.op, STATUS_NOT_FOUND])
      break
    case 'stored':
      if (!Number.isInteger(a.stored) || a.stored < 0) throw new ExitCodecError('stored')
      out = Uint8Array.from([a.op, STATUS_OK, Math.min(a.stored, 0xffff) >> 8, Math.min(a.stored, 0xffff) & 0xff])
      break
    case 'taken':
      if (a.holder.length > MAX_RECORD_SIZE) throw new ExitCodecError('record-length')
      out = withLength16([a.op, STATUS_TAKEN], a.holder)
      break
    case 'refused': {
      if (!FAULT_PATTERN.test(a.fault)) throw new ExitCodecError('fault', `a fault is 1..${MAX_FAULT_LENGTH} of [a-z-]`)
      out = Uint8Array.from([a.op, STATUS_REFUSED, a.fault.length, ...new TextEncoder().encode(a.fault)])
      break
    }
    case 'relays': {
      if (a.descriptors.length > MAX_FIND_RELAYS) throw new ExitCodecError('count')
      const parts: number[] = [a.op, STATUS_OK, a.descriptors.length]
      let size = parts.length
      for (const d of a.descriptors) {
        if (d.length < 1 || d.length > MAX_RECORD_SIZE) throw new ExitCodecError('record-length')
        size += 2 + d.length
      }
      if (size > ANSWER_MAX_BYTES) throw new ExitCodecError('oversize', `a ${size}-byte answer does not fit one reply payload (${ANSWER_MAX_BYTES})`)
      out = new Uint8Array(size)
      out.set(parts, 0)
      let o = parts.length
      for (const d of a.descriptors) {
        out[o++] = d.length >> 8
        out[o++] = d.length & 0xff
        out.set(d, o); o += d.length
      }
      break
    }
    case 'busy':
      out = Uint8Array.from([a.op, STATUS_BUSY])
      break
    case 'error':
      out = Uint8Array.from([a.op, STATUS_ERROR, ERROR_CODES[a.reason]])
      break
  }
  if (out.length > ANSWER_MAX_BYTES) throw new ExitCodecError('oversize', `a ${out.length}-byte answer does not fit one reply payload (${ANSWER_MAX_BYTES})`)
  return out
}

/** Reads `u16 length | bytes` at `o`; undefined when it runs past the end or is outside 1..max (0 allowed when `empty`). */
function read16 (b: Uint8Array, o: number, empty = false): { value: Uint8Array, next: number } | undefined {
  if (o + 2 > b.length) return undefined
  const n = (b[o] << 8) | b[o + 1]
  if ((n === 0 && !empty) || n > MAX_RECORD_SIZE || o + 2 + n > b.length) return undefined
  return { value: new Uint8Array(b.subarray(o + 2, o + 2 + n)), next: o + 2 + n }
}

/** Decodes an answer; never throws. The record bytes inside are not verified here (see compareLookups). */
export function decodeAnswer (bytes: Uint8Array): Decoded<ExitAnswer> {
  if (bytes.length < 2) return { ok: false, reason: 'truncated' }
  if (bytes.length > ANSWER_MAX_BYTES) return { ok: false, reason: 'oversize' }
  const op = bytes[0]
  const status = bytes[1]
  const done = <T extends ExitAnswer>(value: T, end: number): Decoded<ExitAnswer> =>
    end === bytes.length ? { ok: true, value } : { ok: false, reason: 'trailing-bytes' }
  if (status === STATUS_BUSY) return done({ op, status: 'busy' }, 2)
  if (status === STATUS_ERROR) {
    if (bytes.length < 3) return { ok: false, reason: 'truncated' }
    const reason = (ERROR_REASONS as Record<number, ExitErrorReason | undefined>)[bytes[2]]
    if (reason == null) return { ok: false, reason: 'error-reason' }
    return done({ op, status: 'error', reason }, 3)
  }
  switch (op) {
    case OP_LOOKUP_NAME:
      if (status === STATUS_NOT_FOUND) return done({ op, status: 'not-found' }, 2)
      if (status === STATUS_OK) {
        const r = read16(bytes, 2)
        if (r == null) return { ok: false, reason: 'record-length' }
        return done({ op, status: 'found', record: r.value }, r.next)
      }
      break
    case OP_PUBLISH_NAME:
      if (status === STATUS_OK) {
        if (bytes.length < 4) return { ok: false, reason: 'truncated' }
        return done({ op, status: 'stored', stored: (bytes[2] << 8) | bytes[3] }, 4)
      }
      if (status === STATUS_TAKEN) {
        const r = read16(bytes, 2, true)
        if (r == null) return { ok: false, reason: 'record-length' }
        return done({ op, status: 'taken', holder: r.value }, r.next)
      }
      if (status === STATUS_REFUSED) {
        if (bytes.length < 3) return { ok: false, reason: 'truncated' }
        const n = bytes[2]
        if (bytes.length < 3 + n) return { ok: false, reason: 'truncated' }
        const fault = String.fromCharCode(...bytes.subarray(3, 3 + n))
        if (!FAULT_PATTERN.test(fault)) return { ok: false, reason: 'fault' }
        return done({ op, status: 'refused', fault }, 3 + n)
      }
      break
    case OP_FIND_RELAYS:
      if (status === STATUS_OK) {
        if (bytes.length < 3) return { ok: false, reason: 'truncated' }
        const count = bytes[2]
        if (count > MAX_FIND_RELAYS) return { ok: false, reason: 'count' }
        const descriptors: Uint8Array[] = []
        let o = 3
        for (let i = 0; i < count; i++) {
          const r = read16(bytes, o)
          if (r == null) return { ok: false, reason: 'record-length' }
          descriptors.push(r.value)
          o = r.next
        }
        return done({ op, status: 'relays', descriptors }, o)
      }
      break
    default:
      return { ok: false, reason: 'unknown-op' }
  }
  return { ok: false, reason: 'status' }
}

// ---- the client's comparison rule ----

export type LookupVerdict =
  /** Every exit that found a record found the same identity key: `record` (its highest sequence). `agreed`: all exits found it. */
  | { verdict: 'found', record: SignedRecord, agreed: boolean, warnings: string[] }
  /** Every exit answered NOT_FOUND: the only way to conclude "no such nick". */
  | { verdict: 'not-found', warnings: string[] }
  /** Exits returned records of different identity keys (one per key, highest sequence): a warning; the client decides by its pins. */
  | { verdict: 'disagree', records: SignedRecord[], warnings: string[] }
  /** No exit found a record, and not all of them said NOT_FOUND (errors, busy, no answer, invalid answers). */
  | { verdict: 'unknown', warnings: string[] }

/**
 * Combines the answers of several exits to one LOOKUP_NAME (`undefined` = no answer in time). Each
 * found record is verified for `nick` here (an exit's invalid record counts as a failed answer, with a
 * warning). See EXIT.md "Comparing exits".
 */
export function compareLookups (nick: string, answers: Array<Uint8Array | undefined>, now = Date.now()): LookupVerdict {
  const warnings: string[] = []
  const found: SignedRecord[] = []
  let notFound = 0
  answers.forEach((bytes, i) => {
    if (bytes == null) { warnings.push(`exit ${i}: no answer`); return }
    const d = decodeAnswer(bytes)
    if (!d.ok) { warnings.push(`exit ${i}: malformed answer (${d.reason})`); return }
    const a = d.value
    if (a.op !== OP_LOOKUP_NAME) { warnings.push(`exit ${i}: answered another operation (${a.op})`); return }
    if (a.status === 'not-found') { notFound++; return }
    if (a.status === 'busy') { warnings.push(`exit ${i}: busy`); return }
    if (a.status === 'error') { warnings.push(`exit ${i}: error (${a.reason})`); return }
    try {
      found.push(verifyRecord(nameKey(nick), a.record, now))
    } catch (err) {
      if (!(err instanceof RecordError)) throw err
      warnings.push(`exit ${i}: answered an invalid record (${err.fault})`)
    }
  })
  if (found.length === 0) {
    if (notFound > 0 && notFound === answers.length) return { verdict: 'not-found', warnings }
    return { verdict: 'unknown', warnings }
  }
  const byKey: SignedRecord[] = []
  for (const rec of found) {
    const i = byKey.findIndex(r => bytesEqual(r.identityKey, rec.identityKey))
    if (i < 0) byKey.push(rec)
    else if (rec.sequence > byKey[i].sequence) byKey[i] = rec
  }
  if (notFound > 0) warnings.push(`${notFound} of ${answers.length} exits found no record for "${nick}"`)
  if (byKey.length > 1) {
    warnings.push(`exits disagree: ${byKey.length} identity keys claim "${nick}"`)
    return { verdict: 'disagree', records: byKey, warnings }
  }
  return { verdict: 'found', record: byKey[0], agreed: found.length === answers.length, warnings }
}

// ---- the exit ----

/** What the exit needs of the Directory (index.ts): the same lookup and publication a user runs. */
export interface ExitDirectory {
  lookupName: (nick: string, options?: AbortOptions) => Promise<SignedRecord>
  publishSignedName: (recordBytes: Uint8Array, options?: AbortOptions) => Promise<PublishResult>
}

export interface DirectoryExitInit {
  directory: ExitDirectory
  /** Signed relay descriptors the exit knows (its live relay directory), for FIND_RELAYS. */
  relayDescriptors: () => Uint8Array[]
  maxConcurrent?: number
  lookupTimeoutMs?: number
  publishTimeoutMs?: number
}

type OpName = 'lookup' | 'publish' | 'find-relays' | 'invalid'

/** Runs directory requests for onion clients; never throws from handle(). */
export class DirectoryExit {
  private readonly init: Required<DirectoryExitInit>
  private inFlight = 0
  /** Answers by operation and outcome ('found', 'not-found', 'stored', 'taken', 'refused:<fault>', 'busy', 'error:<reason>', ...). */
  readonly stats: Record<OpName, Record<string, number>> = { lookup: {}, publish: {}, 'find-relays': {}, invalid: {} }

  constructor (init: DirectoryExitInit) {
    this.init = {
      maxConcurrent: DEFAULT_EXIT_MAX_CONCURRENT,
      lookupTimeoutMs: DEFAULT_EXIT_LOOKUP_TIMEOUT_MS,
      publishTimeoutMs: DEFAULT_EXIT_PUBLISH_TIMEOUT_MS,
      ...init
    }
  }

  /** DHT operations running now. */
  get running (): number { return this.inFlight }

  private count (op: OpName, outcome: string): void {
    this.stats[op][outcome] = (this.stats[op][outcome] ?? 0) + 1
  }

  /** Answers one request (the bytes after the service header). `signal` ends the work early (the relay stops). */
  async handle (request: Uint8Array, signal?: AbortSignal): Promise<Uint8Array> {
    const d = decodeRequest(request)
    if (!d.ok) {
      const reason: ExitErrorReason = d.reason === 'unknown-op' ? 'unknown-op' : 'bad-request'
      this.count('invalid', d.reason)
      return encodeAnswer({ op: request.length > 0 ? request[0] : 0, status: 'error', reason })
    }
    const req = d.value
    if (req.op === OP_FIND_RELAYS) return this.findRelays(req.max)
    const name: OpName = req.op === OP_LOOKUP_NAME ? 'lookup' : 'publish'
    if (this.inFlight >= this.init.maxConcurrent) {
      this.count(name, 'busy')
      return encodeAnswer({ op: req.op, status: 'busy' })
    }
    this.inFlight++
    const timeout = AbortSignal.timeout(req.op === OP_LOOKUP_NAME ? this.init.lookupTimeoutMs : this.init.publishTimeoutMs)
    const opSignal = signal != null ? AbortSignal.any([signal, timeout]) : timeout
    try {
      const answer = req.op === OP_LOOKUP_NAME ? await this.lookup(req.nick, opSignal) : await this.publish(req.record, opSignal)
      this.count(name, answer.status === 'error' ? `error:${answer.reason}` : answer.status === 'refused' ? `refused:${answer.fault}` : answer.status)
      return encodeAnswer(answer)
    } catch (err) {
      // an answer that cannot be encoded is our bug, not the client's: say so, do not crash the relay
      log.error('directory exit: %s', (err as Error).message)
      this.count(name, 'error:internal')
      return encodeAnswer({ op: req.op, status: 'error', reason: 'internal' })
    } finally {
      this.inFlight--
    }
  }

  private async lookup (nick: string, signal: AbortSignal): Promise<ExitAnswer> {
    try {
      const rec = await this.init.directory.lookupName(nick, { signal })
      return { op: OP_LOOKUP_NAME, status: 'found', record: rec.bytes }
    } catch (err) {
      const e = err as Error & { responses?: number }
      if (e.name === 'NameNotFoundError') {
        // nobody answered: "not found" would be a claim about the nick the exit cannot make
        if (e.responses === 0) return { op: OP_LOOKUP_NAME, status: 'error', reason: 'unreachable' }
        return { op: OP_LOOKUP_NAME, status: 'not-found' }
      }
      if (signal.aborted) return { op: OP_LOOKUP_NAME, status: 'error', reason: 'timeout' }
      // no nick in a relay's log (issue 10, item 9)
      log('a lookup failed: %s', e.message)
      return { op: OP_LOOKUP_NAME, status: 'error', reason: 'internal' }
    }
  }

  private async publish (record: Uint8Array, signal: AbortSignal): Promise<ExitAnswer> {
    try {
      const { stored } = await this.init.directory.publishSignedName(record, { signal })
      return { op: OP_PUBLISH_NAME, status: 'stored', stored }
    } catch (err) {
      if (err instanceof RecordError) return { op: OP_PUBLISH_NAME, status: 'refused', fault: err.fault }
      const e = err as Error & { record?: SignedRecord }
      if (e.name === 'NickTakenError') return { op: OP_PUBLISH_NAME, status: 'taken', holder: e.record?.bytes ?? new Uint8Array() }
      if (signal.aborted) return { op: OP_PUBLISH_NAME, status: 'error', reason: 'timeout' }
      if (e.name === 'PublishError') return { op: OP_PUBLISH_NAME, status: 'error', reason: 'unreachable' }
      log('publish failed: %s', e.message)
      return { op: OP_PUBLISH_NAME, status: 'error', reason: 'internal' }
    }
  }

  /** Up to `max` descriptors, chosen at random from the source, as many as fit one answer. */
  private findRelays (max: number): Uint8Array {
    let source: Uint8Array[]
    try {
      source = [...this.init.relayDescriptors()]
    } catch (err) {
      log.error('relay descriptor source failed: %s', (err as Error).message)
      this.count('find-relays', 'error:internal')
      return encodeAnswer({ op: OP_FIND_RELAYS, status: 'error', reason: 'internal' })
    }
    const chosen: Uint8Array[] = []
    let size = 3
    for (let i = source.length - 1; i >= 0 && chosen.length < max; i--) {
      const j = randomInt(i + 1)
      ;[source[i], source[j]] = [source[j], source[i]]
      const d = source[i]
      if (d.length < 1 || d.length > MAX_RECORD_SIZE || size + 2 + d.length > ANSWER_MAX_BYTES) continue
      chosen.push(d)
      size += 2 + d.length
    }
    this.count('find-relays', chosen.length === 0 ? 'empty' : 'relays')
    return encodeAnswer({ op: OP_FIND_RELAYS, status: 'relays', descriptors: chosen })
  }
}
