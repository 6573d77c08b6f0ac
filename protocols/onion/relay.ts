/**
 * `/onion-chat/2.0`: the onion packet service of every node.
 *
 * Wire: a stream carries frames, each an unsigned-varint length and then one Sphinx packet (version 2)
 * of exactly PACKET_SIZE bytes (SPEC.md). A frame of another length is dropped and counted; a length
 * above MAX_FRAME_LENGTH ends the stream. Streams are long-lived: one outbound stream per neighbour
 * carries every packet to it (opening a stream per packet is many times slower).
 *
 * The relay peels one layer with its epoch keys (OnionKeyRing), drops replays by the replay filter of
 * the key that opened the packet, and forwards a RELAY layer only to a relay it knows (`isKnownRelay`;
 * others are 'unknown-relay'), dialling it if needed. A CLIENT layer goes to `onClient` (the relay's
 * client links, PROTOCOL-V2.md section 2: a client is never dialled). A final layer (SERVICE: a request
 * for one of the relay's services; REPLY) is handed to `onDeliver`. Users are never a hop of a forward
 * path in protocol v2, so this service runs on relays only. Nothing on the network can make this code
 * throw: every problem is a counted drop.
 *
 * Mixing (SPEC.md section 15): a RELAY or CLIENT layer whose slot carries a delay is held that long in
 * the mix scheduler (scheduler.ts: a heap with one timer, at most maxHeld packets, delays above
 * maxDelayMs refused as 'delay-cap', a random held packet dropped as 'mix-full' beyond the bound),
 * then forwarded as below. The replay check happens on arrival, so a replay is never held. A layer
 * without a delay goes on at once (the `fast` privacy level).
 *
 * Threads (`sphinxThreads` > 0): processPacket runs on a pool of worker threads (sphinx-pool.ts) and
 * its results come back to this thread, which alone checks replay tags, queues and writes. The pool
 * is bounded (`sphinxQueue` packets in flight); inbound reading pauses when half of it is in use and
 * resumes under a quarter (as for a full neighbour queue), and what still exceeds it is dropped as
 * 'pool-full'. Packets may leave in another order than they came (a mix promises no order). Workers
 * that cannot start are not respawned; with none left, the pool peels on this thread (sphinx-pool.ts).
 *
 * Limits: packets per second per inbound peer (a token bucket), a bounded mix scheduler, and a bounded
 * queue per outbound neighbour; what exceeds them is dropped and counted, so memory does not grow with load.
 *
 * Writes: each neighbour's queue is written in batches: every frame queued when its writer runs (it
 * runs one event-loop turn after the first frame arrives, so everything read in that turn is there;
 * a full batch goes at once) goes out in one send of at most MAX_BATCH_BYTES, i.e. one Yamux frame, one Noise message and one
 * socket write for up to 21 packets instead of one each (the stack's cost is per send, not per byte;
 * bench/forwarding.ts profiles it). Nothing waits for a batch to fill: a lone packet goes alone.
 * The frames on the wire are the same; a reader cannot tell batches apart. `forward` takes ownership of
 * the packet it is handed (it is queued as is, copied only into the batch).
 *
 * Backpressure: when a neighbour's queue passes half of queueLength, the relay pauses reading from
 * every inbound stream (Yamux then stops granting window, so senders wait instead of their packets
 * being dropped here) until the queue is back under a quarter. A neighbour may hold inbound reading
 * for at most maxHoldMs per episode: one that does not drain in that time is marked slow, reading
 * resumes, and its overflow is dropped (queue-full) until its queue drains, so a slow or hostile next
 * hop cannot stall the relay for everyone else.
 */
import { logger } from '@libp2p/logger'
import { LengthPrefixedDecoder } from '@libp2p/utils'
import type { Connection, Libp2p, PeerId, Stream } from '@libp2p/interface'
import { peerIdFromAddress } from './address.ts'
import { PACKET_SIZE } from './constants.ts'
import type { FinalResult, OnionPrivateKey, ProcessResult } from './sphinx.ts'
import type { EpochKey, OnionKeyRing } from './keyring.ts'
import { DEFAULT_MAX_QUEUED, peelWithKeys, SphinxPool } from './sphinx-pool.ts'
import type { SphinxPoolStats } from './sphinx-pool.ts'
import { MAX_HOP_DELAY_MS } from './delays.ts'
import { DEFAULT_MAX_HELD, MixScheduler } from './scheduler.ts'
import type { Clock, SchedulerStats } from './scheduler.ts'

