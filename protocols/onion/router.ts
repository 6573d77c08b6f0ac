/**
 * Onion routing for one node: the `/onion-chat/1.0` service, the live relay directory, and what a
 * sender needs: build a packet over a random 3-relay path to a recipient's onion key, make a
 * single-use reply block (SURB) back to itself, and answer through a SURB it was given.
 *
 * Packets are Sphinx version 2 (SPEC.md). Until the mailbox flow of PROTOCOL-V2.md lands, the recipient
 * user is still the final hop of a message: its layer says SERVICE (the payload is for it) and a reply
 * block's last layer says REPLY; relays are reached by RELAY slots. Callers pass peer ids as strings;
 * they become 32-byte addresses here.
 *
 * With `relay: true` the node also volunteers as a relay: it rotates epoch onion keys, publishes
 * its descriptor to the DHT (and as a provider of the relay CID), and announces it on gossipsub at a
 * steady interval.
 */
import { randomBytes } from 'node:crypto'
import { logger } from '@libp2p/logger'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { GossipSub, Message } from '@libp2p/gossipsub'
import type { Libp2p, PeerId } from '@libp2p/interface'
import type { Directory } from '../directory/index.ts'
import type { SignedRecord } from '../directory/record.ts'
import { ID_LENGTH, SURB_SIZE } from './constants.ts'
import { OnionKeyRing } from './keyring.ts'
import type { KeyRingInit } from './keyring.ts'
import { OnionService } from './relay.ts'
import type { OnionEvent, OnionServiceInit } from './relay.ts'
import { DEFAULT_ANNOUNCE_INTERVAL_MS, onionKeyFor, RELAY_TOPIC, RelayDirectory } from './relay-directory.ts'
import { addressFromPeerId } from './address.ts'
import { createPacket, createSurb, onionPrivateKeyFromRaw, openReply, packetFromSurb } from './sphinx.ts'
import type { Hop, SurbSecret } from './sphinx.ts'

export const DEFAULT_PATH_LENGTH = 3
/** How long a SURB's secret is kept waiting for its reply. */
export const DEFAULT_SURB_TTL_MS = 10 * 60_000
/** At most this many SURB secrets are held in memory; the oldest go first. */
export const MAX_PENDING_SURBS = 100_000
/**
 * A reply block is built ahead, this long after one was used (off the send path), so that sending
 * a message does not wait for one (a SURB over 3 relays costs as much CPU as the message's own
 * packet). A spare older than SPARE_SURB_MAX_AGE_MS is rebuilt: its relays' keys stay valid for
 * far longer (epoch keys are accepted for a grace period after they rotate), but its path should
 * reflect the relays heard recently.
 */
export const SPARE_SURB_DELAY_MS = 100
export const SPARE_SURB_MAX_AGE_MS = 60_000

/** A reply block with its path and build time, before it is given out. */
interface BuiltReplyBlock { made: ReturnType<typeof createSurb>, path: string[], builtAt: number }

export interface OnionRouterInit {
  directory: Directory
  onionPrivate: Uint8Array
  onionPublic: Uint8Array
  relay?: boolean
  keyRing?: KeyRingInit
  announceIntervalMs?: number
  /** A forward message's payload arrived (this node was the recipient). */
  onMessage?: (payload: Uint8Array, id: Uint8Array) => void
  /** A reply through one of our SURBs arrived and opened. */
  onReply?: (payload: Uint8Array, surbId: Uint8Array) => void
  /** A reply arrived but could not be opened (unknown, expired or used SURB, or tampered). */
  onBadReply?: (reason: string) => void
  onEvent?: (event: OnionEvent) => void
  /** Where SURB secrets wait for their reply; default: in memory. The chat layer persists them. */
  surbKeeper?: SurbKeeper
  limits?: Pick<OnionServiceInit, 'packetsPerSecond' | 'burst' | 'queueLength' | 'dialTimeoutMs'>
}

/** Holds SURB secrets until their reply arrives. `take` removes: each secret opens one reply. */
export interface SurbKeeper {
  put: (id: Uint8Array, secret: SurbSecret, expires: number) => void
  take: (id: Uint8Array) => SurbSecret | undefined
}

/** The default keeper: a bounded in-memory map (the oldest secrets go first when full). */
export class MemorySurbKeeper implements SurbKeeper {
  private readonly surbs = new Map<string, { secret: SurbSecret, expires: number }>()
  put (id: Uint8Array, secret: SurbSecret, expires: number): void {
    if (this.surbs.size >= MAX_PENDING_SURBS) {
      const oldest = this.surbs.keys().next().value
      if (oldest != null) this.surbs.delete(oldest)
    }
    this.surbs.set(Buffer.from(id).toString('hex'), { secret, expires })
  }

