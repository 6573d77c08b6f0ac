/**
 * RelayNode: a volunteer relay of protocol version 2 (`p2pchat start --relay`). Public by design: a
 * stable transport key (`transport.key`), listening addresses in its signed descriptor, a DHT server.
 * It composes, each in its own module with its own limits:
 *
 * - the mix (protocols/onion/relay.ts): peels one Sphinx layer with its hourly epoch keys, drops
 *   replays, forwards only to relays it knows (RELAY), hands CLIENT layers to its client links;
 * - client links (protocols/onion/client-link.ts): the users that chose it as their entry relay; it
 *   takes their packets (SUBMIT) and hands them theirs, and never dials a user;
 * - services for SERVICE layers (protocols/onion/relay-services.ts): mailboxes (protocols/mailbox/),
 *   persisted in `mailbox.db`; the directory exit (protocols/directory/exit.ts), which runs DHT
 *   requests for users so that DHT nodes only ever see relays ask;
 * - the relay list a newcomer asks for (protocols/directory/relay-list.ts) and the descriptor it
 *   publishes to the DHT and gossips on `p2pchat/relays/2`.
 *
 * Events name relays only: a client appears as `client`, never by its peer id, and nothing here knows
 * a nick. Per-hop events are emitted only with `logHops` (the demo).
 */
import { logger } from '@libp2p/logger'
import { peerIdFromPublicKey } from '@libp2p/peer-id'
import { publicKeyFromRaw } from '@libp2p/crypto/keys'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { Message } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'
import { createP2PNode, joinDht } from './create.ts'
import type { P2PNode } from './create.ts'
import { loadTransportKey } from './identity.ts'
import { UserError } from './errors.ts'
import { RelayAttester } from './admission.ts'
import { RELAY_LOOP_DELAY_MS, RelayCover } from './relay-cover.ts'
import { existsSync, readFileSync } from 'node:fs'
import { checkSecretFile, writeNewSecretFile } from './datadir.ts'
import { ed25519SignerFromSeed, generateEd25519Seed } from '../protocols/crypto/keys.ts'
import type { Signer } from '../protocols/crypto/keys.ts'
import { Directory } from '../protocols/directory/index.ts'
import type { SignedRecord } from '../protocols/directory/index.ts'
import { DirectoryExit } from '../protocols/directory/exit.ts'
import { familyExtension } from '../protocols/directory/family.ts'
import { RelayListService } from '../protocols/directory/relay-list.ts'
import { MailboxService } from '../protocols/mailbox/service.ts'
import type { MailboxServiceLimits } from '../protocols/mailbox/service.ts'
import { MailboxStore } from '../protocols/mailbox/store.ts'
import { ClientLinkServer, transportKeyOf } from '../protocols/onion/client-link.ts'
import { OnionKeyRing } from '../protocols/onion/keyring.ts'
import type { KeyRingInit } from '../protocols/onion/keyring.ts'
import { OnionService } from '../protocols/onion/relay.ts'
import type { OnionEvent, OnionServiceInit } from '../protocols/onion/relay.ts'
import { DEFAULT_ANNOUNCE_INTERVAL_MS, RELAY_TOPIC, RelayDirectory } from '../protocols/onion/relay-directory.ts'
import { answeringService, ServiceDispatcher } from '../protocols/onion/relay-services.ts'
import { SERVICE_DIRECTORY, SERVICE_MAILBOX } from '../protocols/onion/service-body.ts'
import { packetFromSurb } from '../protocols/onion/sphinx.ts'
import { checkReachability, DialbackService, NoDialbackHelperError, recruitHelpers } from '../protocols/reachability/dialback.ts'
import type { ReachabilityReport } from '../protocols/reachability/dialback.ts'

/** A descriptor's gossip verdict (RelayDirectory.gossipVerdict): a stale copy is ignored, a forged one rejected. */
const gossipResult = { accept: TopicValidatorResult.Accept, ignore: TopicValidatorResult.Ignore, reject: TopicValidatorResult.Reject } as const

