/**
 * ChatNode: the facade the CLI and the tests drive. One libp2p node with its directory, onion
 * router and message store, and the chat rules on top:
 *
 * - send: the message is stored in the outbox first (so nothing typed is lost), then sealed to the
 *   recipient's onion key with a fresh reply block and sent over a random 3-relay path. No receipt
 *   within `receiptTimeoutMs`: resend over a path of other relays, up to `maxAttempts`, then failed.
 *   An unreachable recipient (no record) leaves the message queued; the outbox is retried on a timer
 *   and after a restart, until delivered or expired.
 * - receive: open and verify (signature, directory record, pinned key), store once per id, show
 *   once, and always answer with a signed receipt through the message's reply block (a duplicate
 *   is receipted again: the first receipt may have been lost).
 * - pins: the first key seen for a nick is pinned; a changed key is a warning, and that nick's
 *   messages are unverified (and nothing is sent to it) until the user accepts the new key.
 */
import { randomBytes } from 'node:crypto'
import { logger } from '@libp2p/logger'
import { createP2PNode, joinDht } from './create.ts'
import type { P2PNode } from './create.ts'
import { loadIdentity } from './identity.ts'
import type { Identity } from './identity.ts'
import { ChatStore } from './store.ts'
import type { Pin, StoredMessage } from './store.ts'
import { UserError } from './errors.ts'
import { Directory } from '../protocols/directory/index.ts'
import type { SignedRecord } from '../protocols/directory/index.ts'
import {
  createMessage, createReceipt, decodeEnvelope, encodeEnvelope, fingerprint, MAX_TEXT_BYTES,
  normalizeFingerprint, openMessage, sealMessage, validateNick, verifyReceipt
} from '../protocols/chat/index.ts'
import { NotEnoughRelaysError, OnionRouter, surbSecretFromBytes, surbSecretToBytes } from '../protocols/onion/index.ts'
import type { OnionEvent, SurbKeeper } from '../protocols/onion/index.ts'

export interface ChatTiming {
  /** How long to wait for a receipt before resending over a new path. */
  receiptTimeoutMs: number
  /** Attempts per message before it is reported failed. */
  maxAttempts: number
  /** A queued message not delivered within this is failed as expired. */
  messageTtlMs: number
  /** How often the outbox is retried for recipients that were unreachable. */
  retryIntervalMs: number
  /** Relays' gossip announce interval. */
  announceIntervalMs: number
  /** How long a directory record (a recipient's, a sender's) is reused before it is looked up again. */
  recordCacheMs: number
  /**
   * At most this many messages are on the way (sent, waiting for a receipt) at once; the rest wait in
   * the outbox. A burst of thousands then costs the network no more than this window, and a slow
   * path does not turn into a storm of resends.
   */
  maxInFlight: number
}

export const DEFAULT_TIMING: ChatTiming = {
  receiptTimeoutMs: 15_000,
  maxAttempts: 4,
  messageTtlMs: 7 * 24 * 3600_000,
  retryIntervalMs: 30_000,
  announceIntervalMs: 30_000,
  recordCacheMs: 60_000,
  maxInFlight: 32
}

/** A resend looks the recipient up again only if its record is older than this (one lookup serves all). */
const RESEND_RECORD_MAX_AGE_MS = 10_000

export interface ChatNodeOptions {
  dataDir: string
  nick: string
  relay?: boolean
  listen?: string[]
  bootstrap?: string[]
  /** Multiaddr prefixes exempt from libp2p's inbound connection rate limit (loopback tests, demo). */
  allow?: string[]
  timing?: Partial<ChatTiming>
  /** Already loaded identity (otherwise loaded from dataDir). */
  identity?: Identity
}