export const ONION_PROTOCOL = '/onion-chat/2.0'
/** Frames longer than this end the stream (a well-formed frame is PACKET_SIZE). */
export const MAX_FRAME_LENGTH = 2 * PACKET_SIZE
export const DEFAULT_PACKETS_PER_SECOND = 2000
export const DEFAULT_BURST = 4000
export const DEFAULT_QUEUE_LENGTH = 1024
export const DEFAULT_DIAL_TIMEOUT_MS = 10_000
export const MAX_INBOUND_STREAMS = 8
/** Dials to a neighbour before its queued packets are dropped, with a growing pause between. */
export const MAX_DIAL_ATTEMPTS = 3
export const DIAL_RETRY_DELAY_MS = 250
/** How many inbound peers' rate state is kept before the idle ones are forgotten. */
const MAX_TRACKED_PEERS = 10_000

const FRAME_HEADER = varint(PACKET_SIZE)
/** A packet as it goes on the wire: its varint length and the packet. */
const FRAME_LENGTH = FRAME_HEADER.length + PACKET_SIZE
/**
 * The most bytes one send carries: a Noise transport message holds 65,535 bytes, less its 16-byte tag
 * and Yamux's 12-byte frame header, so a batch of this size is one Noise message (21 onion frames,
 * 21 client-link frames). Larger sends would only be split again by the stack.
 */
export const MAX_BATCH_BYTES = 65_535 - 16 - 12
/** Onion frames in a full batch (21). */
const FULL_BATCH = Math.floor(MAX_BATCH_BYTES / FRAME_LENGTH)
/** How long a neighbour may hold back our writes (flow control) before its stream is given up. */
export const DRAIN_TIMEOUT_MS = 30_000
/** How long one neighbour's full queue may keep inbound reading paused before it is treated as slow. */
export const DEFAULT_MAX_HOLD_MS = 1_000

/** A packet as it goes on the wire: its varint length, then the packet. */
export function frameOf (packet: Uint8Array): Uint8Array {
  const frame = new Uint8Array(FRAME_HEADER.length + packet.length)
  frame.set(FRAME_HEADER, 0)
  frame.set(packet, FRAME_HEADER.length)
  return frame
}

/**
 * Takes the first items of `queue` that fit in `maxBytes` (at least one) and returns them as one
 * buffer, `header` before each: one allocation and one copy per item, and one send for all of them.
 * A single item without a header is returned as is.
 */
export function takeBatch (queue: Uint8Array[], header: Uint8Array, maxBytes: number = MAX_BATCH_BYTES): { bytes: Uint8Array, count: number } {
  let count = 0
  let total = 0
  while (count < queue.length) {
    const size = header.length + queue[count].length
    if (count > 0 && total + size > maxBytes) break
    total += size
    count++
  }
  if (count === 1 && header.length === 0) return { bytes: queue.shift() as Uint8Array, count }
  const bytes = new Uint8Array(total)
  let at = 0
  for (const item of queue.splice(0, count)) {
    bytes.set(header, at)
    bytes.set(item, at + header.length)
    at += header.length + item.length
  }
  return { bytes, count }
}

/** Resolves after the current event-loop turn: a writer started now sees everything read in this turn. */
export async function nextTurn (): Promise<void> {
  await new Promise(resolve => setImmediate(resolve))
}

/** Pausing or resuming a stream that is closing throws; such a stream has nothing left to read. */
export function pauseStream (s: Stream): void { try { s.pause() } catch {} }
export function resumeStream (s: Stream): void { try { s.resume() } catch {} }

/** An unsigned varint (multiformats): the length prefix of every frame on the onion protocols. */
export function varint (n: number): Uint8Array {
  const out: number[] = []
  while (n >= 0x80) { out.push((n & 0x7f) | 0x80); n >>>= 7 }
  out.push(n)
  return Uint8Array.from(out)
}