export interface RelayNodeOptions {
  dataDir: string
  listen?: string[]
  bootstrap?: string[]
  allow?: string[]
  announceIntervalMs?: number
  keyRing?: KeyRingInit
  mailbox?: Partial<MailboxServiceLimits>
  limits?: Pick<OnionServiceInit, 'packetsPerSecond' | 'burst' | 'queueLength' | 'dialTimeoutMs' | 'sphinxThreads' | 'sphinxQueue'>
  /** Emit a 'hop' event per forwarded packet (the demo shows them); relays only, clients as 'client'. */
  logHops?: boolean
  /**
   * Instrumentation (tests, benches): every event of the mix (protocols/onion/relay.ts OnionEvent), which
   * never holds more than the relay itself learns; a client's submissions come `from: 'client'`.
   */
  onOnionEvent?: (e: OnionEvent) => void
  /** The operator's family key: declared in the descriptor, so clients put one of its relays per path. */
  family?: Signer
  /**
   * Instrumentation (tests, benches: the correlation attack of issue 11): a connected client's SUBMIT,
   * and a packet handed to a connected client, each with the client's transport key: what an entry
   * relay itself knows of its clients (this run's transport key, never a nick or identity key).
   */
  onClientEvent?: (e: { type: 'submit' | 'deliver', client: Uint8Array }) => void
  /** Addresses to announce instead of the listen addresses (behind a port forward: `--announce`). */
  announce?: string[]
  /**
   * Before announcing itself, have connected relays and bootstrap nodes in other networks dial its
   * addresses back (protocols/reachability/dialback.ts); refuse to start (RelayUnreachableError) when
   * none is confirmed, and put only confirmed addresses in the descriptor. `p2pchat start --relay`
   * always checks; in-process networks on one machine (the demo, tests) may leave it off.
   */
  checkReachability?: boolean
  /**
   * Attest the other relays (node/admission.ts: reach them, probe them, sign what was seen into the
   * descriptor); default true. Only instrumented tests of client paths turn it off: a relay's own loop
   * probes are traffic that no client's path explains.
   */
  attest?: boolean
  /**
   * This relay's own loop cover (node/relay-cover.ts), loops a minute; 0 or absent: off (a network at
   * `fast`, tests that count packets).
   */
  loopCoverPerMinute?: number
}

/** No address of this relay could be confirmed reachable from outside: it does not announce itself. */
export class RelayUnreachableError extends UserError {
  readonly report: ReachabilityReport | undefined
  constructor (message: string, report?: ReachabilityReport) {
    super(message, 'UNREACHABLE')
    this.name = 'RelayUnreachableError'
    this.report = report
  }
}

export type RelayEvent =
  | { type: 'status', stage: 'listening' | 'connecting' | 'checking' | 'publishing' | 'ready', detail: string }
  | { type: 'hop', from: string, to: string, size: number }
  /** A SERVICE layer arrived (with logHops): which service, from which relay. */
  | { type: 'service', service: 'mailbox' | 'directory' | 'drop' | 'other', from: string }

export class RelayNode {
  readonly node: P2PNode
  readonly directory: Directory
  readonly relays: RelayDirectory
  readonly keyRing: OnionKeyRing
  readonly onion: OnionService
  readonly clients: ClientLinkServer
  readonly mailboxes: MailboxService
  readonly exit: DirectoryExit
  readonly services: ServiceDispatcher
  readonly relayList: RelayListService
  readonly dialback: DialbackService
  /** This relay's own loop cover (node/relay-cover.ts); off unless `loopCoverPerMinute` > 0. */
  readonly loopCover: RelayCover
  /** What this relay attests about the others (node/admission.ts), carried in its descriptor. */
  readonly attester: RelayAttester
  /** The dial-back check's outcome (with checkReachability). */
  reachability: ReachabilityReport | undefined
  private readonly store: MailboxStore
  private readonly opts: RelayNodeOptions
  private readonly listeners = new Set<(e: RelayEvent) => void>()
  private readonly log = logger('p2pchat:relay')
  private descriptor: SignedRecord | undefined
  private readonly lookingUp = new Set<string>()
  private announceTimer: ReturnType<typeof setInterval> | undefined
  private readonly stopSignal = new AbortController()
  private stopping: Promise<void> | undefined
  private readonly validateGossip = (_peer: PeerId, msg: Message): TopicValidatorResult =>
    gossipResult[this.relays.gossipVerdict(msg.data)]