export type ChatEvent =
  | { type: 'status', stage: 'listening' | 'connecting' | 'publishing' | 'relays' | 'ready', detail: string }
  | { type: 'sent', id: string, to: string, attempt: number, path: string[] }
  | { type: 'queued', id: string, to: string, reason: string }
  | { type: 'delivered', id: string, to: string }
  | { type: 'failed', id: string, to: string, reason: string }
  | { type: 'message', id: string, from: string, fingerprint: string, verified: boolean, reason: string | null, text: string, ts: number }
  | { type: 'key-changed', nick: string, pinned: string, seen: string }
  | { type: 'hop', from: string, to: string, size: number }
  | { type: 'warning', message: string }

export interface WhoisResult {
  nick: string
  found: boolean
  peerId?: string
  fingerprint?: string
  /** How the key found compares with our pin for that nick. */
  pin?: 'new' | 'same' | 'changed'
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

function hex (b: Uint8Array): string { return Buffer.from(b).toString('hex') }

class StoreSurbKeeper implements SurbKeeper {
  private readonly store: ChatStore
  private readonly messageFor = new Map<string, string>()
  constructor (store: ChatStore) { this.store = store }
  /** Which message the next SURB belongs to (set just before createReplyBlock). */
  current = ''
  put (id: Uint8Array, secret: Parameters<SurbKeeper['put']>[1], expires: number): void {
    this.store.putSurb({ id, messageId: this.current, secret: surbSecretToBytes(secret), expiresAt: expires })
  }

  take (id: Uint8Array): ReturnType<SurbKeeper['take']> {
    const rec = this.store.takeSurb(id)
    if (rec == null) return undefined
    this.messageFor.set(hex(id), rec.messageId)
    return surbSecretFromBytes(rec.secret)
  }

  /** The message a just-opened SURB belonged to. */
  messageOf (surbId: Uint8Array): string | undefined {
    const key = hex(surbId)
    const id = this.messageFor.get(key)
    this.messageFor.delete(key)
    return id
  }
}

export class ChatNode {
  readonly nick: string
  readonly identity: Identity
  readonly node: P2PNode
  readonly directory: Directory
  readonly router: OnionRouter
  readonly store: ChatStore
  readonly timing: ChatTiming
  private readonly surbKeeper: StoreSurbKeeper
  private readonly listeners = new Set<(e: ChatEvent) => void>()
  private readonly log = logger('p2pchat:chat')
  private readonly bootstrapAddrs: string[]
  private readonly pending = new Map<string, { timer?: ReturnType<typeof setTimeout>, relaysUsed: Set<string>, attempts: number, inFlight: boolean }>()
  private readonly recordCache = new Map<string, { record: SignedRecord, at: number }>()
  /** Lookups under way, one per nick, shared by every caller that needs that record now. */
  private readonly lookups = new Map<string, Promise<SignedRecord>>()
  /** Outbox messages waiting for a place in the in-flight window, in order. */
  private readonly waiting = new Set<string>()
  private retryTimer: ReturnType<typeof setInterval> | undefined
  private stopping: Promise<void> | undefined
  private started = false

  private constructor (opts: ChatNodeOptions, identity: Identity, node: P2PNode, store: ChatStore) {
    this.nick = opts.nick
    this.identity = identity
    this.node = node
    this.bootstrapAddrs = opts.bootstrap ?? []
    this.store = store
    this.timing = { ...DEFAULT_TIMING, ...opts.timing }
    this.directory = new Directory({ peerId: node.peerId, dht: node.services.dht, contentRouting: node.contentRouting }, {
      signer: identity.signer,
      onionKey: identity.onionPublic,
      addrs: () => node.getMultiaddrs().map(a => a.toString())
    })
    this.surbKeeper = new StoreSurbKeeper(store)
    this.router = new OnionRouter(node, {
      directory: this.directory,
      onionPrivate: identity.onionPrivate,
      onionPublic: identity.onionPublic,
      relay: opts.relay === true,
      announceIntervalMs: this.timing.announceIntervalMs,
      surbKeeper: this.surbKeeper,
      onMessage: (payload) => { this.onPayload(payload).catch(err => this.log.error('incoming message: %s', (err as Error).message)) },
      onReply: (payload, surbId) => { this.onReply(payload, surbId) },
      onBadReply: (reason) => { this.log('dropped a reply: %s', reason) },
      onEvent: (e: OnionEvent) => { if (e.type === 'forward') this.emit({ type: 'hop', from: e.from, to: e.to, size: e.size }) }
    })
  }

