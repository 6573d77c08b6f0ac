/**
 * The directory API over the DHT: publish and look up nicks, announce relays and find them.
 * Records are verified on every read (signature, key binding, expiry); kad-dht does not republish
 * stored values, so owners republish their own records on a timer.
 */
import { logger } from '@libp2p/logger'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import type { KadDHT } from '@libp2p/kad-dht'
import type { AbortOptions, ContentRouting, PeerId } from '@libp2p/interface'
import type { Signer } from '../crypto/keys.ts'
import { bytesEqual, isValidNick, KIND_NAME, KIND_RELAY, nameKey, relayKey, signRecord, verifyRecord } from './record.ts'
import type { OnionKeyEntry, SignedRecord } from './record.ts'

export * from './record.ts'
export { directorySelectors, directoryValidators, GuardedDatastore, selectRecord } from './dht.ts'

const log = logger('p2pchat:directory')

/** How long a published record is valid. Well under MAX_RECORD_LIFETIME_MS. */
export const DEFAULT_RECORD_TTL_MS = 24 * 3600_000
/** How often owners republish (kad-dht does not republish values, and new nodes join nearer the key). */
export const DEFAULT_REPUBLISH_INTERVAL_MS = 3600_000
/** Default time a lookup may take before it is "not found". */
export const DEFAULT_LOOKUP_TIMEOUT_MS = 10_000
export const DEFAULT_PUBLISH_TIMEOUT_MS = 20_000

/** Every relay provides this CID: sha256 of the label, raw codec, CIDv1. */
export const RELAY_PROVIDER_LABEL = 'p2pchat/relays/v1'
export const relayProviderCid = async (): Promise<CID> =>
  CID.createV1(raw.code, await sha256.digest(new TextEncoder().encode(RELAY_PROVIDER_LABEL)))

export class NameNotFoundError extends Error {
  readonly nick: string
  constructor (nick: string, detail = '') {
    super(`no live record for nick "${nick}" in the directory${detail}`)
    this.name = 'NameNotFoundError'
    this.nick = nick
  }
}

export class NickTakenError extends Error {
  readonly nick: string
  readonly holder: string
  constructor (nick: string, holder: string) {
    super(`nick "${nick}" is held by another key (peer ${holder}); choose another nick`)
    this.name = 'NickTakenError'
    this.nick = nick
    this.holder = holder
  }
}

export class PublishError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'PublishError'
  }
}

export class InvalidNickError extends Error {
  constructor (nick: string) {
    super(`invalid nick "${nick}": use 1 to 32 characters of a-z, 0-9, _ and -`)
    this.name = 'InvalidNickError'
  }
}

export interface DirectoryComponents {
  peerId: PeerId
  dht: KadDHT
  contentRouting: ContentRouting
}

export interface DirectoryInit {
  signer: Signer
  onionKey: Uint8Array
  /** The addresses to advertise in records. */
  addrs: () => string[]
  recordTtlMs?: number
  republishIntervalMs?: number
  lookupTimeoutMs?: number
  publishTimeoutMs?: number
  now?: () => number
}

export interface PublishResult {
  record: SignedRecord
  /** How many remote DHT peers acknowledged storing it. */
  stored: number
}

function withTimeout (options: AbortOptions | undefined, ms: number): AbortSignal {
  const t = AbortSignal.timeout(ms)
  return options?.signal != null ? AbortSignal.any([options.signal, t]) : t
}

export class Directory {
  private readonly components: DirectoryComponents
  private readonly init: Required<Omit<DirectoryInit, 'now'>> & { now: () => number }
  private lastSequence = 0n
  private readonly timers = new Set<ReturnType<typeof setInterval>>()
  private stopped = false

  constructor (components: DirectoryComponents, init: DirectoryInit) {
    this.components = components
    this.init = {
      recordTtlMs: DEFAULT_RECORD_TTL_MS,
      republishIntervalMs: DEFAULT_REPUBLISH_INTERVAL_MS,
      lookupTimeoutMs: DEFAULT_LOOKUP_TIMEOUT_MS,
      publishTimeoutMs: DEFAULT_PUBLISH_TIMEOUT_MS,
      now: Date.now,
      ...init
    }
  }

  /** Sequence numbers are milliseconds since the epoch, strictly increasing: they survive restarts. */
  private nextSequence (): bigint {
    const now = BigInt(this.init.now())
    this.lastSequence = now > this.lastSequence ? now : this.lastSequence + 1n
    return this.lastSequence
  }

  private async put (key: Uint8Array, record: SignedRecord, options?: AbortOptions): Promise<number> {
    let stored = 0
    let errors = 0
    const signal = withTimeout(options, this.init.publishTimeoutMs)
    try {
      for await (const event of this.components.dht.put(key, record.bytes, { signal })) {
        if (event.name === 'PEER_RESPONSE' && event.messageName === 'PUT_VALUE') stored++
        if (event.name === 'QUERY_ERROR') errors++
      }
    } catch (err) {
      if (stored === 0) throw new PublishError(`could not publish ${new TextDecoder().decode(key)}: ${(err as Error).message}`)
    }
    log('put %s: stored on %d peers, %d errors', new TextDecoder().decode(key), stored, errors)
    return stored
  }

