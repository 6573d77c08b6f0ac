/**
 * The directory API over the DHT: publish and look up nicks, announce relays and find them.
 * Records (version 2, record.ts) are verified on every read (signature, key binding, expiry); kad-dht
 * does not republish stored values, so owners republish their own records on a timer.
 * Name records carry no address (PROTOCOL-V2.md section 4); relay descriptors carry the relay's.
 * `publishSignedName` publishes a name someone else signed: what a directory exit does for a user
 * (exit.ts).
 */
import { logger } from '@libp2p/logger'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import type { KadDHT } from '@libp2p/kad-dht'
import type { AbortOptions, ContentRouting, PeerId } from '@libp2p/interface'
import type { Signer } from '../crypto/keys.ts'
import { bytesEqual, decodeRecord, isValidNick, KIND_NAME, KIND_RELAY, loggableKey, nameKey, RecordError, relayKey, signRecord, verifyRecord } from './record.ts'
import type { MailboxEntry, OnionKeyEntry, RecordExtension, SignedRecord } from './record.ts'
import { spreadByGroup, subnetsOfAddrs, UNKNOWN_SUBNET } from './subnet.ts'

/** A cold start gathers this many times the providers it looks up, to choose among them (issue 12). */
export const WIDE_SAMPLE_FACTOR = 5
/** Providers of one /16 (by the addresses the DHT gave) among those a cold start looks up. */
export const MAX_PROVIDERS_PER_SUBNET = 4
/** Providers a cold start reads at most, skipped ones included: bounds the walk over a flooded provider list. */
export const MAX_PROVIDERS_SEEN = 2000

export * from './record.ts'
export { directorySelectors, directoryValidators, GuardedDatastore, selectRecord } from './dht.ts'

const log = logger('p2pchat:directory')

/** How long a published relay descriptor is valid. Well under MAX_RELAY_LIFETIME_MS (48 h). */
export const DEFAULT_RECORD_TTL_MS = 24 * 3600_000
/**
 * How long a published name is valid: a week of mailbox waiting (a name must stay findable while
 * messages wait for its owner) plus half a day, under MAX_NAME_LIFETIME_MS (8 days) with room for
 * validators whose clocks run behind by more than CLOCK_SKEW_MS.
 */
export const DEFAULT_NAME_TTL_MS = 7 * 24 * 3600_000 + 12 * 3600_000
/** How often owners republish (kad-dht does not republish values, and new nodes join nearer the key). */
export const DEFAULT_REPUBLISH_INTERVAL_MS = 3600_000
/** Default time a lookup may take before it is "not found". */
export const DEFAULT_LOOKUP_TIMEOUT_MS = 10_000
export const DEFAULT_PUBLISH_TIMEOUT_MS = 20_000

/**
 * Every relay provides this CID: sha256 of the label, raw codec, CIDv1. Version 2 relays provide a
 * new CID, so a v2 reader does not spend lookups on v1 relays whose descriptors it would refuse.
 */
export const RELAY_PROVIDER_LABEL = 'p2pchat/relays/v2'
export const relayProviderCid = async (): Promise<CID> =>
  CID.createV1(raw.code, await sha256.digest(new TextEncoder().encode(RELAY_PROVIDER_LABEL)))

export class NameNotFoundError extends Error {
  readonly nick: string
  /**
   * How many DHT peers answered the query (undefined when not counted). 0 means nobody answered:
   * "not found" then says nothing about the nick, and a directory exit answers an error instead.
   */
  readonly responses: number | undefined
  constructor (nick: string, detail = '', responses?: number) {
    super(`no live record for nick "${nick}" in the directory${detail}`)
    this.name = 'NameNotFoundError'
    this.nick = nick
    this.responses = responses
  }
}