/**
 * Reads frames from `stream` and hands each one's bytes to `onFrame` (synchronously, in order);
 * resolves when the stream ends, rejects on a frame longer than MAX_FRAME_LENGTH (the decoder's
 * InvalidMessageLengthError) or when the stream fails.
 *
 * The decoder refuses to buffer more than maxBufferSize, but a stream read hands over everything
 * that arrived since the last read: many frames at once whenever this node is busy. So chunks are fed
 * in pieces of at most MAX_FRAME_LENGTH: the decoder then holds at most one partial frame plus one
 * piece, and only a frame longer than MAX_FRAME_LENGTH ends the stream.
 */
export async function readFrames (stream: Stream, onFrame: (frame: Uint8Array) => void): Promise<void> {
  const decoder = new LengthPrefixedDecoder({ maxDataLength: MAX_FRAME_LENGTH, maxBufferSize: 2 * MAX_FRAME_LENGTH + 16 })
  for await (const chunk of stream) {
    for (const buf of chunk instanceof Uint8Array ? [chunk] : chunk) {
      for (let o = 0; o < buf.length; o += MAX_FRAME_LENGTH) {
        for (const frame of decoder.decode(buf.subarray(o, o + MAX_FRAME_LENGTH))) onFrame(frame.subarray())
      }
    }
  }
}

/**
 * Waits until `stream` holds at most `limit` bytes unsent. A v3 stream's onDrain() resolves on any
 * 'drain' event, also when the connection under it drains while this stream's own Yamux window is
 * still exhausted; a writer that sends again after each onDrain then grows the stream's write buffer
 * by one frame per such event, without bound (seen in the forwarding bench: 61 MB in 20,000 chunks,
 * and the relay's CPU went to Uint8ArrayList.consume over them). Between two checks the event loop
 * gets a turn, so a stream whose buffer is already being sent is not spun on.
 */
export async function waitWritable (stream: Stream, limit: number, timeoutMs: number): Promise<void> {
  const signal = AbortSignal.timeout(timeoutMs)
  while (stream.writeBufferLength > limit) {
    await stream.onDrain({ signal })
    if (stream.writeBufferLength > limit) await new Promise(resolve => setImmediate(resolve))
    signal.throwIfAborted()
  }
}

/** Why a packet was not forwarded or delivered. Stable strings, counted in `stats.dropped`. */
export type OnionDropReason =
  | 'size' | 'version' | 'mac' | 'bad-point' | 'slot-type' | 'next-hop' | 'extension' | 'payload-integrity' | 'internal'
  | 'replay' | 'rate-limit' | 'queue-full' | 'dial-failed' | 'send-failed' | 'oversize-frame' | 'loop'
  | 'unknown-relay' | 'delay-cap' | 'mix-full' | 'stopped' | 'pool-full'

export interface OnionStats {
  received: number
  forwarded: number
  delivered: number
  dropped: Partial<Record<OnionDropReason, number>>
  /** Inbound streams that ended in an error (reset, connection lost); counted apart from packet drops. */
  streamErrors: number
  /** Times a neighbour's queue paused inbound reading (backpressure episodes). */
  held: number
  /** Episodes that ended because the neighbour did not drain within maxHoldMs. */
  holdTimeouts: number
  /** The mix scheduler: packets held for their delay (its drops are also in `dropped`); absent only in benches' placeholders. */
  mixing?: SchedulerStats
  /** The Sphinx worker pool, when the relay runs one (sphinxThreads > 0). */
  sphinxPool?: SphinxPoolStats
}

/** What the instrumentation hook sees: never more than a relay itself learns. */
export type OnionEvent =
  | { type: 'in', from: string, packet: Uint8Array }
  | { type: 'forward', from: string, to: string, size: number, packet: Uint8Array }
  /** A CLIENT layer handed to the client links; `client` is the client's transport key. */
  | { type: 'to-client', from: string, client: Uint8Array, size: number, packet: Uint8Array }
  | { type: 'deliver', from: string }
  | { type: 'drop', from: string, reason: OnionDropReason }
  | { type: 'stream-error', from: string }