  private constructor (opts: RelayNodeOptions, node: P2PNode, signer: ReturnType<typeof ed25519SignerFromSeed>, store: MailboxStore) {
    this.opts = opts
    this.node = node
    this.store = store
    this.relays = new RelayDirectory({ announceIntervalMs: opts.announceIntervalMs })
    this.keyRing = new OnionKeyRing(opts.keyRing)
    this.directory = new Directory({ peerId: node.peerId, dht: node.services.dht, contentRouting: node.contentRouting }, {
      signer,
      onionKey: this.keyRing.current.publicKey,
      addrs: () => this.reachability?.verified ?? node.getMultiaddrs().map(a => a.toString()),
      // the operator's family (protocols/directory/family.ts), certified once for this relay's key, and
      // the attestations about the other relays (node/admission.ts), fewer on each oversize attempt
      extensions: ((family) => (attempt: number) => [...family, ...(opts.attest === false ? [] : [this.attester.extension(attempt)])])(opts.family == null ? [] : [familyExtension(opts.family, signer.publicKey)])
    })
    const self = node.peerId.toString()
    const sendThroughReplyBlock = (block: Uint8Array, payload: Uint8Array): void => {
      const { firstHop, packet } = packetFromSurb(block, payload)
      this.onion.send(firstHop, packet)
    }
    this.clients = new ClientLinkServer(node, {
      onSubmit: (address, packet, client) => {
        opts.onClientEvent?.({ type: 'submit', client })
        this.onion.submit(address, packet, 'client')
      }
    })
    this.onion = new OnionService(node, {
      keyRing: this.keyRing,
      ...opts.limits,
      isKnownRelay: (peer) => this.knows(peer),
      onClient: (next, packet, from) => {
        // the packet goes to the client only over the link the client opened; a client is never dialled
        if (!this.clients.deliver(next, packet)) return
        opts.onClientEvent?.({ type: 'deliver', client: next })
        if (opts.logHops === true) this.emit({ type: 'hop', from: this.relays.has(from) ? from : 'client', to: 'client', size: packet.length })
      },
      onDeliver: (res, from) => {
        if (res.command !== 'service') return
        // one of this relay's loop probes back (node/admission.ts): nothing for the services
        if (this.attester.delivered(res.id) || this.loopCover.delivered(res.id)) return
        if (opts.logHops === true) {
          const service = res.payload[0] === SERVICE_MAILBOX ? 'mailbox' : res.payload[0] === SERVICE_DIRECTORY ? 'directory' : res.payload[0] === 0x03 ? 'drop' : 'other'
          this.emit({ type: 'service', service, from: this.relays.has(from) || from === self ? from : 'client' })
        }
        this.services.handle(res.payload)
        // a REPLY to this relay: it makes no reply blocks of its own yet (loop cover is the mixing issue's)
      },
      onEvent: opts.logHops === true || opts.onOnionEvent != null
        ? (e) => {
            opts.onOnionEvent?.(e)
            if (opts.logHops === true && e.type === 'forward') this.emit({ type: 'hop', from: this.relays.has(e.from) || e.from === self ? e.from : 'client', to: e.to, size: e.size })
          }
        : undefined
    })
    this.mailboxes = new MailboxService({
      store,
      sendThroughReplyBlock,
      onRecord: (_id, record) => {
        this.directory.publishSignedName(record, { signal: AbortSignal.any([this.stopSignal.signal, AbortSignal.timeout(60_000)]) })
          .catch((err: Error) => { this.log('republishing a mailbox owner\'s record: %s', err.name) })
      },
      limits: opts.mailbox
    })
    this.exit = new DirectoryExit({
      directory: this.directory,
      relayDescriptors: () => this.relays.list().map(r => r.record.bytes)
    })
    this.relayList = new RelayListService(node, { descriptors: () => this.relays.list().map(r => r.record.bytes) })
    this.dialback = new DialbackService(node)
    this.attester = new RelayAttester({
      node,
      dataDir: opts.dataDir,
      selfPeerId: self,
      self: () => ({ address: signer.publicKey, onionKey: this.keyRing.current.publicKey }),
      send: (firstHop, packet) => { this.onion.send(firstHop, packet) },
      relays: () => this.relays.list(),
      announceIntervalMs: opts.announceIntervalMs ?? DEFAULT_ANNOUNCE_INTERVAL_MS
    })
    this.loopCover = new RelayCover({
      perMinute: opts.loopCoverPerMinute ?? 0,
      meanDelayMs: RELAY_LOOP_DELAY_MS,
      selfPeerId: self,
      self: () => ({ address: signer.publicKey, onionKey: this.keyRing.current.publicKey, addrs: this.node.getMultiaddrs().map(a => a.toString()) }),
      send: (firstHop, packet) => { this.onion.send(firstHop, packet) },
      relays: () => this.relays.list()
    })
    this.services = new ServiceDispatcher({
      services: new Map([
        [SERVICE_MAILBOX, this.mailboxes],
        [SERVICE_DIRECTORY, answeringService(SERVICE_DIRECTORY, async (request) => await this.exit.handle(request, this.stopSignal.signal), sendThroughReplyBlock,
          (err) => { this.log('answering a directory request: %s', err.message) })]
      ])
    })
  }

