/**
 * ChatNode: a user of protocol version 2 (PROTOCOL-V2.md), the facade the CLI and the tests drive. It
 * composes one module per concern:
 *
 * - a client libp2p node under a transport key made fresh for this run (never the identity key), with
 *   no listening address and no DHT: it dials a bootstrap node once for a first list of relays, then
 *   keeps one connection, to its entry relay (node/entry.ts);
 * - the onion client (protocols/onion/client.ts): every packet leaves through the entry relay, every
 *   answer comes back through a reply block of ours;
 * - mailboxes at two relays (node/mailboxes.ts), which keep what is sent to us while we are away and
 *   push it through reply blocks we stock;
 * - directory requests through exits (node/directory-client.ts);
 * - the chat rules below: the outbox, seals and signatures, pins, receipts.
 *
 * Sending: the message is stored in the outbox first, then sealed to the recipient's current onion key
 * and DEPOSITed at one of its mailboxes (the other when one is full or silent). `stored` (✓) when a
 * mailbox has written it durably; `delivered` (✓✓) when the recipient's signed receipt arrives in one of
 * our mailboxes, whenever that is. A message is never reported failed while it may still be delivered:
 * it stays queued (retried on a timer and after restarts) until stored or expired.
 *
 * Receiving (node/receiving.ts): items our mailboxes push, receipts, and the receipts we owe. Contacts
 * (node/contacts.ts): requests from strangers, pins only on the user's action, three trust states.
 */
import { randomBytes, randomInt } from 'node:crypto'
import { logger } from '@libp2p/logger'
import { multiaddr } from '@multiformats/multiaddr'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { Message } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'
import { createClientNode } from './create.ts'
import type { ClientNode } from './create.ts'
import { loadIdentity, loadTransportKey } from './identity.ts'
import type { Identity } from './identity.ts'
import { ChatStore } from './store.ts'
import type { Pin, StoredMessage } from './store.ts'
import { Contacts, trustOf } from './contacts.ts'
import type { AcceptResult, SafetyNumberView, Trust } from './contacts.ts'
import type { ContactRequest, Conversation } from './contacts-store.ts'
import { Receiver } from './receiving.ts'
import type { ReceiveStats } from './receiving.ts'
import { UserError } from './errors.ts'
import { UserOnionKeys, MESSAGE_TTL_MS } from './onion-keys.ts'
import { SeenSeals } from './seen-seals.ts'
import { MailboxKeys } from './mailbox-keys.ts'
import { EntryRelay } from './entry.ts'
import { GuardSet } from './guards.ts'
import { MailboxClient } from './mailboxes.ts'
import type { MailboxTiming } from './mailboxes.ts'
import { DirectoryClient, START_PUBLISH_ROUNDS } from './directory-client.ts'
import { RelayHealth } from './relay-health.ts'
import { fetchRelayList } from '../protocols/directory/relay-list.ts'
import { bytesEqual, KIND_NAME, nameKey, signRecord, verifyRecord } from '../protocols/directory/record.ts'
import type { SignedRecord } from '../protocols/directory/record.ts'
import { createMessage, fingerprint, MAX_TEXT_BYTES, normalizeFingerprint, sealMessage, validateNick } from '../protocols/chat/index.ts'
import { OnionClient } from '../protocols/onion/client.ts'
import { cryptoUniform, hopDelays } from '../protocols/onion/delays.ts'
import type { Uniform } from '../protocols/onion/delays.ts'
import { ClientCover } from './client-cover.ts'
import type { AnswerKind, ClientCoverStatus } from './client-cover.ts'
import type { CoverInit } from './cover.ts'
import { DEFAULT_PRIVACY, privacyLevel, roundTripAllowanceMs, storedAnswerAllowanceMs } from './privacy.ts'
import type { PrivacyLevel } from './privacy.ts'
import { pathRelays, sameGroup } from '../protocols/onion/paths.ts'
import { admitRelays, DEFAULT_MIN_RELAY_AGE_MS, MIN_ADMITTED_RELAYS } from '../protocols/onion/admission.ts'
import type { PathRelay } from '../protocols/onion/paths.ts'
import { onionKeyFor, RELAY_TOPIC, RelayDirectory } from '../protocols/onion/relay-directory.ts'
import { RelayView } from './relay-view.ts'
import type { DataSync } from '../protocols/sqlite.ts'

/** A descriptor's gossip verdict (RelayDirectory.gossipVerdict): a stale copy is ignored, a forged one rejected. */
const gossipResult = { accept: TopicValidatorResult.Accept, ignore: TopicValidatorResult.Ignore, reject: TopicValidatorResult.Reject } as const

export interface ChatTiming {
  /** How often the outbox (and owed receipts) are retried. */
  retryIntervalMs: number
  /** A queued message not stored within this is failed as expired. */
  messageTtlMs: number
  /** Relays' gossip announce interval (freshness of relay descriptors). */
  announceIntervalMs: number
  /** A contact's record found by lookup is reused this long before it is looked up again. */
  recordCacheMs: number
  /** At most this many messages are being deposited at once; the rest wait in the outbox. */
  maxInFlight: number
  /** An onion request (deposit, lookup, registration) with no answer in this time has failed. */
  requestTimeoutMs: number
  /** Length of one of our onion key epochs (keys are erased a record lifetime plus a message TTL later). */
  onionEpochMs: number
  /** Mailbox upkeep: stocking interval and block lifetime. */
  stockIntervalMs: number
  stockTtlMs: number
  /** A contact first seen through its own message is cross-checked in the directory after a random delay up to this. */
  crossCheckMaxDelayMs: number
  /** Relay admission (protocols/onion/admission.ts): the age other relays must attest before a relay carries paths. */
  relayMinAgeMs: number
  /**
   * After a send to a relay, the next send to it is made ahead this much later, in idle time
   * (protocols/onion/client.ts `prepareDelayMs`): its X25519s leave the next send's critical path. Negative: never.
   */
  prepareDelayMs: number
}

export const DEFAULT_TIMING: ChatTiming = {
  retryIntervalMs: 30_000,
  messageTtlMs: MESSAGE_TTL_MS,
  announceIntervalMs: 30_000,
  recordCacheMs: 10 * 60_000,
  maxInFlight: 16,
  requestTimeoutMs: 15_000,
  onionEpochMs: 24 * 3600_000,
  stockIntervalMs: 5 * 60_000,
  stockTtlMs: 40 * 60_000,
  crossCheckMaxDelayMs: 10 * 60_000,
  relayMinAgeMs: DEFAULT_MIN_RELAY_AGE_MS,
  prepareDelayMs: 100
}

/** Names in the record live this long (a week of mailbox waiting and a margin; republished while we are online). */
export const NAME_TTL_MS = 7 * 24 * 3600_000 + 12 * 3600_000
/**
 * A send or /retry by the user may pin a new contact's key during this many retry intervals (plus a
 * request timeout): the lookup answering "now". Later, the outbox waits for the user instead.
 */
const USER_PIN_WINDOW = 2
/** How often our record is re-signed and republished while online. */
const REPUBLISH_INTERVAL_MS = 3600_000
/** Contacts' records whose signature check is remembered (keptRecord); beyond, all are checked again. */
const MAX_KEPT_RECORDS = 1024