export interface OnionServiceInit {
  /**
   * A CLIENT layer goes here (the relay's client links hand it to the connected client; a client is
   * never dialled). Without it (the forwarding bench's bare relay) a CLIENT layer is forwarded like a RELAY one.
   */
  onClient?: (next: Uint8Array, packet: Uint8Array, from: string) => void
  /** Forward only to relays this returns true for (others: 'unknown-relay'); without it, to any peer. */
  isKnownRelay?: (peer: PeerId) => boolean
  /** The epoch keys used to peel and forward (and their replay filters). */
  keyRing: OnionKeyRing
  /** `from` is the peer id of the hop that handed the packet over (the last relay). */
  onDeliver: (result: FinalResult, from: string) => void
  onEvent?: (event: OnionEvent) => void
  packetsPerSecond?: number
  burst?: number
  queueLength?: number
  dialTimeoutMs?: number
  /** See the module comment: the longest one neighbour may pause inbound reading per episode. */
  maxHoldMs?: number
  /** Packets held for their delay at once (scheduler.ts DEFAULT_MAX_HELD); beyond, a random one is dropped. */
  maxHeld?: number
  /** A slot asking for a longer delay is dropped as 'delay-cap' (delays.ts MAX_HOP_DELAY_MS). */
  maxDelayMs?: number
  /** The mix scheduler's clock (tests). */
  clock?: Clock
  /**
   * Worker threads that run processPacket (0: on this thread). See the module comment; whether threads
   * help depends on the spare cores (bench/forwarding.ts measures both in the same run).
   */
  sphinxThreads?: number
  /** Packets in the Sphinx pool at once (sphinx-pool.ts DEFAULT_MAX_QUEUED); beyond, 'pool-full'. */
  sphinxQueue?: number
}

/** What the Sphinx pool carries with each packet: who sent it and the keys it was tried with. */
interface PoolContext { from: string, ring: readonly EpochKey[] }

interface Bucket { tokens: number, last: number }
interface NextHop { peer: PeerId, id: string, self: boolean }

/** An open stream we may still write to. */
function usable (stream: Stream | undefined): stream is Stream {
  return stream != null && stream.status === 'open' && stream.writeStatus === 'writable'
}

class Neighbour {
  readonly peer: PeerId
  /** Packets (without their frame header) waiting for the stream, oldest first. */
  readonly queue: Uint8Array[] = []
  stream: Stream | undefined
  pumping = false
  /** The writer is waiting out the turn to gather packets (a full batch may be sent meanwhile). */
  gathering = false
  dialFailures = 0
  /** Its queue is past high water and inbound reading is paused on its account. */
  holding = false
  holdTimer: ReturnType<typeof setTimeout> | undefined
  /** It held inbound reading for maxHoldMs without draining: overflow is dropped until it drains. */
  slow = false
  constructor (peer: PeerId) { this.peer = peer }
}

export class OnionService {
  private readonly node: Libp2p
  private readonly init: Required<Omit<OnionServiceInit, 'onEvent' | 'onClient' | 'isKnownRelay' | 'clock'>> &
  Pick<OnionServiceInit, 'onEvent' | 'onClient' | 'isKnownRelay' | 'clock'>
  /** The key ring's candidates as last seen, and their private keys (rebuilt only when they change). */
  private ring: readonly EpochKey[] = []
  private ringKeys: readonly OnionPrivateKey[] = []
  /** current, previous, next of the key ring when `ring` was built */
  private ringSeen: Array<EpochKey | undefined> = []
  private pool: SphinxPool<PoolContext> | undefined
  /** The Sphinx pool is past half full and holds inbound reading. */
  private poolHolding = false
  /** Packets waiting out their per-hop delay; each entry forwards its packet when released. */
  private readonly mix: MixScheduler<() => void>
  private readonly buckets = new Map<string, Bucket>()
  private readonly neighbours = new Map<string, Neighbour>()
  /** Next hops by their address in hex (see hop()); at most MAX_TRACKED_PEERS, then forgotten at once. */
  private readonly hops = new Map<string, NextHop>()
  /** The last next hop looked up, by its 32-byte address (see hop()). */
  private lastHop: { address: Uint8Array, hop: NextHop } | undefined
  private readonly inbound = new Set<Stream>()
  /** Neighbours holding inbound reading paused; reading resumes when none is left. */
  private holders = 0
  private readonly log = logger('p2pchat:onion')
  private running = false
  readonly stats: OnionStats