  /** Builds the node (keys, store, libp2p) without touching the network. */
  static async create (opts: ChatNodeOptions): Promise<ChatNode> {
    if (!validateNick(opts.nick)) throw new UserError(`invalid nick "${opts.nick}": use 1 to 32 characters of a-z, 0-9, _ and -`, 'BAD_NICK')
    const identity = opts.identity ?? await loadIdentity(opts.dataDir)
    const store = ChatStore.open(ChatStore.pathIn(opts.dataDir))
    try {
      const node = await createP2PNode({
        privateKey: identity.privateKey,
        listen: opts.listen,
        bootstrap: opts.bootstrap,
        allow: opts.allow
      })
      return new ChatNode(opts, identity, node, store)
    } catch (err) {
      store.close()
      throw err
    }
  }

  on (listener: (e: ChatEvent) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  private emit (e: ChatEvent): void {
    for (const l of this.listeners) {
      try { l(e) } catch (err) { this.log.error('listener failed: %s', (err as Error).message) }
    }
  }

  get peerId (): string { return this.node.peerId.toString() }
  get fingerprint (): string { return this.identity.fingerprint }
  get isRelay (): boolean { return this.router.isRelay }
  addrs (): string[] { return this.node.getMultiaddrs().map(a => a.toString()) }

  /**
   * Joins the network: waits for a DHT neighbour (when bootstrap peers are given), announces the
   * relay, publishes the nick while it finds relays, then resumes the outbox.
   */
  async start (options: { signal?: AbortSignal, connectTimeoutMs?: number } = {}): Promise<void> {
    if (this.started) return
    this.started = true
    this.emit({ type: 'status', stage: 'listening', detail: this.addrs().join(' ') })
    await this.router.start()
    this.emit({ type: 'status', stage: 'connecting', detail: 'joining the DHT through the bootstrap nodes' })
    if (!await joinDht(this.node, this.bootstrapAddrs, { timeoutMs: options.connectTimeoutMs ?? 30_000, signal: options.signal })) {
      throw new UserError('could not join the network: no DHT peer answered (check --bootstrap)', 'NO_PEERS')
    }
    if (this.router.isRelay) {
      this.emit({ type: 'status', stage: 'publishing', detail: 'announcing this relay' })
      await this.router.announce(options)
    }
    // the name and the relays are independent DHT work: look for relays while the name is published
    const discovery = this.router.discoverRelays(options).catch((err: Error) => { this.log('relay discovery: %s', err.message) })
    this.emit({ type: 'status', stage: 'publishing', detail: `publishing the name "${this.nick}"` })
    await this.directory.publishName(this.nick, options)
    this.directory.republish(`name ${this.nick}`, async () => await this.directory.publishName(this.nick))
    this.emit({ type: 'status', stage: 'relays', detail: 'looking for relays' })
    await discovery
    this.retryTimer = setInterval(() => { this.retryOutbox() }, this.timing.retryIntervalMs)
    this.retryTimer.unref()
    this.emit({ type: 'status', stage: 'ready', detail: `${this.router.relays.size} relays known` })
    this.retryOutbox()
  }

  async stop (): Promise<void> {
    this.stopping ??= (async () => {
      clearInterval(this.retryTimer)
      for (const p of this.pending.values()) clearTimeout(p.timer)
      this.pending.clear()
      this.waiting.clear()
      this.directory.stop()
      await this.router.stop().catch(() => {})
      await this.node.stop()
      this.store.close()
    })()
    await this.stopping
  }

  /**
   * Stores a message in the outbox and starts delivering it. Resolves once it is stored (its id);
   * delivery is reported by 'sent', 'delivered' and 'failed' events.
   */
  send (address: string, text: string): { id: string, to: string } {
    const { nick, fingerprint: fp } = parseAddress(address)
    if (text.length === 0) throw new UserError('empty message', 'EMPTY')
    if (Buffer.byteLength(text, 'utf8') > MAX_TEXT_BYTES) throw new UserError(`message too long: at most ${MAX_TEXT_BYTES} bytes of UTF-8`, 'TOO_LONG')
    if (text.includes('\0')) throw new UserError('message contains a NUL character', 'BAD_TEXT')
    const id = hex(randomBytes(16))
    const now = Date.now()
    this.store.addOutgoing({ id, peerNick: nick, peerFingerprint: fp ?? '', text, timestamp: now, expiresAt: now + this.timing.messageTtlMs }, now)
    this.launch(id)
    return { id, to: nick }
  }

  private retryOutbox (): void {
    if (this.stopping != null) return
    const now = Date.now()
    for (const m of this.store.outbox(now)) {
      if (!this.pending.has(m.id)) this.launch(m.id)
    }
    for (const m of this.expireOutbox(now)) this.emit({ type: 'failed', id: m.id, to: m.peerNick, reason: 'expired' })
    this.store.expireSurbs(now)
  }

  private expireOutbox (now: number): StoredMessage[] {
    const expiring = this.store.outbox(0).filter(m => m.expiresAt != null && m.expiresAt <= now)
    this.store.expireOutgoing(now)
    return expiring
  }

  /** Starts a delivery attempt now, or queues it until the in-flight window has room. */
  private launch (id: string): void {
    if (this.stopping != null || this.waiting.has(id)) return
    if (this.pending.size >= this.timing.maxInFlight) {
      this.waiting.add(id)
      return
    }
    this.attempt(id).catch(err => {
      // the message stays in the outbox for the retry timer; its window slot is freed now
      this.log.error('sending %s: %s', id, (err as Error).message)
      this.settle(id)
    })
  }

  /** A message left the window (delivered, failed, or back in the outbox): let waiting ones in. */
  private settle (id: string): void {
    this.pending.delete(id)
    for (const next of this.waiting) {
      if (this.pending.size >= this.timing.maxInFlight) break
      this.waiting.delete(next)
      this.launch(next)
    }
  }

  /** A directory record no older than `maxAgeMs`, with one lookup per nick at a time. */
  private async lookup (nick: string, maxAgeMs = this.timing.recordCacheMs): Promise<SignedRecord> {
    const cached = this.recordCache.get(nick)
    if (cached != null && Date.now() - cached.at < maxAgeMs && cached.record.expiry > Date.now()) return cached.record
    let running = this.lookups.get(nick)
    if (running == null) {
      running = this.directory.lookupName(nick)
        .then(record => {
          this.recordCache.set(nick, { record, at: Date.now() })
          return record
        })
        .finally(() => this.lookups.delete(nick))
      this.lookups.set(nick, running)
    }
    return await running
  }

  /** One delivery attempt for an outbox message; schedules the next on no receipt. */
  private async attempt (id: string): Promise<void> {
    const msg = this.store.get(id)
    if (msg == null || msg.direction !== 'out' || (msg.state !== 'queued' && msg.state !== 'sent')) return
    let p = this.pending.get(id)
    if (p == null) {
      p = { relaysUsed: new Set(), attempts: msg.attempts, inFlight: false }
      this.pending.set(id, p)
    }
    if (p.inFlight) return
    p.inFlight = true
    clearTimeout(p.timer)
    const queue = (reason: string): void => {
      this.settle(id)
      this.emit({ type: 'queued', id, to: msg.peerNick, reason })
    }
    try {
      let record: SignedRecord
      try {
        record = await this.lookup(msg.peerNick, p.attempts > 0 ? RESEND_RECORD_MAX_AGE_MS : this.timing.recordCacheMs)
      } catch (err) {
        queue((err as Error).name === 'NameNotFoundError' ? 'recipient not in the directory (offline?); will retry' : (err as Error).message)
        return
      }
      const seen = fingerprint(record.identityKey)
      if (msg.peerFingerprint !== '' && msg.peerFingerprint !== seen) {
        this.store.markFailed(id, 'fingerprint-mismatch')
        this.settle(id)
        this.emit({ type: 'failed', id, to: msg.peerNick, reason: `${msg.peerNick} now has fingerprint ${seen}, not ${msg.peerFingerprint}` })
        return
      }
      const pin = this.checkPin(msg.peerNick, record.identityKey)
      if (pin === 'changed') {
        queue(`the key of ${msg.peerNick} changed; /verify and accept it before messages are sent`)
        return
      }
      if (this.stopping != null) return
      let block
      this.surbKeeper.current = id
      try {
        block = this.router.createReplyBlock({ exclude: [record.peerId], ttlMs: this.timing.receiptTimeoutMs * (this.timing.maxAttempts + 1) })
      } catch (err) {
        if (err instanceof NotEnoughRelaysError) {
          await this.router.discoverRelays().catch(() => 0)
          queue(err.message)
          return
        }
        throw err
      }
      const message = createMessage({
        id: Buffer.from(id, 'hex'),
        senderNick: this.nick,
        senderIdentityKey: this.identity.identityKey,
        timestamp: msg.timestamp,
        text: msg.text,
        replyBlock: block.surb
      })
      // the onion payload is the sealed envelope (chat/FORMAT.md), addressed to the record's identity key
      const envelope = sealMessage(message, this.identity.signer, { identityKey: record.identityKey, onionKey: record.onionKeys[0].key, epoch: record.onionKeys[0].epoch })
      const avoid = [...p.relaysUsed]
      let sent
      try {
        sent = this.router.send({ peerId: record.peerId, onionKey: record.onionKeys[0].key }, envelope, { exclude: avoid })
      } catch (err) {
        if (!(err instanceof NotEnoughRelaysError)) throw err
        sent = this.router.send({ peerId: record.peerId, onionKey: record.onionKeys[0].key }, envelope)
      }
      for (const r of sent.path) p.relaysUsed.add(r)
      p.attempts++
      this.store.markSent(id)
      this.emit({ type: 'sent', id, to: msg.peerNick, attempt: p.attempts, path: sent.path })
      p.timer = setTimeout(() => { this.onReceiptTimeout(id) }, this.timing.receiptTimeoutMs)
      p.timer.unref()
    } finally {
      p.inFlight = false
    }
  }

  private onReceiptTimeout (id: string): void {
    const p = this.pending.get(id)
    const msg = this.store.get(id)
    if (p == null || msg == null || msg.state === 'delivered') return
    if (p.attempts >= this.timing.maxAttempts) {
      this.store.markFailed(id, 'no-receipt')
      this.settle(id)
      this.emit({ type: 'failed', id, to: msg.peerNick, reason: `no receipt after ${p.attempts} attempts` })
      return
    }
    this.attempt(id).catch(err => {
      this.log.error('resending %s: %s', id, (err as Error).message)
      this.settle(id)
    })
  }

  /** Pins on first sight; says whether a key matches the pin (an unaccepted pending key counts as changed). */
  private checkPin (nick: string, key: Uint8Array): 'new' | 'same' | 'changed' {
    const result = this.store.pin(nick, key)
    if (result === 'changed') {
      const pin = this.store.getPin(nick)
      this.emit({ type: 'key-changed', nick, pinned: pin?.fingerprint ?? '', seen: fingerprint(key) })
    }
    if (result === 'same') {
      const pin = this.store.getPin(nick)
      if (pin != null && !Buffer.from(pin.identityKey).equals(Buffer.from(key))) return 'changed'
    }
    return result
  }

  private async onPayload (payload: Uint8Array): Promise<void> {
    // our name record publishes the one onion key under epoch 0 (Directory.publishName); a receipt here is `type`
    const opened = openMessage(payload, (epoch) => epoch === 0 ? this.identity.onionPrivate : undefined, this.identity.identityKey)
    if (!opened.ok) { this.log('dropped a message that did not open: %s', opened.reason); return }
    const m = opened.message
    const id = hex(m.id)
    const fp = fingerprint(m.senderIdentityKey)
    let verified = opened.signatureValid
    let reason: string | null = verified ? null : 'bad signature'
    if (verified) {
      try {
        const record = await this.lookup(m.senderNick)
        if (!Buffer.from(record.identityKey).equals(Buffer.from(m.senderIdentityKey))) {
          verified = false
          reason = `the directory's key for ${m.senderNick} is ${fingerprint(record.identityKey)}, not this sender's`
        }
      } catch (err) {
        verified = false
        reason = `${m.senderNick} is not in the directory (${(err as Error).name})`
      }
    }
    if (verified && this.checkPin(m.senderNick, m.senderIdentityKey) === 'changed') {
      verified = false
      reason = `key changed: ${m.senderNick} was pinned to ${this.store.getPin(m.senderNick)?.fingerprint ?? '?'}`
    }
    const fresh = this.store.addIncoming({ id, peerNick: m.senderNick, peerFingerprint: fp, text: m.text, timestamp: m.timestamp, verified, verifyReason: reason })
    if (m.replyBlock.length > 0 && opened.signatureValid) {
      try {
        // the fast path: the receipt envelope unsealed, inside the reply block's own end-to-end payload encryption
        const receipt = createReceipt([m.id], this.identity.signer, m.senderIdentityKey)
        this.router.reply(m.replyBlock, encodeEnvelope({ type: 'receipt', receipt }))
      } catch (err) {
        this.log('could not send a receipt for %s: %s', id, (err as Error).message)
      }
    }
    if (fresh) this.emit({ type: 'message', id, from: m.senderNick, fingerprint: fp, verified, reason, text: m.text, ts: m.timestamp })
  }

  private onReply (payload: Uint8Array, surbId: Uint8Array): void {
    const messageId = this.surbKeeper.messageOf(surbId)
    const env = decodeEnvelope(payload, this.identity.identityKey)
    if (messageId == null || !env.ok || env.type !== 'receipt') { this.log('dropped a reply that is not a receipt'); return }
    const receipt = env.receipt
    if (!receipt.messageIds.some(x => hex(x) === messageId)) { this.log('dropped a receipt for another message'); return }
    const msg = this.store.get(messageId)
    if (msg == null) return
    const pin = this.store.getPin(msg.peerNick)
    if (pin == null || !verifyReceipt(receipt, pin.identityKey, this.identity.identityKey)) { this.log('dropped a receipt that does not verify'); return }
    const p = this.pending.get(messageId)
    clearTimeout(p?.timer)
    this.settle(messageId)
    if (this.store.markDelivered(messageId)) this.emit({ type: 'delivered', id: messageId, to: msg.peerNick })
  }

  /** Looks a nick up in the directory and compares it with the pin. */
  async whois (address: string): Promise<WhoisResult> {
    const { nick } = parseAddress(address)
    try {
      const record = await this.lookup(nick, 0)
      const pin = this.store.getPin(nick)
      const fp = fingerprint(record.identityKey)
      return { nick, found: true, peerId: record.peerId, fingerprint: fp, pin: pin == null ? 'new' : pin.fingerprint === fp ? 'same' : 'changed' }
    } catch (err) {
      if ((err as Error).name === 'NameNotFoundError') return { nick, found: false }
      throw err
    }
  }

  contacts (): Pin[] { return this.store.contacts() }
  history (nick: string, limit = 50): StoredMessage[] { return this.store.history(parseAddress(nick).nick, limit) }
  acceptKey (nick: string): boolean {
    const ok = this.store.acceptKey(parseAddress(nick).nick)
    if (ok) this.retryOutbox()
    return ok
  }

  relays (): Array<{ peerId: string, lastSeen: number, expiry: number }> {
    return this.router.relays.list().map(r => ({ peerId: r.record.peerId, lastSeen: r.lastSeen, expiry: r.record.expiry }))
  }
}