  /**
   * Signs and publishes a name record, then reads the name back: if another key holds it (first
   * come, first served on the storing nodes) this throws NickTakenError.
   */
  async publishName (nick: string, options?: AbortOptions): Promise<PublishResult> {
    if (!isValidNick(nick)) throw new InvalidNickError(nick)
    const existing = await this.lookupName(nick, options).catch((err: Error) => {
      if (err.name === 'NameNotFoundError') return undefined
      throw err
    })
    if (existing != null && !bytesEqual(existing.identityKey, this.init.signer.publicKey)) {
      throw new NickTakenError(nick, existing.peerId)
    }
    const record = this.sign(KIND_NAME, nick, [{ epoch: 0, notBefore: 0, notAfter: 0, key: this.init.onionKey }])
    const stored = await this.put(nameKey(nick), record, options)
    if (stored === 0) throw new PublishError(`no DHT peer stored the record for "${nick}": is the node connected to a bootstrap node?`)
    const after = await this.lookupName(nick, options)
    if (!bytesEqual(after.identityKey, this.init.signer.publicKey)) throw new NickTakenError(nick, after.peerId)
    return { record, stored }
  }

  private sign (kind: typeof KIND_NAME | typeof KIND_RELAY, nick: string, onionKeys: OnionKeyEntry[]): SignedRecord {
    return signRecord({
      kind,
      nick,
      identityKey: this.init.signer.publicKey,
      onionKeys,
      addrs: this.init.addrs().slice(0, 16),
      sequence: this.nextSequence(),
      expiry: this.init.now() + this.init.recordTtlMs
    }, this.init.signer)
  }

  /** Looks a nick up; throws NameNotFoundError when no live, valid record arrives in time. */
  async lookupName (nick: string, options?: AbortOptions): Promise<SignedRecord> {
    if (!isValidNick(nick)) throw new InvalidNickError(nick)
    const rec = await this.getRecord(nameKey(nick), options)
    if (rec == null) throw new NameNotFoundError(nick)
    return rec
  }

  /**
   * Runs a DHT get. By default it waits for the whole query and kad-dht's choice among the values
   * peers returned (selectRecord: the key most responders hold), which a name needs: the vote is what
   * settles a contested nick. With `first`, the first valid record any peer returns ends the query:
   * for self-certifying records (a relay descriptor's key is its signer's peer id) any valid copy is
   * the signer's own, at worst an older live one.
   */
  private async getRecord (key: Uint8Array, options?: AbortOptions, first = false): Promise<SignedRecord | undefined> {
    const signal = withTimeout(options, this.init.lookupTimeoutMs)
    let best: SignedRecord | undefined
    try {
      for await (const event of this.components.dht.get(key, { signal })) {
        const value = event.name === 'VALUE'
          ? event.value
          : first && event.name === 'PEER_RESPONSE' ? event.record?.value : undefined
        if (value == null) continue
        try {
          best = verifyRecord(key, value, this.init.now())
        } catch (err) {
          log('ignored an invalid record for %s: %s', new TextDecoder().decode(key), (err as Error).message)
          continue
        }
        if (first) break
      }
    } catch (err) {
      if (options?.signal?.aborted === true) throw err
      log('get %s ended: %s', new TextDecoder().decode(key), (err as Error).message)
    }
    return best
  }

  /** Publishes this node's relay descriptor and announces it as a provider of the relay CID. */
  async announceRelay (onionKeys: OnionKeyEntry[], options?: AbortOptions): Promise<PublishResult> {
    const record = this.sign(KIND_RELAY, '', onionKeys)
    const stored = await this.put(relayKey(this.components.peerId.toString()), record, options)
    await this.components.contentRouting.provide(await relayProviderCid(), { signal: withTimeout(options, this.init.publishTimeoutMs) })
    return { record, stored }
  }

  /** The relay descriptor of one peer, verified (the first valid copy found); undefined when none is live. */
  async lookupRelay (peerId: string, options?: AbortOptions): Promise<SignedRecord | undefined> {
    return await this.getRecord(relayKey(peerId), options, true)
  }

  /** Finds relays through the provider CID and returns their verified descriptors (at most `limit`). */
  async findRelays (options?: AbortOptions & { limit?: number }): Promise<SignedRecord[]> {
    const limit = options?.limit ?? 20
    const signal = withTimeout(options, this.init.lookupTimeoutMs)
    const seen = new Set<string>()
    const lookups: Array<Promise<SignedRecord | undefined>> = []
    try {
      for await (const provider of this.components.contentRouting.findProviders(await relayProviderCid(), { signal })) {
        const id = provider.id.toString()
        if (seen.has(id)) continue
        seen.add(id)
        lookups.push(this.lookupRelay(id, { signal }).catch(() => undefined))
        if (seen.size >= limit) break
      }
    } catch (err) {
      if (options?.signal?.aborted === true) throw err
      log('findProviders ended: %s', (err as Error).message)
    }
    const found = await Promise.all(lookups)
    return found.filter((r): r is SignedRecord => r != null)
  }

  /** Republishes a record on a timer until stop(). `publish` is called once per interval. */
  republish (name: string, publish: () => Promise<unknown>): void {
    const timer = setInterval(() => {
      if (this.stopped) return
      publish().catch((err: Error) => { log.error('republishing %s failed: %s', name, err.message) })
    }, this.init.republishIntervalMs)
    timer.unref()
    this.timers.add(timer)
  }

  stop (): void {
    this.stopped = true
    for (const t of this.timers) clearInterval(t)
    this.timers.clear()
  }
}