  constructor (node: Libp2p, init: OnionServiceInit) {
    this.node = node
    this.init = {
      packetsPerSecond: DEFAULT_PACKETS_PER_SECOND,
      burst: DEFAULT_BURST,
      queueLength: DEFAULT_QUEUE_LENGTH,
      dialTimeoutMs: DEFAULT_DIAL_TIMEOUT_MS,
      maxHoldMs: DEFAULT_MAX_HOLD_MS,
      maxHeld: DEFAULT_MAX_HELD,
      maxDelayMs: MAX_HOP_DELAY_MS,
      sphinxThreads: 0,
      sphinxQueue: DEFAULT_MAX_QUEUED,
      ...init
    }
    this.mix = new MixScheduler<() => void>({
      release: (go) => { go() },
      onDrop: (_go, reason) => { this.drop('mix', reason) },
      maxHeld: this.init.maxHeld,
      maxDelayMs: this.init.maxDelayMs,
      clock: this.init.clock
    })
    this.stats = { received: 0, forwarded: 0, delivered: 0, dropped: {}, streamErrors: 0, held: 0, holdTimeouts: 0, mixing: this.mix.stats }
  }

  /** Packets waiting in the outbound queues now, and over how many neighbours (operators' metrics). */
  queueDepth (): { packets: number, neighbours: number } {
    let packets = 0
    for (const n of this.neighbours.values()) packets += n.queue.length
    return { packets, neighbours: this.neighbours.size }
  }

  async start (): Promise<void> {
    if (this.running) return
    if (this.init.sphinxThreads > 0 && this.pool == null) {
      this.pool = new SphinxPool<PoolContext>({
        threads: this.init.sphinxThreads,
        maxQueued: this.init.sphinxQueue,
        onResult: (result, index, ctx) => { this.pooled(result, index, ctx) }
      })
      this.stats.sphinxPool = this.pool.stats
    }
    await this.node.handle(ONION_PROTOCOL, (stream, connection) => { this.readStream(stream, connection) }, {
      maxInboundStreams: MAX_INBOUND_STREAMS
    })
    this.running = true
  }

  async stop (): Promise<void> {
    if (!this.running) return
    this.running = false
    // packets still waiting out their delay are lost with the relay (as with a crash); counted
    const held = this.mix.clear()
    for (let i = 0; i < held; i++) this.drop('mix', 'stopped')
    // packets in the Sphinx pool are answered as 'stopped' drops (pooled() sees running false)
    const pool = this.pool
    this.pool = undefined
    await pool?.close()
    if (this.poolHolding) { this.poolHolding = false; this.holders-- }
    await this.node.unhandle(ONION_PROTOCOL)
    for (const n of this.neighbours.values()) {
      this.release(n)
      n.queue.length = 0
      n.stream?.abort(new Error('onion service stopped'))
    }
    this.neighbours.clear()
    this.inbound.clear()
  }

  private drop (from: string, reason: OnionDropReason): void {
    this.stats.dropped[reason] = (this.stats.dropped[reason] ?? 0) + 1
    this.init.onEvent?.({ type: 'drop', from, reason })
  }

  private readStream (stream: Stream, connection: Connection): void {
    const from = connection.remotePeer.toString()
    this.inbound.add(stream)
    if (this.holders > 0) pauseStream(stream)
    readFrames(stream, (frame) => { this.receive(frame, from) }).then(() => {
      this.inbound.delete(stream)
    }, (err: Error) => {
      this.inbound.delete(stream)
      if (err.name === 'InvalidMessageLengthError' || err.name === 'InvalidParametersError') {
        this.drop(from, 'oversize-frame')
      } else {
        // the link failed (a reset, a closed connection): no frame was refused, so it is not a drop
        this.stats.streamErrors++
        this.init.onEvent?.({ type: 'stream-error', from })
      }
      this.log('inbound stream from %s ended: %s', from, err.message)
      stream.abort(err)
    })
  }

  private allow (from: string): boolean {
    const now = performance.now()
    let b = this.buckets.get(from)
    if (b == null) {
      if (this.buckets.size >= MAX_TRACKED_PEERS) this.pruneBuckets(now)
      b = { tokens: this.init.burst, last: now }
      this.buckets.set(from, b)
    }
    b.tokens = Math.min(this.init.burst, b.tokens + (now - b.last) * this.init.packetsPerSecond / 1000)
    b.last = now
    if (b.tokens < 1) return false
    b.tokens -= 1
    return true
  }

  private pruneBuckets (now: number): void {
    for (const [id, b] of this.buckets) {
      if (b.tokens + (now - b.last) * this.init.packetsPerSecond / 1000 >= this.init.burst) this.buckets.delete(id)
    }
    if (this.buckets.size >= MAX_TRACKED_PEERS) this.buckets.clear()
  }

