/**
 * How the DHT treats p2pchat records: the validator every storing node runs, the selector a reader
 * runs over the values peers returned, and the write guard that makes "first come, first served"
 * and "only a newer sequence replaces" hold on every storing node.
 *
 * kad-dht's PUT_VALUE handler validates and then overwrites whatever it held (storing nodes do not
 * run selectors), so the rules live in a datastore wrapper that compares an incoming record with
 * the one held before writing. A refused write keeps the held record and is counted, but does not
 * throw: kad-dht's get() sends "corrections" to peers whose value differs and fails the whole lookup
 * when one is not acknowledged, so a storer that throws would break honest readers. Publishers learn
 * of a refusal by reading the name back (see Directory.publishName).
 */
import { Libp2pRecord } from '@libp2p/record'
import { BaseDatastore } from 'datastore-core'
import { logger } from '@libp2p/logger'
import type { Datastore, Key, KeyQuery, Pair, Query } from 'interface-datastore'
import type { AbortOptions } from '@libp2p/interface'
import { bytesEqual, loggableKey, RecordError, verifyRecord } from './record.ts'
import type { RecordFault, SignedRecord } from './record.ts'

const log = logger('p2pchat:directory:dht')

/** The DHT's record datastore prefix (kad-dht's default `datastorePrefix` + `/record`). */
const RECORD_PREFIX = '/dht/record/'

export class RecordRejectedError extends Error {
  readonly reason: 'taken' | 'stale'
  constructor (reason: 'taken' | 'stale', message: string) {
    super(message)
    this.name = 'RecordRejectedError'
    this.reason = reason
  }
}

export const directoryValidators = {
  p2pchat: async (key: Uint8Array, value: Uint8Array): Promise<void> => {
    verifyRecord(key, value)
  }
}

/**
 * Picks the best of the records peers returned for one key: the identity key held by the most
 * responders (first come, first served per storing node makes an honest majority agree), then the
 * highest sequence from that key. Invalid records never win.
 */
export function selectRecord (key: Uint8Array, values: Uint8Array[], now = Date.now()): number {
  const valid: Array<{ index: number, rec: SignedRecord }> = []
  values.forEach((value, index) => {
    try {
      valid.push({ index, rec: verifyRecord(key, value, now) })
    } catch {}
  })
  if (valid.length === 0) return 0
  const votes = new Map<string, number>()
  for (const { rec } of valid) {
    const id = Buffer.from(rec.identityKey).toString('hex')
    votes.set(id, (votes.get(id) ?? 0) + 1)
  }
  let best = valid[0]
  const score = (r: SignedRecord): number => votes.get(Buffer.from(r.identityKey).toString('hex')) ?? 0
  for (const cand of valid.slice(1)) {
    const s = score(cand.rec)
    const b = score(best.rec)
    if (s > b || (s === b && bytesEqual(cand.rec.identityKey, best.rec.identityKey) && cand.rec.sequence > best.rec.sequence)) {
      best = cand
    }
  }
  return best.index
}

export const directorySelectors = {
  p2pchat: (key: Uint8Array, values: Uint8Array[]): number => selectRecord(key, values)
}

/**
 * Decides whether `incoming` may replace `held` (both verified for the same DHT key).
 * Returns undefined to accept, or the reason to refuse.
 */
export function replacementVerdict (held: SignedRecord | undefined, incoming: SignedRecord): RecordRejectedError | undefined {
  if (held == null) return undefined
  if (!bytesEqual(held.identityKey, incoming.identityKey)) {
    return new RecordRejectedError('taken', `${held.nick === '' ? 'relay' : `nick "${held.nick}"`} is held by another key until ${new Date(held.expiry).toISOString()}`)
  }
  if (incoming.sequence < held.sequence || (incoming.sequence === held.sequence && !bytesEqual(incoming.bytes, held.bytes))) {
    return new RecordRejectedError('stale', `sequence ${incoming.sequence} does not replace ${held.sequence}`)
  }
  return undefined
}