  take (id: Uint8Array): SurbSecret | undefined {
    const key = Buffer.from(id).toString('hex')
    const held = this.surbs.get(key)
    this.surbs.delete(key)
    return held != null && held.expires >= Date.now() ? held.secret : undefined
  }
}

export interface SentPacket {
  id: Uint8Array
  /** Peer ids of the relays, first hop first (for the sender's own records and for tests). */
  path: string[]
}

export interface ReplyBlock {
  surb: Uint8Array
  id: Uint8Array
  secret: SurbSecret
  path: string[]
}

export class OnionRouter {
  readonly relays: RelayDirectory
  readonly service: OnionService
  readonly keyRing: OnionKeyRing | undefined
  private readonly node: Libp2p<{ pubsub: GossipSub }>
  private readonly init: OnionRouterInit
  private readonly surbs: SurbKeeper
  private readonly log = logger('p2pchat:onion:router')
  private announceTimer: ReturnType<typeof setInterval> | undefined
  private spare: BuiltReplyBlock | undefined
  private spareTimer: ReturnType<typeof setTimeout> | undefined
  private running = false
  /** Gossip validator: a descriptor that does not verify is rejected and not passed on. */
  private readonly validateGossip = (_peer: PeerId, msg: Message): TopicValidatorResult =>
    this.relays.add(msg.data) != null ? TopicValidatorResult.Accept : TopicValidatorResult.Reject

  constructor (node: Libp2p<{ pubsub: GossipSub }>, init: OnionRouterInit) {
    this.node = node
    this.init = init
    this.surbs = init.surbKeeper ?? new MemorySurbKeeper()
    this.relays = new RelayDirectory({ announceIntervalMs: init.announceIntervalMs })
    this.keyRing = init.relay === true ? new OnionKeyRing(init.keyRing) : undefined
    this.service = new OnionService(node, {
      userKey: onionPrivateKeyFromRaw(init.onionPrivate),
      keyRing: this.keyRing,
      onEvent: init.onEvent,
      ...init.limits,
      onDeliver: (res) => {
        if (res.command === 'service') {
          this.init.onMessage?.(res.payload, res.id)
          return
        }
        const secret = this.surbs.take(res.id)
        if (secret == null) { this.init.onBadReply?.('unknown-surb'); return }
        const opened = openReply(res.payload, secret)
        if (!opened.ok) { this.init.onBadReply?.(opened.reason); return }
        this.init.onReply?.(opened.payload, res.id)
      }
    })
  }

  get isRelay (): boolean { return this.keyRing != null }

  async start (): Promise<void> {
    await this.service.start()
    this.running = true
    const pubsub = this.node.services.pubsub
    pubsub.topicValidators.set(RELAY_TOPIC, this.validateGossip)
    pubsub.subscribe(RELAY_TOPIC)
    if (this.keyRing != null) {
      this.keyRing.onRotate = () => { this.announce().catch(err => { this.log.error('announce after rotation failed: %s', (err as Error).message) }) }
      const interval = this.init.announceIntervalMs ?? DEFAULT_ANNOUNCE_INTERVAL_MS
      this.announceTimer = setInterval(() => {
        this.keyRing?.tick()
        this.gossipDescriptor().catch(() => {})
      }, interval)
      this.announceTimer.unref()
    }
  }

  async stop (): Promise<void> {
    this.running = false
    clearInterval(this.announceTimer)
    this.announceTimer = undefined
    clearTimeout(this.spareTimer)
    this.spareTimer = undefined
    this.spare = undefined
    const pubsub = this.node.services.pubsub
    pubsub.topicValidators.delete(RELAY_TOPIC)
    try { pubsub.unsubscribe(RELAY_TOPIC) } catch {}
    await this.service.stop()
  }

  private descriptor: SignedRecord | undefined

  /** Relays: publish the descriptor (DHT + provider record) and gossip it. */
  async announce (options?: { signal?: AbortSignal }): Promise<SignedRecord> {
    if (this.keyRing == null) throw new Error('not a relay')
    const { record } = await this.init.directory.announceRelay(this.keyRing.descriptorKeys(), options)
    this.descriptor = record
    this.relays.add(record.bytes)
    await this.gossipDescriptor()
    return record
  }

  private async gossipDescriptor (): Promise<void> {
    if (this.descriptor == null) return
    if (this.descriptor.expiry - Date.now() < 3600_000 || this.keyRing?.descriptorKeys()[0].epoch !== this.descriptor.onionKeys[0].epoch) {
      await this.announce()
      return
    }
    try {
      await this.node.services.pubsub.publish(RELAY_TOPIC, this.descriptor.bytes)
    } catch (err) {
      this.log('gossip publish failed: %s', (err as Error).message)
    }
  }