  /** Handles one frame from `from`. Public for tests and the in-memory harness; never throws. */
  receive (frame: Uint8Array | { subarray: () => Uint8Array }, from: string): void {
    this.stats.received++
    if (!this.allow(from)) { this.drop(from, 'rate-limit'); return }
    const packet = frame instanceof Uint8Array ? frame : frame.subarray()
    this.init.onEvent?.({ type: 'in', from, packet })
    try {
      this.process(packet, from)
    } catch (err) {
      this.log.error('unexpected error processing a packet from %s: %s', from, (err as Error).message)
      this.drop(from, 'internal')
    }
  }

  private process (packet: Uint8Array, from: string): void {
    this.init.keyRing.tick()
    const ring = this.candidates()
    if (this.pool != null) {
      if (!this.pool.submit(packet, this.ringKeys, { from, ring })) { this.drop(from, 'pool-full'); return }
      if (!this.poolHolding && this.pool.stats.queued >= this.init.sphinxQueue / 2) {
        this.poolHolding = true
        this.stats.held++
        if (this.holders++ === 0) for (const s of this.inbound) pauseStream(s)
      }
      return
    }
    const { result, index } = peelWithKeys(packet, this.ringKeys)
    this.accept(result, index, ring, from)
  }

  /**
   * The key ring's candidates; the arrays are rebuilt only when the ring changed (rotation, expiry),
   * not per packet.
   */
  private candidates (): readonly EpochKey[] {
    const kr = this.init.keyRing
    if (kr.current !== this.ringSeen[0] || kr.previous !== this.ringSeen[1] || kr.next !== this.ringSeen[2]) {
      this.ringSeen = [kr.current, kr.previous, kr.next]
      this.ring = kr.candidates()
      this.ringKeys = this.ring.map(k => k.key)
    }
    return this.ring
  }

  /** A packet the Sphinx pool peeled (or could not): accepted here, on this thread. */
  private pooled (result: ProcessResult, index: number, ctx: PoolContext): void {
    const pool = this.pool
    if (this.poolHolding && (pool == null || pool.stats.queued <= this.init.sphinxQueue / 4)) {
      this.poolHolding = false
      if (--this.holders === 0) for (const s of this.inbound) resumeStream(s)
    }
    if (!this.running) { this.drop(ctx.from, 'stopped'); return }
    try {
      this.accept(result, index, ctx.ring, ctx.from)
    } catch (err) {
      this.log.error('unexpected error handling a packet from %s: %s', ctx.from, (err as Error).message)
      this.drop(ctx.from, 'internal')
    }
  }

  /**
   * A peeled packet: the one place its replay tag is checked (against the filter of the key that
   * opened it, ring[index]), then forwarded, held for its delay, or delivered.
   */
  private accept (res: ProcessResult, index: number, ring: readonly EpochKey[], from: string): void {
    if (!res.ok) { this.drop(from, res.reason); return }
    const opened = ring[index]
    if (opened == null) { this.drop(from, 'internal'); return }
    // forward or final, a packet opened under this key is seen once: a final layer replayed
    // (a SERVICE request or a reply block used twice) would otherwise be served twice
    if (opened.filter.checkAndAdd(res.replayTag)) { this.drop(from, 'replay'); return }
    if (res.type === 'forward') {
      const { next, packet: out, command } = res
      // the sender's per-hop delay (SPEC.md section 15): held in the mix scheduler, then forwarded
      if (res.delayMs > 0) this.mix.add(() => { this.onward(command, next, out, from) }, res.delayMs)
      else this.onward(command, next, out, from)
      return
    }
    this.stats.delivered++
    this.init.onEvent?.({ type: 'deliver', from })
    this.init.onDeliver(res, from)
  }

  /** A peeled RELAY layer goes to the next relay, a CLIENT layer to the client links. */
  private onward (command: 'relay' | 'client', next: Uint8Array, out: Uint8Array, from: string): void {
    if (command === 'client' && this.init.onClient != null) {
      this.stats.forwarded++
      this.init.onEvent?.({ type: 'to-client', from, client: next, size: out.length, packet: out })
      this.init.onClient(next, out, from)
      return
    }
    this.forward(next, out, from)
  }