export class NickTakenError extends Error {
  readonly nick: string
  readonly holder: string
  /** The holder's record as the lookup chose it, when known. */
  readonly record: SignedRecord | undefined
  /** `message` replaces the default, which names the nick (a relay publishing for a user must not log it). */
  constructor (nick: string, holder: string, record?: SignedRecord, message?: string) {
    super(message ?? `nick "${nick}" is held by another key (peer ${holder}); choose another nick`)
    this.name = 'NickTakenError'
    this.nick = nick
    this.holder = holder
    this.record = record
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
  /** The addresses to advertise in relay descriptors (name records carry none). */
  addrs: () => string[]
  /** Optional fields of the relay descriptors this node signs (family.ts: the family declaration). */
  extensions?: (attempt: number) => RecordExtension[]
  /** Lifetime of relay descriptors this node signs. */
  recordTtlMs?: number
  /** Lifetime of name records this node signs. */
  nameTtlMs?: number
  republishIntervalMs?: number
  lookupTimeoutMs?: number
  publishTimeoutMs?: number
  now?: () => number
}

/** What publishName may put in a name record besides the nick. */
export interface PublishNameOptions extends AbortOptions {
  /** The mailboxes that accept packets for this user (0..4; default none). */
  mailboxes?: MailboxEntry[]
  /** The onion keys to list (1..3; default the node's onion key with epoch 0 and no validity window). */
  onionKeys?: OnionKeyEntry[]
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
      nameTtlMs: DEFAULT_NAME_TTL_MS,
      republishIntervalMs: DEFAULT_REPUBLISH_INTERVAL_MS,
      lookupTimeoutMs: DEFAULT_LOOKUP_TIMEOUT_MS,
      publishTimeoutMs: DEFAULT_PUBLISH_TIMEOUT_MS,
      now: Date.now,
      ...init,
      extensions: init.extensions ?? (() => [])
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
      if (stored === 0) throw new PublishError(`could not publish ${loggableKey(key)}: ${(err as Error).message}`)
    }
    log('put %s: stored on %d peers, %d errors', loggableKey(key), stored, errors)
    return stored
  }

  /**
   * Signs and publishes this node's name record (no address; `mailboxes` when given), then reads the
   * name back: if another key holds it (first come, first served on the storing nodes) this throws
   * NickTakenError.
   */
  async publishName (nick: string, options?: PublishNameOptions): Promise<PublishResult> {
    if (!isValidNick(nick)) throw new InvalidNickError(nick)
    const onionKeys = options?.onionKeys ?? [{ epoch: 0, notBefore: 0, notAfter: 0, key: this.init.onionKey }]
    return await this.publishRecord(nick, () => signRecord({
      kind: KIND_NAME,
      nick,
      identityKey: this.init.signer.publicKey,
      onionKeys,
      mailboxes: options?.mailboxes ?? [],
      addrs: [],
      sequence: this.nextSequence(),
      expiry: this.init.now() + this.init.nameTtlMs
    }, this.init.signer), options)
  }

  /**
   * Publishes a name record someone else signed (what a directory exit does for a user): verifies it
   * (RecordError with the fault: a relay descriptor is refused as 'kind'), looks the nick up, puts it,
   * and reads it back. NickTakenError when another key holds the nick, before or after the put;
   * PublishError when no DHT peer stored it.
   */
  async publishSignedName (recordBytes: Uint8Array, options?: AbortOptions): Promise<PublishResult> {
    const claimed = decodeRecord(recordBytes)
    if (claimed.kind !== KIND_NAME) throw new RecordError('kind', 'not a name record')
    const record = verifyRecord(nameKey(claimed.nick), recordBytes, this.init.now())
    try {
      return await this.publishRecord(record.nick, () => record, options)
    } catch (err) {
      // the caller is a relay publishing for a user (an exit, a mailbox republishing): whatever it logs
      // of this error must not name the nick (issue 10, item 9); the fields still carry it
      if (err instanceof NickTakenError) throw new NickTakenError(err.nick, err.holder, err.record, 'the nick is held by another key')
      throw err
    }
  }

  /** Pre-lookup, put, read-back: the steps every name publication takes. */
  private async publishRecord (nick: string, make: () => SignedRecord, options?: AbortOptions): Promise<PublishResult> {
    const existing = await this.lookupName(nick, options).catch((err: Error) => {
      if (err.name === 'NameNotFoundError') return undefined
      throw err
    })
    const record = make()
    if (existing != null && !bytesEqual(existing.identityKey, record.identityKey)) {
      throw new NickTakenError(nick, existing.peerId, existing)
    }
    const stored = await this.put(nameKey(nick), record, options)
    if (stored === 0) throw new PublishError('no DHT peer stored the name record: is the node connected to a bootstrap node?')
    const after = await this.lookupName(nick, options)
    if (!bytesEqual(after.identityKey, record.identityKey)) throw new NickTakenError(nick, after.peerId, after)
    return { record, stored }
  }

  /**
   * Signs this relay's descriptor with a new sequence. `extensions(attempt)` is asked again with a
   * higher attempt while the record is over MAX_RECORD_SIZE (an extension that can shrink, such as the
   * attestations, gives fewer entries), at most 8 times.
   */
  private signRelay (onionKeys: OnionKeyEntry[]): SignedRecord {
    for (let attempt = 0; ; attempt++) {
      try {
        return signRecord({
          kind: KIND_RELAY,
          nick: '',
          identityKey: this.init.signer.publicKey,
          onionKeys,
          addrs: this.init.addrs().slice(0, 16),
          extensions: this.init.extensions(attempt),
          sequence: this.nextSequence(),
          expiry: this.init.now() + this.init.recordTtlMs
        }, this.init.signer)
      } catch (err) {
        if (!(err instanceof RecordError) || err.fault !== 'oversize' || attempt >= 8) throw err
      }
    }
  }

  /**
   * A new descriptor of this relay (a new sequence) for gossip only, without the DHT put: for changes
   * its readers want soon but the DHT copy can wait for (the attestations); the next announceRelay
   * publishes the then newest.
   */
  resignRelay (onionKeys: OnionKeyEntry[]): SignedRecord {
    return this.signRelay(onionKeys)
  }

  /** Looks a nick up; throws NameNotFoundError when no live, valid record arrives in time. */
  async lookupName (nick: string, options?: AbortOptions): Promise<SignedRecord> {
    if (!isValidNick(nick)) throw new InvalidNickError(nick)
    const { record, responses } = await this.getRecord(nameKey(nick), options)
    if (record == null) throw new NameNotFoundError(nick, '', responses)
    return record
  }

  /**
   * Runs a DHT get. By default it waits for the whole query and kad-dht's choice among the values
   * peers returned (selectRecord: the key most responders hold), which a name needs: the vote is what
   * settles a contested nick. With `first`, the first valid record any peer returns ends the query:
   * for self-certifying records (a relay descriptor's key is its signer's peer id) any valid copy is
   * the signer's own, at worst an older live one.
   */
  private async getRecord (key: Uint8Array, options?: AbortOptions, first = false): Promise<{ record: SignedRecord | undefined, responses: number }> {
    const signal = withTimeout(options, this.init.lookupTimeoutMs)
    let best: SignedRecord | undefined
    let responses = 0
    try {
      for await (const event of this.components.dht.get(key, { signal })) {
        if (event.name === 'PEER_RESPONSE') responses++
        const value = event.name === 'VALUE'
          ? event.value
          : first && event.name === 'PEER_RESPONSE' ? event.record?.value : undefined
        if (value == null) continue
        try {
          best = verifyRecord(key, value, this.init.now())
        } catch (err) {
          log('ignored an invalid record for %s: %s', loggableKey(key), err instanceof RecordError ? err.fault : (err as Error).message)
          continue
        }
        if (first) break
      }
    } catch (err) {
      if (options?.signal?.aborted === true) throw err
      log('get %s ended: %s', loggableKey(key), (err as Error).message)
    }
    return { record: best, responses }
  }

  /** Publishes this node's relay descriptor and announces it as a provider of the relay CID. */
  async announceRelay (onionKeys: OnionKeyEntry[], options?: AbortOptions): Promise<PublishResult> {
    const record = this.signRelay(onionKeys)
    const stored = await this.put(relayKey(this.components.peerId.toString()), record, options)
    await this.components.contentRouting.provide(await relayProviderCid(), { signal: withTimeout(options, this.init.publishTimeoutMs) })
    return { record, stored }
  }

  /** The relay descriptor of one peer, verified (the first valid copy found); undefined when none is live. */
  async lookupRelay (peerId: string, options?: AbortOptions): Promise<SignedRecord | undefined> {
    return (await this.getRecord(relayKey(peerId), options, true)).record
  }

  /**
   * Finds relays through the provider CID and returns their verified descriptors (at most `limit`).
   * A cold start samples widely (issue 12): it gathers up to WIDE_SAMPLE_FACTOR x `limit` providers (or
   * all the query finds, reading at most MAX_PROVIDERS_SEEN), at most MAX_PROVIDERS_PER_SUBNET of a /16
   * (the others of that /16 are skipped, not counted), then looks up `limit` of them spread over the /16s of the addresses the DHT
   * gave for them, at most MAX_PROVIDERS_PER_SUBNET of one, rather than the first `limit` to answer
   * (which the closest, or fastest, operator would fill).
   */
  async findRelays (options?: AbortOptions & { limit?: number }): Promise<SignedRecord[]> {
    const limit = options?.limit ?? 20
    const signal = withTimeout(options, this.init.lookupTimeoutMs)
    const providers = new Map<string, string>()
    const perGroup = new Map<string, number>()
    let seen = 0
    try {
      for await (const provider of this.components.contentRouting.findProviders(await relayProviderCid(), { signal })) {
        // providers of a /16 that already has MAX_PROVIDERS_PER_SUBNET are skipped, not counted: a
        // hundred of one operator answering first do not end the sampling
        if (++seen > MAX_PROVIDERS_SEEN) break
        const id = provider.id.toString()
        if (providers.has(id)) continue
        const group = subnetsOfAddrs(provider.multiaddrs.map(a => a.toString()))[0]
        const n = perGroup.get(group) ?? 0
        if (n >= MAX_PROVIDERS_PER_SUBNET) continue
        perGroup.set(group, n + 1)
        providers.set(id, group)
        if (providers.size >= WIDE_SAMPLE_FACTOR * limit) break
      }
    } catch (err) {
      if (options?.signal?.aborted === true) throw err
      log('findProviders ended: %s', (err as Error).message)
    }
    const chosen = spreadByGroup([...providers.keys()], id => providers.get(id) ?? UNKNOWN_SUBNET, limit, MAX_PROVIDERS_PER_SUBNET)
    const found = await Promise.all(chosen.map(async id => await this.lookupRelay(id, { signal }).catch(() => undefined)))
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