  /** Cold start: find relays through the DHT provider record and add their verified descriptors. */
  async discoverRelays (options?: { signal?: AbortSignal }): Promise<number> {
    for (const rec of await this.init.directory.findRelays(options)) this.relays.add(rec.bytes)
    return this.relays.size
  }

  private hopsThrough (count: number, exclude: string[]): { hops: Hop[], path: string[] } {
    const now = Date.now()
    const chosen = this.relays.choosePath(count, exclude)
    const hops: Hop[] = []
    for (const r of chosen) {
      const key = onionKeyFor(r.record, now)
      if (key == null) throw new Error('relay without a valid onion key')
      hops.push({ address: addressFromPeerId(r.record.peerId), onionKey: key.key })
    }
    return { hops, path: chosen.map(r => r.record.peerId) }
  }

  /**
   * Wraps `payload` for the recipient (peer id and onion key from its directory record) over
   * `pathLength` random relays, and hands it to the first one.
   */
  send (recipient: { peerId: string, onionKey: Uint8Array }, payload: Uint8Array, opts: { pathLength?: number, exclude?: string[] } = {}): SentPacket {
    const self = this.node.peerId.toString()
    const { hops, path } = this.hopsThrough(opts.pathLength ?? DEFAULT_PATH_LENGTH, [self, recipient.peerId, ...(opts.exclude ?? [])])
    hops.push({ address: addressFromPeerId(recipient.peerId), onionKey: recipient.onionKey })
    const { firstHop, packet, id } = createPacket(hops, payload)
    this.service.send(firstHop, packet)
    return { id, path }
  }

  /**
   * A single-use reply block over `pathLength` random relays back to this node. A block of the
   * default length built ahead in idle time is used when its path avoids `exclude`; another is then
   * built ahead. Its secret is handed to the SURB keeper only now, when it is given out.
   */
  createReplyBlock (opts: { pathLength?: number, exclude?: string[], ttlMs?: number } = {}): ReplyBlock {
    const pathLength = opts.pathLength ?? DEFAULT_PATH_LENGTH
    const exclude = opts.exclude ?? []
    const spare = this.spare
    let built
    if (spare != null) {
      const live = new Set(this.relays.list().map(r => r.record.peerId))
      if (Date.now() - spare.builtAt > SPARE_SURB_MAX_AGE_MS || !spare.path.every(p => live.has(p))) this.spare = undefined
      else if (pathLength === DEFAULT_PATH_LENGTH && !spare.path.some(p => exclude.includes(p))) {
        built = spare
        this.spare = undefined
      }
    }
    built ??= this.buildReplyBlock(pathLength, exclude)
    this.surbs.put(built.made.id, built.made.secret, Date.now() + (opts.ttlMs ?? DEFAULT_SURB_TTL_MS))
    this.scheduleSpare()
    return { ...built.made, path: built.path }
  }

  /** A reply block built ahead is waiting to be given out. */
  get spareReady (): boolean { return this.spare != null }

  private buildReplyBlock (pathLength: number, exclude: string[]): BuiltReplyBlock {
    const self = this.node.peerId.toString()
    const { hops, path } = this.hopsThrough(pathLength, [self, ...exclude])
    hops.push({ address: addressFromPeerId(this.node.peerId), onionKey: this.init.onionPublic })
    return { made: createSurb(hops), path, builtAt: Date.now() }
  }

  private scheduleSpare (): void {
    if (this.spareTimer != null) return
    this.spareTimer = setTimeout(() => {
      this.spareTimer = undefined
      if (!this.running || this.spare != null) return
      try {
        this.spare = this.buildReplyBlock(DEFAULT_PATH_LENGTH, [])
      } catch (err) {
        // too few relays right now: the next createReplyBlock builds (or fails) on its own
        this.log('no spare reply block: %s', (err as Error).message)
      }
    }, SPARE_SURB_DELAY_MS)
    this.spareTimer.unref()
  }

  /** Sends `payload` back through a reply block someone gave us. Throws on a malformed SURB. */
  reply (surb: Uint8Array, payload: Uint8Array): void {
    if (surb.length !== SURB_SIZE) throw new RangeError(`a reply block is ${SURB_SIZE} bytes`)
    const { firstHop, packet } = packetFromSurb(surb, payload)
    this.service.send(firstHop, packet)
  }
}

export function randomMessageId (): Uint8Array {
  return new Uint8Array(randomBytes(ID_LENGTH))
}