  /** Sends a packet this node built (or a reply from a SURB) to its first hop (a 32-byte address). */
  send (firstHop: Uint8Array, packet: Uint8Array): void {
    this.forward(firstHop, packet, this.node.peerId.toString(), false)
  }

  /**
   * A packet a connected client SUBMITted for the relay `address` (PROTOCOL-V2.md section 2): this
   * relay itself peels it when the address is its own, else it goes on unchanged to that relay (a
   * known one only). `from` names the client in counts and events. Never throws.
   */
  submit (address: Uint8Array, packet: Uint8Array, from: string): void {
    const hop = this.hop(address)
    if (hop == null) {
      this.drop(from, 'next-hop')
      return
    }
    if (hop.self) { this.receive(packet, from); return }
    this.forward(address, packet, from)
  }

  /**
   * The peer behind a 32-byte address, its string form and whether it is this node, remembered: making
   * a PeerId and its base58 string cost ~20 us per packet (bench/forwarding.ts profile), and a relay
   * forwards to few distinct neighbours. Undefined for an address that is no Ed25519 key.
   */
  private hop (next: Uint8Array): NextHop | undefined {
    // consecutive packets mostly go to the same neighbour: compare bytes before making a map key
    const last = this.lastHop
    if (last != null && Buffer.compare(next, last.address) === 0) return last.hop
    const found = this.hopByKey(next)
    if (found != null) this.lastHop = { address: next.slice(), hop: found }
    return found
  }

  private hopByKey (next: Uint8Array): NextHop | undefined {
    const key = Buffer.from(next.buffer, next.byteOffset, next.byteLength).toString('hex')
    let hop = this.hops.get(key)
    if (hop == null) {
      let peer: PeerId
      try {
        peer = peerIdFromAddress(next)
      } catch {
        return undefined
      }
      if (this.hops.size >= MAX_TRACKED_PEERS) this.hops.clear()
      hop = { peer, id: peer.toString(), self: peer.equals(this.node.peerId) }
      this.hops.set(key, hop)
    }
    return hop
  }

  private forward (next: Uint8Array, packet: Uint8Array, from: string, relayed = true): void {
    const hop = this.hop(next)
    if (hop == null) {
      this.drop(from, 'next-hop')
      return
    }
    const { peer, id: to } = hop
    if (this.init.isKnownRelay != null && !hop.self && !this.init.isKnownRelay(peer)) {
      this.drop(from, 'unknown-relay')
      return
    }
    if (hop.self) {
      // A path through this node twice (or to itself): handle locally, no network hop.
      if (!relayed) { this.receive(packet, to); return }
      this.drop(from, 'loop')
      return
    }
    let n = this.neighbours.get(to)
    if (n == null) {
      n = new Neighbour(peer)
      this.neighbours.set(to, n)
    }
    if (n.queue.length >= this.init.queueLength) { this.drop(from, 'queue-full'); return }
    n.queue.push(packet)
    if (n.gathering && n.queue.length >= FULL_BATCH && usable(n.stream)) this.sendFullBatch(n, n.stream)
    if (n.queue.length >= this.init.queueLength / 2 && !n.holding && !n.slow) this.hold(n)
    if (relayed) {
      this.stats.forwarded++
      this.init.onEvent?.({ type: 'forward', from, to, size: packet.length, packet })
    }
    if (!n.pumping) this.pump(n).catch(() => {})
  }

  /**
   * While the writer gathers a turn's packets, a full batch goes at once: a burst larger than a batch
   * in one turn then leaves the queue as it comes instead of piling up (and overflowing) until the
   * turn ends. A stream that refuses it is given up as in pump(), its packets counted as send-failed.
   */
  private sendFullBatch (n: Neighbour, stream: Stream): void {
    const batch = takeBatch(n.queue, FRAME_HEADER)
    try {
      // false: the stream is full now; no more batches this turn (the queue's bound and backpressure
      // apply again), the writer waits for it when its turn comes
      if (!stream.send(batch.bytes)) n.gathering = false
    } catch (err) {
      n.gathering = false
      const unsent = batch.count + Math.ceil(stream.writeBufferLength / FRAME_LENGTH)
      this.log('sending to %s failed: %s (%d packets lost)', n.peer.toString(), (err as Error).message, unsent)
      for (let i = 0; i < unsent; i++) this.drop(n.peer.toString(), 'send-failed')
      stream.abort(err as Error)
      n.stream = undefined
    }
  }