export interface ChatNodeOptions {
  dataDir: string
  nick: string
  /** Addresses to listen on; default none (a user only dials out). */
  listen?: string[]
  bootstrap?: string[]
  /** Multiaddr prefixes exempt from libp2p's inbound connection rate limit (loopback tests, demo). */
  allow?: string[]
  timing?: Partial<ChatTiming>
  /** Already loaded identity (otherwise loaded from dataDir). */
  identity?: Identity
  /** Mailboxes to keep (default 2). */
  mailboxes?: number
  /** Strangers become (unverified) contacts at their first message instead of requests (a bot); default false. */
  acceptAnyone?: boolean
  /** The privacy level (node/privacy.ts), by name or as a level; default DEFAULT_PRIVACY. */
  privacy?: string | PrivacyLevel
  /** The generator of cover-traffic gaps and of receipt and retry delays (tests seed it); default the CSPRNG. */
  uniform?: Uniform
  /** Sees every cover tick as it fires, with the gap drawn before it (tests). */
  onCoverTick?: CoverInit['onTick']
  /** The store's WAL sync (tests hold or fail it: protocols/sqlite.ts WalSync); default fdatasync on the thread pool. */
  datasync?: DataSync
}

export type ChatEvent =
  | { type: 'status', stage: 'connecting' | 'relays' | 'entry' | 'mailboxes' | 'publishing' | 'ready', detail: string }
  | { type: 'sent', id: string, to: string, attempt: number, path: string[] }
  | { type: 'queued', id: string, to: string, reason: string }
  | { type: 'stored', id: string, to: string }
  | { type: 'delivered', id: string, to: string }
  | { type: 'failed', id: string, to: string, reason: string }
  /** `verified`: the signature checks out; `trust`: the contact's state; `request`: from someone not yet accepted (no receipt sent) */
  | { type: 'message', id: string, from: string, fingerprint: string, verified: boolean, trust: Trust, request: boolean, reason: string | null, text: string, ts: number }
  | { type: 'request', nick: string, fingerprint: string, ts: number }
  | { type: 'cancelled', id: string, to: string }
  | { type: 'key-changed', nick: string, pinned: string, seen: string }
  | { type: 'warning', message: string }

export interface WhoisResult {
  nick: string
  found: boolean
  fingerprint?: string
  /** How the key found compares with our pin for that nick. */
  pin?: 'new' | 'same' | 'changed'
  /** Our trust in that nick (absent: not a contact). */
  trust?: Trust
  /** How many mailboxes the record names. */
  mailboxes?: number
}

/** `nick` or `nick#fingerprint`. */
export function parseAddress (address: string): { nick: string, fingerprint?: string } {
  const [nick, fp, ...rest] = address.trim().split('#')
  if (rest.length > 0 || !validateNick(nick)) throw new UserError(`invalid nick "${address}": use 1 to 32 characters of a-z, 0-9, _ and -, optionally #fingerprint`, 'BAD_NICK')
  if (fp == null) return { nick }
  const normal = normalizeFingerprint(fp)
  if (normal == null) throw new UserError(`invalid fingerprint in "${address}" (expected four groups like abcd-efgh-ijkl-mnop)`, 'BAD_FINGERPRINT')
  return { nick, fingerprint: normal }
}