  static async create (opts: RelayNodeOptions): Promise<RelayNode> {
    const transport = await loadTransportKey(opts.dataDir)
    const signer = ed25519SignerFromSeed(transport.privateKey.raw.subarray(0, 32))
    const store = MailboxStore.open(MailboxStore.pathIn(opts.dataDir))
    try {
      const node = await createP2PNode({ privateKey: transport.privateKey, listen: opts.listen, bootstrap: opts.bootstrap, allow: opts.allow, dhtServer: true, announce: opts.announce })
      return new RelayNode(opts, node, signer, store)
    } catch (err) {
      store.close()
      throw err
    }
  }

  on (listener: (e: RelayEvent) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  private emit (e: RelayEvent): void {
    for (const l of this.listeners) {
      try { l(e) } catch (err) { this.log.error('listener failed: %s', (err as Error).message) }
    }
  }

  get peerId (): string { return this.node.peerId.toString() }
  addrs (): string[] { return this.node.getMultiaddrs().map(a => a.toString()) }

  /**
   * Is `peer` a relay we hold a live descriptor of? A relay we have not heard of yet is looked up in the
   * DHT in the background (so the next packet to it passes); this packet is dropped as unknown-relay.
   */
  private knows (peer: PeerId): boolean {
    const id = peer.toString()
    if (this.relays.has(id)) return true
    if (!this.lookingUp.has(id) && this.lookingUp.size < 64) {
      this.lookingUp.add(id)
      this.directory.lookupRelay(id, { signal: AbortSignal.any([this.stopSignal.signal, AbortSignal.timeout(10_000)]) })
        .then(rec => { if (rec != null) this.relays.add(rec.bytes) })
        .catch(() => {})
        .finally(() => this.lookingUp.delete(id))
    }
    return false
  }

  /** Joins the DHT, starts every service, publishes and gossips the descriptor. */
  async start (options: { signal?: AbortSignal, connectTimeoutMs?: number } = {}): Promise<void> {
    this.emit({ type: 'status', stage: 'listening', detail: this.addrs().join(' ') })
    await this.onion.start()
    await this.clients.start()
    await this.relayList.start()
    await this.dialback.start()
    const pubsub = this.node.services.pubsub
    pubsub.topicValidators.set(RELAY_TOPIC, this.validateGossip)
    pubsub.subscribe(RELAY_TOPIC)
    this.emit({ type: 'status', stage: 'connecting', detail: 'joining the DHT through the bootstrap nodes' })
    if ((this.opts.bootstrap ?? []).length > 0 &&
      !await joinDht(this.node, this.opts.bootstrap ?? [], { timeoutMs: options.connectTimeoutMs ?? 30_000, signal: options.signal })) {
      throw new UserError('could not join the network: no DHT peer answered (check --bootstrap)', 'NO_PEERS')
    }
    if (this.opts.checkReachability === true) await this.checkReachable(options.signal)
    this.emit({ type: 'status', stage: 'publishing', detail: 'announcing this relay' })
    await this.announce(options)
    // after joining: the mailbox service's first sweep republishes the records of the mailboxes held
    this.mailboxes.start()
    this.loopCover.start()
    // the relays already out there: from the DHT's provider records (gossip brings the rest)
    this.directory.findRelays({ signal: AbortSignal.any([this.stopSignal.signal, AbortSignal.timeout(30_000)]) })
      .then(found => { for (const r of found) this.relays.add(r.bytes) })
      .catch((err: Error) => { this.log('finding relays: %s', err.message) })
    this.keyRing.onRotate = () => { this.announce().catch(err => { this.log.error('announce after rotation failed: %s', (err as Error).message) }) }
    this.announceTimer = setInterval(() => {
      this.keyRing.tick()
      if (this.opts.attest !== false) this.attester.tick()
      // changed attestations: a new descriptor for gossip (the DHT copy waits for the next announce)
      if (this.attester.dirty && this.descriptor != null) {
        try {
          this.descriptor = this.directory.resignRelay(this.keyRing.descriptorKeys())
          this.relays.add(this.descriptor.bytes)
        } catch (err) {
          this.log.error('re-signing the descriptor failed: %s', (err as Error).message)
        }
      }
      this.gossip().catch(() => {})
    }, this.opts.announceIntervalMs ?? DEFAULT_ANNOUNCE_INTERVAL_MS)
    this.announceTimer.unref()
    this.emit({ type: 'status', stage: 'ready', detail: `${this.relays.size} relays known` })
  }

  /** The dial-back check (see checkReachability in RelayNodeOptions); throws RelayUnreachableError. */
  private async checkReachable (signal?: AbortSignal): Promise<void> {
    const addrs = this.node.getMultiaddrs()
    this.emit({ type: 'status', stage: 'checking', detail: `asking peers in other networks to dial ${addrs.length} address${addrs.length === 1 ? '' : 'es'} back` })
    let report: ReachabilityReport
    try {
      // helpers: relays in the relay lists and, for relays starting together, the DHT servers nearest this relay's id
      const node = this.node
      await recruitHelpers(node, AbortSignal.any([this.stopSignal.signal, ...(signal == null ? [] : [signal])]), {
        candidates: async function * (s) {
          for await (const p of node.peerRouting.getClosestPeers(node.peerId.toMultihash().bytes, { signal: s })) yield { peerId: p.id.toString(), addrs: p.multiaddrs.map(a => a.toString()) }
        }
      })
      report = await checkReachability(this.node, addrs, { signal })
    } catch (err) {
      if (err instanceof NoDialbackHelperError) throw new RelayUnreachableError('cannot check that this relay is reachable: no relay or bootstrap node answered a dial-back request; it will not announce itself (check --bootstrap)')
      throw err
    }
    this.reachability = report
    if (report.verified.length > 0) {
      const confirmedBy = Math.min(...report.addrs.filter(v => report.verified.includes(v.addr)).map(v => v.confirmedBy.length))
      this.emit({ type: 'status', stage: 'checking', detail: `reachable: ${report.verified.length} of ${addrs.length} addresses confirmed by peers in ${confirmedBy} network${confirmedBy === 1 ? '' : 's'} (of ${report.groups} asked, ${report.required} required)` })
      return
    }
    const why = report.addrs.map(v => {
      const reasons = [...v.failedBy.map(() => 'dial failed'), ...v.refused.map(r => r.status)]
      return `${v.addr.replace(/\/p2p\/.*$/, '')}: ${reasons.length === 0 ? 'not confirmed' : [...new Set(reasons)].join(', ')}`
    }).join('; ')
    const seen = report.observed.map(a => a.replace(/\/p2p\/.*$/, '')).join(', ')
    const port = /\/tcp\/(\d+)/.exec(addrs[0]?.toString() ?? '')?.[1] ?? '<port>'
    const publicIp = /^\/ip[46]\/([^/]+)/.exec(report.observed[0] ?? '')?.[1] ?? '<public address>'
    throw new RelayUnreachableError(`this relay is not reachable from outside, so it will not announce itself: ${report.helpers} peer${report.helpers === 1 ? '' : 's'} in ${report.groups} network${report.groups === 1 ? '' : 's'} could not dial it back (${why}). ` +
      `They see this machine as ${seen === '' ? 'an unknown address' : seen}. Behind a NAT, forward TCP port ${port} on the router to this machine and pass --announce /ip4/${publicIp}/tcp/${port} (and --listen /ip4/0.0.0.0/tcp/${port}); or run the relay on a machine with a public address.`, report)
  }

  /** Publishes the descriptor (DHT and provider record) and gossips it. */
  async announce (options?: { signal?: AbortSignal }): Promise<SignedRecord> {
    const { record } = await this.directory.announceRelay(this.keyRing.descriptorKeys(), options)
    this.descriptor = record
    this.relays.add(record.bytes)
    await this.gossip()
    return record
  }

  private async gossip (): Promise<void> {
    const d = this.descriptor
    if (d == null) return
    if (d.expiry - Date.now() < 3600_000 || this.keyRing.descriptorKeys()[0].epoch !== d.onionKeys[0].epoch) {
      await this.announce()
      return
    }
    try {
      await this.node.services.pubsub.publish(RELAY_TOPIC, d.bytes)
    } catch (err) {
      this.log('gossip publish failed: %s', (err as Error).message)
    }
  }

  /** What the relay is doing, for `/status`, metrics and tests. */
  stats (): Record<string, unknown> {
    return {
      onion: this.onion.stats,
      clients: { connected: this.clients.size, ...this.clients.stats },
      mailboxes: this.mailboxes.stats(),
      exit: this.exit.stats,
      services: this.services.stats,
      attester: this.attester.stats,
      loopCover: { perMinute: this.loopCover.perMinute, ...this.loopCover.stats },
      relaysKnown: this.relays.size
    }
  }

  async stop (): Promise<void> {
    this.stopping ??= (async () => {
      this.stopSignal.abort()
      clearInterval(this.announceTimer)
      this.attester.stop()
      this.loopCover.stop()
      this.directory.stop()
      this.mailboxes.stop()
      const pubsub = this.node.services.pubsub
      pubsub.topicValidators.delete(RELAY_TOPIC)
      try { pubsub.unsubscribe(RELAY_TOPIC) } catch {}
      await this.relayList.stop().catch(() => {})
      await this.dialback.stop().catch(() => {})
      await this.clients.stop().catch(() => {})
      await this.onion.stop().catch(() => {})
      await this.node.stop()
      this.store.close()
    })()
    await this.stopping
  }
}

/** The peer id of a 32-byte transport key (for tests and logs). */
export function peerIdOfTransportKey (key: Uint8Array): string {
  return peerIdFromPublicKey(publicKeyFromRaw(key)).toString()
}

export { transportKeyOf }

/**
 * A relay operator's family key (protocols/directory/FAMILY.md) from `path` (`--family`): the JSON
 * `{"v":1,"type":"p2pchat-family-ed25519","seed":"<base64 of 32 bytes>"}`, mode 0600. A missing file is
 * created with a new key (`created`), which the operator copies to each relay it runs. Throws UserError
 * (FAMILY_KEY) for an unreadable file, and datadir.ts's errors for one other users can read.
 */
export function loadFamilyKey (path: string): { signer: Signer, created: boolean } {
  let created = false
  if (!existsSync(path)) {
    writeNewSecretFile(path, JSON.stringify({ v: 1, type: FAMILY_KEY_TYPE, seed: Buffer.from(generateEd25519Seed()).toString('base64') }) + '\n')
    created = true
  }
  checkSecretFile(path)
  let seed: Buffer
  try {
    const data = JSON.parse(readFileSync(path, 'utf8')) as { v?: unknown, type?: unknown, seed?: unknown }
    if (data.v !== 1 || data.type !== FAMILY_KEY_TYPE || typeof data.seed !== 'string') throw new Error('not a family key file of version 1')
    seed = Buffer.from(data.seed, 'base64')
    if (seed.length !== 32) throw new Error('the seed is not 32 bytes')
  } catch (err) {
    throw new UserError(`${path} is not a p2pchat family key (${(err as Error).message}); pass the file --family created on your first relay`, 'FAMILY_KEY')
  }
  return { signer: ed25519SignerFromSeed(seed), created }
}

/** The `type` of a family key file. */
export const FAMILY_KEY_TYPE = 'p2pchat-family-ed25519'