  private async openStream (n: Neighbour): Promise<Stream> {
    if (usable(n.stream)) return n.stream
    n.stream = undefined
    const stream = await this.node.dialProtocol(n.peer, ONION_PROTOCOL, { signal: AbortSignal.timeout(this.init.dialTimeoutMs) })
    // The remote never writes back on this stream; read it so its end is noticed.
    void (async () => { try { for await (const _ of stream) { /* nothing is sent back */ } } catch {} })()
    n.stream = stream
    return stream
  }

  private async pump (n: Neighbour): Promise<void> {
    n.pumping = true
    const to = n.peer.toString()
    try {
      // let the rest of this turn's packets join the queue: they go in the same send (a full batch
      // goes at once meanwhile: forward())
      n.gathering = true
      await nextTurn()
      n.gathering = false
      while (n.queue.length > 0 && this.running) {
        let stream: Stream
        try {
          stream = usable(n.stream) ? n.stream : await this.openStream(n)
          n.dialFailures = 0
        } catch (err) {
          this.log('cannot reach %s: %s', to, (err as Error).message)
          if (++n.dialFailures < MAX_DIAL_ATTEMPTS && this.running) {
            // a busy peer or a slow first connection: try again shortly before giving up the queue
            await new Promise(resolve => setTimeout(resolve, DIAL_RETRY_DELAY_MS * n.dialFailures))
            continue
          }
          n.dialFailures = 0
          for (let i = n.queue.length; i > 0; i--) this.drop(to, 'dial-failed')
          n.queue.length = 0
          this.drained(n)
          break
        }
        if (n.queue.length === 0) break
        const batch = takeBatch(n.queue, FRAME_HEADER)
        if (n.queue.length <= this.init.queueLength / 4) this.drained(n)
        let taken = false
        try {
          // false means the stream's buffer is full: wait for the neighbour to read (backpressure;
          // meanwhile the queue fills and what exceeds it is dropped as queue-full)
          const more = stream.send(batch.bytes)
          taken = true
          if (!more) await waitWritable(stream, FRAME_LENGTH, DRAIN_TIMEOUT_MS)
        } catch (err) {
          // Give the stream up: abort it so neither side keeps its resources (a neighbour accepts
          // only MAX_INBOUND_STREAMS per connection). What it still buffered is lost and counted,
          // and the whole batch when the stream refused it.
          const unsent = (taken ? 0 : batch.count) + Math.ceil(stream.writeBufferLength / FRAME_LENGTH) || 1
          this.log('sending to %s failed: %s (%d packets lost)', to, (err as Error).message, unsent)
          for (let i = 0; i < unsent; i++) this.drop(to, 'send-failed')
          stream.abort(err as Error)
          n.stream = undefined
        }
      }
    } finally {
      n.pumping = false
      if (n.queue.length === 0 && n.stream == null) this.neighbours.delete(to)
    }
  }

  /** `n`'s queue passed high water: pause every inbound stream until it drains (or maxHoldMs passes). */
  private hold (n: Neighbour): void {
    n.holding = true
    this.stats.held++
    if (this.holders++ === 0) for (const s of this.inbound) pauseStream(s)
    n.holdTimer = setTimeout(() => {
      // it did not drain in time: stop waiting for it, drop its overflow until it catches up
      n.slow = true
      this.stats.holdTimeouts++
      this.log('neighbour %s did not drain within %d ms; dropping its overflow', n.peer.toString(), this.init.maxHoldMs)
      this.release(n)
    }, this.init.maxHoldMs)
  }

  private release (n: Neighbour): void {
    if (!n.holding) return
    n.holding = false
    clearTimeout(n.holdTimer)
    n.holdTimer = undefined
    if (--this.holders === 0) for (const s of this.inbound) resumeStream(s)
  }

  /** `n`'s queue is back under low water. */
  private drained (n: Neighbour): void {
    n.slow = false
    this.release(n)
  }

  /** Bytes queued for neighbours right now (bounded by queueLength * PACKET_SIZE per neighbour). */
  get queuedPackets (): number {
    let total = 0
    for (const n of this.neighbours.values()) total += n.queue.length
    return total
  }
}