function hex (b: Uint8Array): string { return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex') }

/** The /16 of a relay's first IPv4 address (its descriptor's), for spreading exits and mailboxes. */
export function subnetOfAddrs (addrs: string[]): string | undefined {
  for (const a of addrs) {
    const m = /^\/ip4\/(\d{1,3})\.(\d{1,3})\./.exec(a)
    if (m != null) return `${m[1]}.${m[2]}`
  }
  return undefined
}

export class ChatNode {
  readonly nick: string
  readonly identity: Identity
  readonly node: ClientNode
  readonly store: ChatStore
  readonly timing: ChatTiming
  readonly relayDirectory: RelayDirectory
  private admissionWarnedAt = 0
  /** Path relays for cover packets (every live one) and for ranking mailboxes (every known one), see node/relay-view.ts */
  private readonly coverRelays: RelayView<PathRelay>
  private readonly knownRelays: RelayView<PathRelay>
  readonly entry: EntryRelay
  readonly onion: OnionClient
  /** How this node mixes its packets (node/privacy.ts). */
  readonly privacy: PrivacyLevel
  readonly mailboxes: MailboxClient
  readonly directory: DirectoryClient
  /** Which relays count as dead (silent on gossip, on failed paths, a failed dial): left out of every path. */
  readonly health: RelayHealth
  /** Cover traffic and the entry link every packet leaves through (node/client-cover.ts). */
  private readonly cover: ClientCover
  private readonly uniform: Uniform
  /** The dead relays last told to the user (peer ids), to tell only changes. */
  private toldDead = new Set<string>()
  /** The `queued` reason last shown per message: the same reason is not repeated every retry. */
  private readonly lastQueued = new Map<string, string>()
  private readonly onionKeys: UserOnionKeys
  private readonly mailboxKeys: MailboxKeys
  /** The onion keys of the record, rotated when the epoch changes. */
  private publishedKeys: { epoch: number, keys: ReturnType<UserOnionKeys['rotate']> } | undefined
  private readonly seenSeals: SeenSeals
  private readonly listeners = new Set<(e: ChatEvent) => void>()
  private readonly log = logger('p2pchat:chat')
  private readonly bootstrapAddrs: string[]
  private readonly inFlight = new Set<string>()
  /** Messages that found the in-flight window full, in order: each goes when a place comes free. */
  private readonly waitingForSlot = new Set<string>()
  private readonly recordCache = new Map<string, { record: SignedRecord, at: number }>()
  /** Contact records on file whose signature was checked, by nick, with the bytes checked (keptRecord). */
  private readonly keptRecords = new Map<string, { bytes: Uint8Array, record: SignedRecord }>()
  private readonly lookups = new Map<string, Promise<SignedRecord>>()
  private record: SignedRecord | undefined
  private lastSequence = 0n
  private timers: Array<ReturnType<typeof setInterval> | ReturnType<typeof setTimeout>> = []
  /** The next round of outbox retries (re-armed after each, at a drawn interval at mixing levels). */
  private retryTimer: ReturnType<typeof setTimeout> | undefined
  private stopping: Promise<void> | undefined
  private started = false
  readonly contactBook: Contacts
  private readonly receiver: Receiver
  /**
   * Outgoing messages the user sent or retried, with when: only these may pin a nick not yet a
   * contact, and only for USER_PIN_WINDOW retry intervals (a name taken minutes later is not the one meant).
   */
  private readonly userSent = new Map<string, number>()
  /** This start erased version 1's long-term onion.key (told to the user at start). */
  private erasedV1OnionKey = false
  /** What arrived and what went out, for tests and `/status`. */
  get stats (): ReceiveStats { return this.receiver.stats }
  /** Gossip validator: a descriptor that does not verify is rejected and not passed on. */
  private readonly validateGossip = (_peer: PeerId, msg: Message): TopicValidatorResult => {
    const { verdict, record } = this.relayDirectory.gossipCheck(msg.data)
    if (record != null) { this.health.heard(record.peerId); this.entry.relaysChanged(record.peerId) }
    return gossipResult[verdict]
  }

  private constructor (opts: ChatNodeOptions, identity: Identity, node: ClientNode, store: ChatStore) {
    this.nick = opts.nick
    this.identity = identity
    this.node = node
    this.store = store
    this.bootstrapAddrs = opts.bootstrap ?? []
    this.timing = { ...DEFAULT_TIMING, ...opts.timing }
    this.privacy = typeof opts.privacy === 'object' ? opts.privacy : privacyLevel(opts.privacy ?? DEFAULT_PRIVACY)
    // mixing delays lengthen every round trip through the onion: requests wait for them (node/privacy.ts)
    this.timing.requestTimeoutMs += roundTripAllowanceMs(this.privacy)
    this.uniform = opts.uniform ?? cryptoUniform()
    // relays age into admission and out of freshness with the clock: views of the relay list are computed
    // again at least this often, and at once when a descriptor changes (node/relay-view.ts)
    const viewAgeMs = Math.max(1, Math.min(this.timing.announceIntervalMs, this.timing.relayMinAgeMs) / 2)
    this.coverRelays = new RelayView(viewAgeMs, (live, now) => pathRelays(live, now, 3 * this.timing.announceIntervalMs))
    this.knownRelays = new RelayView(viewAgeMs, (all, now) => pathRelays(all, now))
    // cover traffic: every real packet takes the place of the next drop-cover packet (node/client-cover.ts)
    this.cover = new ClientCover({
      privacy: this.privacy,
      link: () => this.entry.link,
      onion: () => this.onion,
      relays: () => this.coverRelays.get(this.health.filter(this.relayDirectory.list())),
      tooFewRelays: () => this.tooFewRelays(),
      onLoopReturned: (path) => { this.health.answered(path) },
      loopTimeoutMs: this.timing.requestTimeoutMs,
      uniform: this.uniform,
      onTick: opts.onCoverTick
    })
    this.onionKeys = new UserOnionKeys(store.database, { epochMs: this.timing.onionEpochMs })
    this.seenSeals = new SeenSeals(store.database)
    this.mailboxKeys = new MailboxKeys(store.database)
    this.relayDirectory = new RelayDirectory({ announceIntervalMs: this.timing.announceIntervalMs })
    this.health = new RelayHealth({ announceIntervalMs: this.timing.announceIntervalMs })
    // dead relays (node/relay-health.ts) are left out of every path, reply block, exit and mailbox
    // and only admitted relays (attested age, loop probe, verified /16) while enough are admitted
    const usableView = new RelayView(viewAgeMs, (live, now) => {
      const admission = admitRelays(live, { minAgeMs: this.timing.relayMinAgeMs, now })
      if (admission.relaxed && now - this.admissionWarnedAt > 60_000) {
        this.admissionWarnedAt = now
        this.emit({ type: 'warning', message: `only ${admission.admitted} of ${admission.verdicts.size} relays are admitted (attested age, loop probe, verified address): paths also use relays not yet admitted until ${MIN_ADMITTED_RELAYS} are` })
      }
      return pathRelays(admission.relays, now, 3 * this.timing.announceIntervalMs, admission.groupOf)
    })
    const usable = (): PathRelay[] => usableView.get(this.health.filter(this.relayDirectory.list()))
    // a relay's sampling /16: the one other relays reached it at once it is admitted (pathRelays puts it first)
    const subnetOf = (r: PathRelay): string | undefined => r.subnets?.[0] ?? subnetOfAddrs(this.relayDirectory.list().find(k => k.record.peerId === r.peerId)?.record.addrs ?? [])
    const warn = (message: string): void => { this.emit({ type: 'warning', message }) }
    this.onion = new OnionClient({
      self: (node.peerId.publicKey as { raw: Uint8Array }).raw,
      hopDelay: this.privacy.meanDelayMs > 0 ? hopDelays(this.privacy.meanDelayMs) : undefined,
      // a DEPOSIT's STORED comes back through slower mixes, out of step with the mailbox's push (privacy.ts STORED_MIX_DELAY_MS)
      slowReplyDelay: this.privacy.storedMixDelayMs > this.privacy.meanDelayMs ? hopDelays(this.privacy.storedMixDelayMs) : undefined,
      relays: usable,
      entry: () => this.cover.link(),
      onWarning: warn,
      // after the packets a send sets off (its answer, a push, a receipt: tens of ms), not among them
      prepareDelayMs: this.timing.prepareDelayMs >= 0 ? this.timing.prepareDelayMs : undefined,
      onOutcome: (relays, answered) => {
        if (answered) this.health.answered(relays)
        else { this.health.unanswered(relays); this.checkRelays() }
      }
    })
    const guards = new GuardSet({ dataDir: opts.dataDir, onWarning: warn })
    this.entry = new EntryRelay({
      node,
      relays: usable,
      addrsOf: (peerId) => this.relayDirectory.list().find(r => r.record.peerId === peerId)?.record.addrs ?? [],
      onDeliver: (packet) => { this.onion.deliver(packet) },
      // a new entry relay: every block stocked at the mailboxes ends at the old one; register anew
      // (the relays drop those blocks and push again what they hold) and stock new ones
      onChange: () => {
        // a new link is a new gossip feed: silence counts again once it carries other relays
        this.health.feedRestarted()
        if (this.started) this.mailboxes.refreshRecord().catch(() => {})
      },
      onWarning: warn,
      allRelays: () => pathRelays(this.relayDirectory.list(), Date.now()),
      onDialFailed: (peerId) => { this.health.dialFailed(peerId); this.checkRelays() },
      avoid: () => this.mailboxes.relayPeerIds(),
      guards,
      guardCheckMs: this.timing.announceIntervalMs
    })
    this.mailboxes = new MailboxClient({
      onion: this.onion,
      keys: this.mailboxKeys,
      relays: usable,
      entryPeerId: () => this.entry.relay?.peerId,
      guards: () => guards.guards.map(g => g.peerId),
      subnetOf,
      record: () => this.signedRecord().bytes,
      blockExpiry: (path) => {
        // a block dies when the first relay on it retires the key it was built with
        let earliest: number | undefined
        for (const peerId of path) {
          const rec = this.relayDirectory.list().find(r => r.record.peerId === peerId)?.record
          const key = rec == null ? undefined : onionKeyFor(rec, Date.now())
          if (key != null) earliest = Math.min(earliest ?? key.notAfter, key.notAfter)
        }
        return earliest
      },
      onItem: async (item) => await this.receiver.onItem(item),
      want: opts.mailboxes,
      timing: {
        stockIntervalMs: this.timing.stockIntervalMs,
        stockTtlMs: this.timing.stockTtlMs,
        requestTimeoutMs: this.timing.requestTimeoutMs,
        depositAllowanceMs: storedAnswerAllowanceMs(this.privacy),
        // steady mailbox fetching (mailbox v2) at a level that has it; none at `fast`, which sends at once
        ...(this.cover.active ? { pushPeriodMs: this.privacy.mailboxPushPeriodMs, syncGapMs: this.privacy.mailboxSyncGapMs } : {})
      } satisfies Partial<MailboxTiming>,
      uniform: this.uniform,
      onWarning: warn
    })
    this.directory = new DirectoryClient({
      onion: this.onion,
      relays: usable,
      entryPeerId: () => this.entry.relay?.peerId,
      subnetOf,
      timeoutMs: this.timing.requestTimeoutMs,
      onWarning: warn
    })
    this.contactBook = new Contacts(store, identity.identityKey)
    this.receiver = new Receiver({
      store,
      contacts: this.contactBook,
      onionKeys: this.onionKeys,
      seenSeals: this.seenSeals,
      identity,
      // a receipt's DEPOSIT expects its STORED (answer cover, node/answer-cover.ts)
      mailboxes: { deposit: async (...args) => await this.cover.tagged({ answers: ['stored'] }, async () => await this.mailboxes.deposit(...args)) },
      directory: this.directory,
      timing: this.timing,
      receiptDelayMs: this.privacy.receiptDelayMs,
      uniform: this.uniform,
      acceptAnyone: opts.acceptAnyone === true,
      emit: (e) => { this.emit(e) },
      keptRecord: (nick) => this.keptRecord(nick),
      depositOrder: (record) => this.depositOrder(record),
      running: () => this.started && this.stopping == null
    })
  }

  /** Builds the node (keys, store, a fresh transport key, libp2p) without touching the network. */
  static async create (opts: ChatNodeOptions): Promise<ChatNode> {
    if (!validateNick(opts.nick)) throw new UserError(`invalid nick "${opts.nick}": use 1 to 32 characters of a-z, 0-9, _ and -`, 'BAD_NICK')
    if (typeof opts.privacy === 'string') privacyLevel(opts.privacy) // an unknown level fails before anything is opened
    const loaded = opts.identity == null ? await loadIdentity(opts.dataDir) : undefined
    const identity = opts.identity ?? loaded as Identity
    const store = ChatStore.open(ChatStore.pathIn(opts.dataDir), { datasync: opts.datasync })
    try {
      const transport = await loadTransportKey(opts.dataDir, { fresh: true })
      const node = await createClientNode({ privateKey: transport.privateKey, listen: opts.listen, allow: opts.allow })
      const chat = new ChatNode(opts, identity, node, store)
      chat.erasedV1OnionKey = loaded?.erasedV1OnionKey === true
      return chat
    } catch (err) {
      store.close()
      throw err
    }
  }

  on (listener: (e: ChatEvent) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** The last start stage reported ('ready' once joined). */
  get stage (): string { return this.lastStage }
  private lastStage = 'created'

  private emit (e: ChatEvent): void {
    if (e.type === 'status') this.lastStage = e.stage
    for (const l of this.listeners) {
      try { l(e) } catch (err) { this.log.error('listener failed: %s', (err as Error).message) }
    }
  }

  /** This run's transport peer id (changes every run; never published). */
  get peerId (): string { return this.node.peerId.toString() }
  get fingerprint (): string { return this.identity.fingerprint }
  addrs (): string[] { return this.node.getMultiaddrs().map(a => a.toString()) }

  private nextSequence (): bigint {
    const now = BigInt(Date.now())
    this.lastSequence = now > this.lastSequence ? now : this.lastSequence + 1n
    return this.lastSequence
  }

  /** Our name record as it should be now: current onion keys, the mailboxes in use, no address. */
  private signedRecord (): SignedRecord {
    // the keys are rotated (a database write) only when the wall clock entered another onion epoch
    const epoch = this.onionKeys.epochAt()
    if (this.publishedKeys == null || this.publishedKeys.epoch !== epoch) this.publishedKeys = { epoch, keys: this.onionKeys.rotate() }
    const keys = this.publishedKeys.keys
    const mailboxes = this.mailboxes.addresses().length > 0
      ? this.mailboxes.addresses()
      : this.mailboxKeys.active().map(k => ({ relay: k.relay, mailboxId: k.id }))
    // the same mailboxes in another order are the same record: the keys list them by creation, the
    // registered ones come in the order their REGISTERs were sent (a start publishes the record its
    // REGISTERs carry, and must not sign and publish it again for the order alone)
    const ids = (list: Uint8Array[]): string => list.map(id => hex(id)).sort().join()
    const wanted = keys.map(k => hex(k.publicKey)).join() + ids(mailboxes.slice(0, 4).map(m => m.mailboxId))
    const held = this.record
    if (held != null && held.expiry - Date.now() > NAME_TTL_MS - REPUBLISH_INTERVAL_MS &&
      held.onionKeys.map(k => hex(k.key)).join() + ids(held.mailboxes.map(m => m.id)) === wanted) return held
    this.record = signRecord({
      kind: KIND_NAME,
      nick: this.nick,
      identityKey: this.identity.identityKey,
      onionKeys: keys.map(k => ({ epoch: k.epoch, notBefore: k.notBefore, notAfter: k.notAfter, key: k.publicKey })),
      addrs: [],
      mailboxes: mailboxes.slice(0, 4).map(m => ({ relay: m.relay, id: m.mailboxId })),
      sequence: this.nextSequence(),
      expiry: Date.now() + NAME_TTL_MS
    }, this.identity.signer)
    return this.record
  }

  /**
   * Joins the network: a first relay list from a bootstrap node, the entry relay, mailboxes, the name
   * published through an exit; then resumes the outbox and the owed receipts.
   */
  async start (options: { signal?: AbortSignal, connectTimeoutMs?: number } = {}): Promise<void> {
    if (this.started) return
    this.started = true
    try {
      await this.join(options)
    } catch (err) {
      this.started = false
      throw err
    }
  }

  private async join (options: { signal?: AbortSignal, connectTimeoutMs?: number }): Promise<void> {
    const pubsub = this.node.services.pubsub
    pubsub.topicValidators.set(RELAY_TOPIC, this.validateGossip)
    pubsub.subscribe(RELAY_TOPIC)

    if (this.erasedV1OnionKey) this.emit({ type: 'warning', message: 'erased onion.key of version 1: it is no longer used (onion keys now rotate daily) and would open old messages if seized' })
    this.emit({ type: 'status', stage: 'connecting', detail: 'asking a bootstrap node for relays' })
    await this.fetchRelays(options)
    this.emit({ type: 'status', stage: 'entry', detail: `${this.relayDirectory.size} relays known; connecting to an entry relay` })
    try {
      await this.entry.connect(options.signal)
    } catch (err) {
      throw new UserError(`could not reach any relay: ${(err as Error).message}`, 'NO_RELAYS')
    }
    // the bootstrap node's connection is closed beside the mailboxes' start, not before it (a graceful
    // close takes a few ms, tens under load); ready waits for it: a ready user holds its entry link only
    const bootstrapPeers = this.bootstrapAddrs.map(addr => multiaddr(addr)).filter(ma => {
      const id = ma.getComponents().find(c => c.name === 'p2p')?.value
      return id != null && id !== this.entry.relay?.peerId
    })
    const hangingUp = Promise.all(bootstrapPeers.map(async ma => { await this.node.hangUp(ma).catch(() => {}) }))
    const every = (ms: number, fn: () => void): void => { const t = setInterval(fn, ms); t.unref(); this.timers.push(t) }
    // dead relays are looked for from here on: a REGISTER of the start over a relay found dead is sent
    // again at once (node/mailboxes.ts `avoid`), not at the next hedge tick
    every(this.timing.announceIntervalMs, () => { this.checkRelays() })
    this.emit({ type: 'status', stage: 'mailboxes', detail: `entry relay ${this.entry.relay?.peerId ?? '?'}; registering mailboxes` })
    // The name record names the mailboxes, and every REGISTER carries it: once the mailboxes of this
    // start are chosen (`chosen`), the record their REGISTERs carry is published beside them instead of
    // after their answers (one onion round trip and the relay's write less before ready). Ready still
    // waits for both; a record that no longer names the mailboxes held at the end (one refused or
    // unanswered, another registered) is signed again and published then, as before.
    let early: { record: SignedRecord, publishing: Promise<void> } | undefined
    const publishNow = (): void => {
      const record = this.signedRecord()
      this.emit({ type: 'status', stage: 'publishing', detail: `publishing the name "${this.nick}"` })
      early = { record, publishing: this.publish(record) }
      early.publishing.catch(() => {}) // awaited below; a mailbox failure may end the start first
    }
    try {
      await this.mailboxes.start({ chosen: publishNow })
    } catch (err) {
      throw new UserError((err as Error).message, 'NO_MAILBOX')
    }
    const started = early as { record: SignedRecord, publishing: Promise<void> } | undefined
    if (started == null) {
      this.emit({ type: 'status', stage: 'publishing', detail: `publishing the name "${this.nick}"` })
      await this.publish()
    } else {
      await started.publishing
      if (this.signedRecord() !== started.record) await this.publish()
    }
    await hangingUp
    // the outbox and owed receipts at drawn intervals at a mixing level (uniform on 0.5..1.5 retry
    // intervals: a resend never comes a fixed time after the send it repeats), fixed at `fast`
    const drawn = this.privacy.meanDelayMs > 0 || this.cover.active
    const retryRound = (): void => {
      const ms = drawn ? this.timing.retryIntervalMs * (0.5 + this.uniform()) : this.timing.retryIntervalMs
      this.retryTimer = setTimeout(() => {
        if (this.stopping != null) return
        this.retryOutbox(); this.receiver.receiptsLater(); this.onion.expire()
        retryRound()
      }, ms)
      this.retryTimer.unref()
    }
    retryRound()
    every(REPUBLISH_INTERVAL_MS, () => { this.refreshRecord().catch(err => { this.log('republishing: %s', (err as Error).name) }) })
    // cover from here on: the start's own burst (registering, stocking, publishing) went at once
    this.cover.start()
    this.emit({ type: 'status', stage: 'ready', detail: `${this.relayDirectory.size} relays known, ${this.mailboxes.addresses().length} mailboxes; privacy ${this.privacy.summary}` })
    this.retryOutbox()
    this.receiver.receiptsLater()
  }

  /**
   * Tells the user at once which relays stopped answering or came back, and when too few are left to
   * build a path; has the mailboxes re-stock blocks that avoid the dead ones; sends the outbox again
   * when relays come back. Runs every announce interval and after every unanswered request.
   */
  private checkRelays (): void {
    if (!this.started || this.stopping != null) return
    const known = this.relayDirectory.list()
    const dead = this.health.dead(known)
    const deadNow = new Set(dead.map(d => d.peerId))
    const newlyDead = dead.filter(d => !this.toldDead.has(d.peerId))
    const back = [...this.toldDead].filter(p => !deadNow.has(p))
    if (newlyDead.length === 0 && back.length === 0) return
    this.toldDead = deadNow
    const live = `${known.length - deadNow.size} of ${known.length} relays live`
    const why = { silent: 'no announcement heard', 'no-answer': 'no answer through it', 'dial-failed': 'could not be dialled' }
    for (const d of newlyDead) this.emit({ type: 'warning', message: `relay ${d.peerId} stopped answering (${why[d.reason]}): left out of paths, reply blocks and mailboxes; ${live}` })
    for (const p of back) this.emit({ type: 'warning', message: `relay ${p} is back; ${live}` })
    if (newlyDead.length > 0) {
      const few = this.tooFewRelays()
      if (few != null) this.emit({ type: 'warning', message: `${few}: messages wait in the outbox until relays are back` })
      this.mailboxes.avoid(deadNow)
    }
    if (back.length > 0) {
      this.mailboxes.topUp().catch(() => {})
      this.retryOutbox()
      this.receiver.receiptsLater()
    }
  }

  /** Packets this node handed its entry link since it was created (cover, real, startup alike). */
  get packetsSubmitted (): number { return this.cover.packetsSubmitted }

  /** What `/status` shows of the privacy level and its cover traffic. */
  privacyStatus (): { level: string, summary: string, meanDelayMsPerHop: number, loopPerMinute: number, dropPerMinute: number, receiptDelayMs: number, cover: ClientCoverStatus | null } {
    const p = this.privacy
    const cover = this.cover.status()
    return { level: p.name, summary: p.summary, meanDelayMsPerHop: p.meanDelayMs, loopPerMinute: p.loopPerMinute, dropPerMinute: p.dropPerMinute, receiptDelayMs: p.receiptDelayMs, cover }
  }

  /** Why no path can be built now (no entry relay, or no live relay beside it), or undefined. */
  private tooFewRelays (): string | undefined {
    const known = this.relayDirectory.list().length
    const live = this.relays().length
    if (this.entry.link == null) return `not connected to an entry relay (${live} of ${known} relays live)`
    if (live < 2) return `too few live relays to build a path (${live} of ${known} relays live)`
    return undefined
  }

  /**
   * The start's publication: START_PUBLISH_ROUNDS rounds of exits, late answers counted (a slow network
   * makes a slow start, told as a status, not a failed one); fails on a taken nick at once and on
   * silence only after every round.
   */
  private async publish (record = this.signedRecord()): Promise<void> {
    try {
      await this.directory.publish(record.bytes, this.nick, {
        rounds: START_PUBLISH_ROUNDS,
        onSlow: (round) => { this.emit({ type: 'status', stage: 'publishing', detail: `publishing the name "${this.nick}": no exit answered in time (a slow network); asking again (round ${round} of ${START_PUBLISH_ROUNDS})` }) }
      })
    } catch (err) {
      const name = (err as Error).name
      if (name === 'NickTakenError') throw new UserError(`nick "${this.nick}" is held by another key; choose another nick`, 'NICK_TAKEN')
      throw new UserError((err as Error).message, 'PUBLISH_FAILED')
    }
  }

  /** New onion keys or mailboxes: re-sign, hand the record to the mailboxes, republish. */
  private async refreshRecord (): Promise<void> {
    const before = this.record
    const now = this.signedRecord()
    if (before !== now) await this.mailboxes.refreshRecord()
    await this.directory.publish(now.bytes, this.nick)
  }

  /** Asks the bootstrap nodes for signed relay descriptors until some verify. */
  private async fetchRelays (options: { signal?: AbortSignal, connectTimeoutMs?: number }): Promise<void> {
    const deadline = Date.now() + (options.connectTimeoutMs ?? 30_000)
    for (let round = 0; this.relayDirectory.size === 0; round++) {
      options.signal?.throwIfAborted()
      if (Date.now() > deadline) break
      await Promise.all(this.bootstrapAddrs.map(async addr => {
        try {
          const signal = AbortSignal.timeout(Math.max(1, Math.min(10_000, deadline - Date.now())))
          const conn = await this.node.dial(multiaddr(addr), { signal })
          const list = await fetchRelayList(this.node, conn.remotePeer, signal)
          for (const r of list.relays) this.relayDirectory.add(r.bytes)
        } catch (err) {
          this.log('relay list from %s: %s', addr, (err as Error).message)
        }
      }))
      if (this.relayDirectory.size === 0) await new Promise(resolve => setTimeout(resolve, Math.min(2_000, 250 * (round + 1))))
    }
    if (this.relayDirectory.size === 0) throw new UserError('could not join the network: no bootstrap node gave a relay list (check --bootstrap, and that relays are running)', 'NO_PEERS')
  }

  async stop (): Promise<void> {
    this.stopping ??= (async () => {
      for (const t of this.timers) clearInterval(t)
      this.timers = []
      clearTimeout(this.retryTimer)
      // real packets still waiting for a cover tick are abandoned: their requests fail now
      this.cover.stop()
      this.receiver.stop()
      this.mailboxes.stop()
      this.onion.close()
      await this.entry.stop()
      const pubsub = this.node.services.pubsub
      pubsub.topicValidators.delete(RELAY_TOPIC)
      await this.node.stop()
      this.store.close()
    })()
    await this.stopping
  }

  // ---------------------------------------------------------------------------------------------
  // Sending
  // ---------------------------------------------------------------------------------------------

  /**
   * Stores a message in the outbox and starts delivering it; returns its id at once. The outbox row is
   * committed before this returns and on disk before 'stored' is said (ChatStore.addOutgoing; its sync runs
   * alongside the first deposit, see attempt()).
   */
  send (address: string, text: string): { id: string, to: string } {
    const { nick, fingerprint: fp } = parseAddress(address)
    if (text.length === 0) throw new UserError('empty message', 'EMPTY')
    if (Buffer.byteLength(text, 'utf8') > MAX_TEXT_BYTES) throw new UserError(`message too long: at most ${MAX_TEXT_BYTES} bytes of UTF-8`, 'TOO_LONG')
    if (text.includes('\0')) throw new UserError('message contains a NUL character', 'BAD_TEXT')
    const id = hex(randomBytes(16))
    const now = Date.now()
    this.store.addOutgoing({ id, peerNick: nick, peerFingerprint: fp ?? '', text, timestamp: now, expiresAt: now + this.timing.messageTtlMs }, now)
    this.userSent.set(id, now) // the user's own action: it may pin the key the directory gives now
    this.launch(id)
    return { id, to: nick }
  }

  private retryOutbox (): void {
    if (this.stopping != null || !this.started) return
    const now = Date.now()
    const expiring = this.store.outbox(0).filter(m => m.expiresAt != null && m.expiresAt <= now)
    this.store.expireOutgoing(now)
    for (const m of expiring) this.emit({ type: 'failed', id: m.id, to: m.peerNick, reason: 'expired' })
    const outbox = this.store.outbox(now)
    const waiting = new Set(outbox.map(m => m.id))
    for (const id of this.lastQueued.keys()) if (!waiting.has(id)) this.lastQueued.delete(id)
    for (const m of outbox) this.launch(m.id)
    this.seenSeals.expire(now)
  }

  private launch (id: string): void {
    if (this.stopping != null || !this.started || this.inFlight.has(id)) return
    if (this.inFlight.size >= this.timing.maxInFlight) { this.waitingForSlot.add(id); return }
    this.waitingForSlot.delete(id)
    this.inFlight.add(id)
    this.attempt(id).catch(err => {
      // the error's name only: a message may name the contact, and logs never hold nicks
      this.log('sending %s: %s', id, (err as Error).name)
    }).finally(() => {
      this.inFlight.delete(id)
      this.launchWaiting()
    })
  }

  /** A place in the in-flight window came free: the messages that found it full go next, oldest first. */
  private launchWaiting (): void {
    for (const id of this.waitingForSlot) {
      if (this.stopping != null || this.inFlight.size >= this.timing.maxInFlight) break
      this.launch(id)
    }
  }


  /**
   * A contact's record: ours on file when fresh, else looked up through exits (one lookup per nick at a
   * time). A contact we have (pinned) is reached from its record on file when the lookup fails, also
   * when the directory has lost the name; a nick that is no contact is only ever looked up.
   */
  private async contact (nick: string, maxAgeMs = this.timing.recordCacheMs): Promise<SignedRecord> {
    const cached = this.recordCache.get(nick)
    if (cached != null && Date.now() - cached.at < maxAgeMs && cached.record.expiry > Date.now()) return cached.record
    const kept = this.keptRecord(nick)
    const pin = this.store.getPin(nick)
    const ours = kept != null && pin != null && bytesEqual(pin.identityKey, kept.identityKey) ? kept : undefined
    let running = this.lookups.get(nick)
    if (running == null) {
      running = this.cover.tagged({ lane: 'first' }, async () => await this.directory.lookup(nick)).then(record => {
        this.recordCache.set(nick, { record, at: Date.now() })
        return record
      }).catch((err: Error) => {
        // the directory may have lost (or never had again) a contact we already have: its record on file still reaches it
        if (ours != null) return ours
        throw err
      }).finally(() => this.lookups.delete(nick))
      this.lookups.set(nick, running)
    }
    return await running
  }

  /**
   * The record on file for a contact, if still valid. Its signature is checked once per record bytes
   * (kept in `keptRecords`), not on every message and receipt; its expiry on every call.
   */
  private keptRecord (nick: string): SignedRecord | undefined {
    const bytes = this.store.contactRecord(nick)
    if (bytes == null) return undefined
    const known = this.keptRecords.get(nick)
    if (known != null && bytesEqual(known.bytes, bytes)) return known.record.expiry > Date.now() ? known.record : undefined
    try {
      const record = verifyRecord(nameKey(nick), bytes)
      if (this.keptRecords.size >= MAX_KEPT_RECORDS) this.keptRecords.clear()
      this.keptRecords.set(nick, { bytes: bytes.slice(), record })
      return record
    } catch {
      this.keptRecords.delete(nick)
      return undefined
    }
  }

  /**
   * The pin rule for sending (node/contacts.ts): a key is pinned only by the user's own send (or retry)
   * or an explicit fingerprint; a retry by the outbox of a message to a nick that is no contact waits
   * for the user. 'changed': another key than the pinned one (loud, nothing sent).
   */
  private checkSendPin (id: string, nick: string, record: SignedRecord, explicit: boolean): 'ok' | 'changed' | 'unconfirmed' {
    const pin = this.store.getPin(nick)
    const sentAt = this.userSent.get(id)
    // with cover traffic each request first waits for a cover tick (loop or drop): 10 mean waits more (counted on
    // the drop rate alone, 30 s at standard: more than the merged stream's 27 s, so a window that errs long)
    const coverWait = !this.cover.active ? 0 : Math.ceil(10 * 60_000 / Math.max(1e-9, this.privacy.dropPerMinute))
    const byUser = sentAt != null && Date.now() - sentAt <= USER_PIN_WINDOW * this.timing.retryIntervalMs + this.timing.requestTimeoutMs + coverWait
    if (pin == null && !explicit && !byUser) return 'unconfirmed'
    const { result, accepted } = this.contactBook.pinByUser(nick, record.identityKey)
    if (result === 'changed') {
      const now = this.store.getPin(nick)
      this.emit({ type: 'key-changed', nick, pinned: now?.fingerprint ?? '', seen: fingerprint(record.identityKey) })
      return 'changed'
    }
    this.store.putContactRecord(nick, record.bytes, record.sequence)
    if (accepted?.kind === 'request') this.receiver.accepted(nick, accepted.identityKey, accepted.record, accepted.messageIds)
    return 'ok'
  }

  /** Does `nick` know us already (a receipt from it arrived)? Then our record need not ride along. */
  private knowsUs (nick: string): boolean {
    return this.store.deliveredAmongLatest(nick, 200)
  }

  /** One delivery attempt: seal, deposit at one of the recipient's mailboxes, the other if that fails. */
  private async attempt (id: string): Promise<void> {
    const msg = this.store.get(id)
    if (msg == null || msg.direction !== 'out' || (msg.state !== 'queued' && msg.state !== 'sent')) return
    // the outbox row (addOutgoing) is committed without an fsync of its own: a crash of the process keeps
    // it, a power loss before its sync may not. The sync starts now on the thread pool and the packet does
    // not wait for it (no disk round trip on the send path: ~1.3 ms here, issue 13); 'stored' is said only
    // once the row and its STORED mark are on disk (stored() below). What a power loss in that window can
    // do: lose the row of a message that left, so the recipient may show a message the sender's history
    // lacks; waiting would not have kept the row either (the sync had not ended), only the packet back
    this.store.durable().catch(() => {})
    // a reason is shown once: the same one again at every retry would only repeat itself
    const queue = (reason: string): void => {
      if (this.lastQueued.get(id) === reason) return
      this.lastQueued.set(id, reason)
      this.emit({ type: 'queued', id, to: msg.peerNick, reason })
    }
    const few = this.tooFewRelays()
    if (few != null) { queue(`${few}; it waits in the outbox and goes when relays are back`); return }
    let record: SignedRecord
    try {
      // a retry looks the contact up again only if its record is older than a retry interval or two:
      // one lookup through two exits serves every queued message to that contact
      record = await this.contact(msg.peerNick, msg.attempts > 0 ? Math.min(this.timing.recordCacheMs, 2 * this.timing.retryIntervalMs) : this.timing.recordCacheMs)
    } catch (err) {
      if ((err as Error).name === 'NameNotFoundError' && this.store.getPin(msg.peerNick) == null) {
        // nobody holds the nick: failing now is honest; queueing would hand it to whoever takes the nick later
        this.store.markFailed(id, 'no-such-nick')
        this.emit({ type: 'failed', id, to: msg.peerNick, reason: `nobody holds the nick "${msg.peerNick}"` })
        return
      }
      queue(`${msg.peerNick} cannot be reached now (${(err as Error).message}); will retry`)
      return
    }
    const seen = fingerprint(record.identityKey)
    if (msg.peerFingerprint !== '' && msg.peerFingerprint !== seen) {
      this.store.markFailed(id, 'fingerprint-mismatch')
      this.emit({ type: 'failed', id, to: msg.peerNick, reason: `${msg.peerNick} now has fingerprint ${seen}, not ${msg.peerFingerprint}` })
      return
    }
    const pinned = this.checkSendPin(id, msg.peerNick, record, msg.peerFingerprint !== '')
    this.userSent.delete(id)
    if (pinned === 'unconfirmed') { queue(`${msg.peerNick} is not a contact yet and could not be looked up when you sent it: it waits for you to retry it (then it goes to whoever holds ${msg.peerNick} now, fingerprint ${seen}) or cancel it`); return }
    if (pinned === 'changed') {
      queue(`the key of ${msg.peerNick} changed; /verify and accept it before messages are sent`)
      return
    }
    if (record.mailboxes.length === 0) { queue(`${msg.peerNick} has no mailbox in its record; will retry`); return }
    const key = onionKeyFor(record, Date.now())
    if (key == null) { queue(`${msg.peerNick}'s record has no onion key valid now; will retry`); return }
    if (this.stopping != null) return
    const sealed = sealMessage(createMessage({
      id: Buffer.from(id, 'hex'),
      senderNick: this.nick,
      senderIdentityKey: this.identity.identityKey,
      timestamp: msg.timestamp,
      text: msg.text,
      nameRecord: this.knowsUs(msg.peerNick) ? undefined : this.signedRecord().bytes
    }), this.identity.signer, { identityKey: record.identityKey, onionKey: key.key, epoch: key.epoch })
    const boxes = this.depositOrder(record)
    if (this.stopping != null) return
    this.store.markSent(id)
    // a STORED that comes after the request timed out (a slow network, not a failing one) still counts:
    // the item is in that mailbox, so the message is stored and the outbox stops sending it again
    const stored = (): void => {
      this.lastQueued.delete(id)
      if (!this.store.markStored(id)) return
      // said once on disk (markStored commits without an fsync on the event loop; the sync covers the
      // outbox row too, committed before it)
      this.store.durable().then(() => { this.emit({ type: 'stored', id, to: msg.peerNick }) }, (err: Error) => {
        this.log('marking %s stored: %s', id, err.name)
      })
    }
    const late = (kind: string): void => { if (kind === 'stored' && this.stopping == null) stored() }
    let lastReason = ''
    for (const [i, box] of boxes.entries()) {
      // a late answer to an earlier deposit of this message may have come meanwhile
      if (this.stopping != null) return
      const now = this.store.get(id)
      if (now == null || (now.state !== 'queued' && now.state !== 'sent')) return
      this.emit({ type: 'sent', id, to: msg.peerNick, attempt: msg.attempts + 1 + i, path: [hex(box.relay).slice(0, 16)] })
      try {
        // what the user waits for leaves before queued upkeep and receipts (same rate: node/cover.ts)
        // its STORED, and on the first deposit of its first send its receipt, are expected (answer cover)
        const answers: AnswerKind[] = i === 0 && msg.attempts === 0 ? ['stored', 'receipt'] : ['stored']
        const kind = await this.cover.tagged({ lane: 'first', answers }, async () => await this.mailboxes.deposit({ relay: box.relay, mailboxId: box.id }, sealed, late))
        if (kind === 'stored') {
          stored()
          return
        }
        lastReason = `mailbox answered ${kind}`
      } catch (err) {
        lastReason = (err as Error).message
      }
    }
    // stopping abandons packets still waiting for a cover tick: not worth a word, the next start sends it
    if (this.stopping != null) return
    const after = this.store.get(id)
    if (after == null || (after.state !== 'queued' && after.state !== 'sent')) return
    queue(`no mailbox of ${msg.peerNick} stored it (${lastReason}); will retry`)
  }

  /**
   * The order to try a contact's mailboxes in: random, but a mailbox on our own entry relay (our guard)
   * last, and one in the guard's /16 or family just before it (that relay, or its operator, would see
   * our packet leave and then arrive for its mailbox: it would link us to the contact by timing alone).
   */
  private depositOrder (record: SignedRecord): SignedRecord['mailboxes'] {
    const entry = this.entry.relay
    const shuffled = [...record.mailboxes]
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = randomInt(i + 1)
      ;[shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]]
    }
    if (entry == null) return shuffled
    const known = this.knownRelays.get(this.relayDirectory.list())
    const guard = known.find(r => r.peerId === entry.peerId) ?? entry
    const rank = (m: SignedRecord['mailboxes'][number]): number => {
      if (bytesEqual(m.relay, entry.address)) return 2
      const r = known.find(k => bytesEqual(k.address, m.relay))
      return r != null && sameGroup(r, guard) ? 1 : 0
    }
    return shuffled.map(m => ({ m, rank: rank(m) })).sort((a, b) => a.rank - b.rank).map(x => x.m)
  }

  // ---------------------------------------------------------------------------------------------
  // Queries
  // ---------------------------------------------------------------------------------------------

  /** Looks a nick up through exits and compares it with the pin. */
  async whois (address: string): Promise<WhoisResult> {
    const { nick } = parseAddress(address)
    try {
      const record = await this.contact(nick, 0)
      const pin = this.store.getPin(nick)
      const fp = fingerprint(record.identityKey)
      const result: WhoisResult = { nick, found: true, fingerprint: fp, pin: pin == null ? 'new' : pin.fingerprint === fp ? 'same' : 'changed', mailboxes: record.mailboxes.length }
      const trust = trustOf(pin)
      if (trust != null) result.trust = trust
      return result
    } catch (err) {
      if ((err as Error).name === 'NameNotFoundError') return { nick, found: false }
      throw err
    }
  }

  contacts (): Array<Pin & { trust: Trust }> { return this.store.contacts().map(p => ({ ...p, trust: trustOf(p) ?? 'unverified' })) }
  history (nick: string, limit = 50): StoredMessage[] { return this.store.history(parseAddress(nick).nick, limit) }
  /** A contact's trust state (undefined: not a contact). */
  trust (nick: string): Trust | undefined { return this.contactBook.trust(parseAddress(nick).nick) }
  /** Pending contact requests, oldest first. */
  requests (): ContactRequest[] { return this.contactBook.requests() }
  conversations (): Array<Conversation & { fingerprint: string | null, trust: Trust | null }> {
    return this.contactBook.conversations().map(c => {
      const pin = this.store.getPin(c.nick)
      return { ...c, fingerprint: pin?.fingerprint ?? null, trust: trustOf(pin) ?? null }
    })
  }

  /** Marks a conversation read up to now. */
  markRead (nick: string): void { this.contactBook.table.markRead(parseAddress(nick).nick) }

  /**
   * `/accept <nick>`: a contact request becomes a contact (its messages join the conversation and are
   * receipted now), or a changed key replaces the pin (queued messages to it are sent now).
   */
  accept (nick: string): AcceptResult['kind'] {
    const name = parseAddress(nick).nick
    const r = this.contactBook.accept(name)
    if (r.kind === 'request') this.receiver.accepted(name, r.identityKey, r.record, r.messageIds)
    if (r.kind !== 'none') this.retryOutbox()
    return r.kind
  }

  /** Same as accept (kept for the --json "accept" of version 1): true if something was accepted. */
  acceptKey (nick: string): boolean { return this.accept(nick) !== 'none' }

  /** `/deny <nick>`: deletes a request and its messages (nothing is sent), or refuses a changed key. */
  deny (nick: string): boolean { return this.contactBook.deny(parseAddress(nick).nick) }

  /** `/block <nick>`: its key's items are dropped unread from now on (counted); a request is deleted. */
  block (nick: string): boolean { return this.contactBook.block(parseAddress(nick).nick) }

  /** Both fingerprints and the safety number with a contact or a request. */
  safetyNumber (nick: string): SafetyNumberView { return this.contactBook.safety(parseAddress(nick).nick) }

  /** The user compared the safety number: the contact becomes verified (a request is accepted first). */
  confirmVerified (nick: string): SafetyNumberView {
    const name = parseAddress(nick).nick
    if (this.store.getPin(name) == null && this.contactBook.table.request(name) != null) this.accept(name)
    return this.contactBook.confirm(name)
  }

  /**
   * `/retry <id>` (a full id or its first 8 hex digits): a failed message is queued again, a queued one
   * is tried now; counts as the user's action (it may pin the key found now). False if no such message
   * is waiting or failed.
   */
  retry (id: string): { ok: boolean, id: string } {
    const msg = this.findOutgoing(id)
    if (msg == null) return { ok: false, id }
    if (msg.state === 'failed' && !this.store.requeue(msg.id, Date.now() + this.timing.messageTtlMs)) return { ok: false, id: msg.id }
    if (msg.state !== 'failed' && msg.state !== 'queued' && msg.state !== 'sent') return { ok: false, id: msg.id }
    this.userSent.set(msg.id, Date.now())
    this.launch(msg.id)
    return { ok: true, id: msg.id }
  }

  /**
   * `/cancel <id>`: a queued or failed message is not sent (again): failed, reason 'cancelled'. A
   * deposit already on its way may still be stored (then shown ✓: it was). False if none such.
   */
  cancel (id: string): { ok: boolean, id: string } {
    const msg = this.findOutgoing(id)
    if (msg == null || !this.store.cancel(msg.id)) return { ok: false, id: msg?.id ?? id }
    this.waitingForSlot.delete(msg.id)
    this.userSent.delete(msg.id)
    this.emit({ type: 'cancelled', id: msg.id, to: msg.peerNick })
    return { ok: true, id: msg.id }
  }

  /** An outgoing message by its id or a unique prefix of at least 8 hex digits. */
  private findOutgoing (id: string): StoredMessage | undefined {
    const want = id.trim().toLowerCase()
    if (!/^[0-9a-f]{8,32}$/.test(want)) return undefined
    if (want.length === 32) { const m = this.store.get(want); return m?.direction === 'out' ? m : undefined }
    const found = this.store.outgoingByPrefix(want)
    return found.length === 1 ? found[0] : undefined
  }

  /** The live relays (a relay found dead is not listed until it is heard again). */
  relays (): Array<{ peerId: string, lastSeen: number, expiry: number }> {
    return this.health.filter(this.relayDirectory.list()).map(r => ({ peerId: r.record.peerId, lastSeen: r.lastSeen, expiry: r.record.expiry }))
  }
}