/** Unwraps a stored kad-dht record (Libp2pRecord protobuf) into its DHT key and value. */
function unwrap (stored: Uint8Array): { key: Uint8Array, value: Uint8Array } {
  const rec = Libp2pRecord.deserialize(stored)
  return { key: rec.key, value: rec.value }
}

/**
 * A datastore wrapper that enforces the replacement rules for `/p2pchat/` records, whoever writes
 * them (a remote PUT_VALUE, the node's own put, or a get() correction). Everything else passes through.
 */
export class GuardedDatastore extends BaseDatastore {
  private readonly inner: Datastore
  private readonly locks = new Map<string, Promise<unknown>>()
  /** Counts of refused writes by reason, for tests and `/relays`-style diagnostics. */
  readonly refused = { taken: 0, stale: 0, invalid: 0 }
  /** The invalid ones by record fault (a version 1 record counts under 'version'). */
  readonly refusedFaults: Partial<Record<RecordFault, number>> = {}

  constructor (inner: Datastore) {
    super()
    this.inner = inner
  }

  override async put (key: Key, val: Uint8Array, options?: AbortOptions): Promise<Key> {
    const name = key.toString()
    if (!name.startsWith(RECORD_PREFIX)) return await this.inner.put(key, val, options)
    let incoming: { key: Uint8Array, value: Uint8Array }
    try {
      incoming = unwrap(val)
    } catch {
      return await this.inner.put(key, val, options)
    }
    if (!new TextDecoder().decode(incoming.key).startsWith('/p2pchat/')) return await this.inner.put(key, val, options)
    return await this.serialised(name, async () => {
      let rec: SignedRecord
      try {
        rec = verifyRecord(incoming.key, incoming.value)
      } catch (err) {
        if (!(err instanceof RecordError)) throw err
        this.refused.invalid++
        this.refusedFaults[err.fault] = (this.refusedFaults[err.fault] ?? 0) + 1
        log('did not store an invalid record for %s: %s', loggableKey(incoming.key), err.fault)
        return key
      }
      const held = await this.heldRecord(key, incoming.key, options)
      const verdict = replacementVerdict(held, rec)
      if (verdict != null) {
        this.refused[verdict.reason]++
        // the reason, not the message: the message names the nick
        log('kept the held record for %s: %s', loggableKey(incoming.key), verdict.reason)
        return key
      }
      return await this.inner.put(key, val, options)
    })
  }

  /** The live record held under this datastore key, if any (an expired or corrupt one counts as none). */
  private async heldRecord (key: Key, dhtKey: Uint8Array, options?: AbortOptions): Promise<SignedRecord | undefined> {
    let stored: Uint8Array
    try {
      stored = await this.inner.get(key, options)
    } catch {
      return undefined
    }
    let value: Uint8Array
    try {
      value = unwrap(stored).value
    } catch {
      return undefined // not a Libp2pRecord at all: corrupt, so none is held
    }
    try {
      return verifyRecord(dhtKey, value)
    } catch (err) {
      if (!(err instanceof RecordError)) throw err
      return undefined
    }
  }

  private async serialised<T> (name: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(name) ?? Promise.resolve()
    const run = prev.then(fn, fn)
    const tail = run.catch(() => {})
    this.locks.set(name, tail)
    try {
      return await run
    } finally {
      if (this.locks.get(name) === tail) this.locks.delete(name)
    }
  }

  override async get (key: Key, options?: AbortOptions): Promise<Uint8Array> { return await this.inner.get(key, options) }
  override async has (key: Key, options?: AbortOptions): Promise<boolean> { return await this.inner.has(key, options) }
  override async delete (key: Key, options?: AbortOptions): Promise<void> { await this.inner.delete(key, options) }
  override query (q: Query, options?: AbortOptions): AsyncGenerator<Pair> | Generator<Pair> { return this.inner.query(q, options) }
  override queryKeys (q: KeyQuery, options?: AbortOptions): AsyncGenerator<Key> | Generator<Key> { return this.inner.queryKeys(q, options) }
}

