/**
 * `/onion-chat/2.0/client`: the link between a user (a client: it dials out, nobody dials it) and its
 * entry relay. PROTOCOL-V2.md section 2.
 *
 * Wire: one stream both ways, opened by the client. Frames: an unsigned-varint length (always
 * CLIENT_FRAME_LENGTH = 3105) and then `kind u8 | address 32 | packet 3072`:
 *   0x01 SUBMIT  client -> relay: send `packet` unchanged to the relay whose transport key is `address`
 *   0x02 DELIVER relay -> client: a packet whose last relay layer said CLIENT with this client's key;
 *                `address` is all zero
 * A frame of another length (up to MAX_FRAME_LENGTH), an unknown kind or a kind sent the wrong way is
 * dropped and counted; a longer frame ends the stream.
 *
 * The relay side (`ClientLinkServer`) keeps the latest stream of each connected client, keyed by the
 * client's transport key (the Ed25519 key of its peer id). It never dials a client: a packet for a
 * client without a stream is dropped (`client-gone`). Each client's submissions pass a token bucket;
 * each client's outbound queue is bounded (`queue-full` beyond).
 *
 * The client side (`ClientLink`) opens the stream to its entry relay, submits packets and hands every
 * delivered packet to `onDeliver`.
 */
import { logger } from '@libp2p/logger'
import type { Connection, Libp2p, PeerId, Stream } from '@libp2p/interface'
import { PACKET_SIZE } from './constants.ts'
import { MAX_BATCH_BYTES, nextTurn, pauseStream, readFrames, resumeStream, takeBatch, varint, waitWritable } from './relay.ts'

export const CLIENT_PROTOCOL = '/onion-chat/2.0/client'
/** A transport key: the raw Ed25519 public key of a libp2p peer id. */
export const ADDRESS_LENGTH = 32
export const KIND_SUBMIT = 0x01
export const KIND_DELIVER = 0x02
/** kind | address | packet */
export const CLIENT_FRAME_LENGTH = 1 + ADDRESS_LENGTH + PACKET_SIZE
/** A client submits at most this many packets per second on average (a user types; cover traffic is slower). */
export const DEFAULT_CLIENT_PACKETS_PER_SECOND = 200
export const DEFAULT_CLIENT_BURST = 400
/** Packets waiting for one client's stream; a client that does not read loses what is beyond. */
export const DEFAULT_CLIENT_QUEUE_LENGTH = 256
/** How long a client may hold back our writes before its stream is given up. */
export const CLIENT_DRAIN_TIMEOUT_MS = 30_000
/** A client needs one stream; a second replaces the first (a reconnect). */
const MAX_CLIENT_STREAMS_PER_CONNECTION = 2
/** Clients whose rate state is kept before idle ones are forgotten. */
const MAX_TRACKED_CLIENTS = 10_000

const ZERO_ADDRESS = new Uint8Array(ADDRESS_LENGTH)

export type ClientDropReason = 'size' | 'kind' | 'rate-limit' | 'queue-full' | 'client-gone' | 'send-failed' | 'oversize-frame' | 'not-ed25519'

export interface ClientLinkStats {
  submitted: number
  delivered: number
  dropped: Partial<Record<ClientDropReason, number>>
  /** Client streams that ended in an error (reset, lost connection); not packet drops. */
  streamErrors: number
}

/** The transport key (32 bytes) of an Ed25519 peer id; undefined for other key types. */
export function transportKeyOf (peer: PeerId): Uint8Array | undefined {
  return peer.type === 'Ed25519' ? peer.publicKey.raw : undefined
}

function hex (b: Uint8Array): string { return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex') }

const FRAME_HEADER = varint(CLIENT_FRAME_LENGTH)

/** One client-link frame as it goes on the wire. Throws RangeError on a wrong-sized address or packet. */
export function clientFrame (kind: number, address: Uint8Array, packet: Uint8Array): Uint8Array {
  if (address.length !== ADDRESS_LENGTH) throw new RangeError(`an address is ${ADDRESS_LENGTH} bytes`)
  if (packet.length !== PACKET_SIZE) throw new RangeError(`a packet is ${PACKET_SIZE} bytes`)
  const frame = new Uint8Array(FRAME_HEADER.length + CLIENT_FRAME_LENGTH)
  frame.set(FRAME_HEADER, 0)
  frame[FRAME_HEADER.length] = kind
  frame.set(address, FRAME_HEADER.length + 1)
  frame.set(packet, FRAME_HEADER.length + 1 + ADDRESS_LENGTH)
  return frame
}

type ParsedFrame = { ok: true, kind: number, address: Uint8Array, packet: Uint8Array } | { ok: false, reason: 'size' | 'kind' }

/** Splits a frame's bytes (without the varint); copies, so the caller's buffer may be reused. */
export function parseClientFrame (bytes: Uint8Array): ParsedFrame {
  if (bytes.length !== CLIENT_FRAME_LENGTH) return { ok: false, reason: 'size' }
  const kind = bytes[0]
  if (kind !== KIND_SUBMIT && kind !== KIND_DELIVER) return { ok: false, reason: 'kind' }
  return { ok: true, kind, address: bytes.slice(1, 1 + ADDRESS_LENGTH), packet: bytes.slice(1 + ADDRESS_LENGTH) }
}

const NO_HEADER = new Uint8Array(0)
/** Client-link frames in a full batch (21). */
const FULL_CLIENT_BATCH = Math.floor(MAX_BATCH_BYTES / (FRAME_HEADER.length + CLIENT_FRAME_LENGTH))

/**
 * A bounded queue of frames written to one stream in order, waiting for the reader when it is slow.
 * The frames queued when it runs (one event-loop turn after the first) go in one send of at most
 * MAX_BATCH_BYTES (relay.ts takeBatch: one Yamux frame and one Noise message for up to 21 frames);
 * a full batch goes at once.
 */
class FrameWriter {
  readonly queue: Uint8Array[] = []
  private pumping = false
  /** The writer is waiting out the turn to gather frames (a full batch may be sent meanwhile). */
  private gathering = false
  private readonly stream: Stream
  private readonly limit: number
  private readonly onLost: (count: number, err: Error) => void

  constructor (stream: Stream, limit: number, onLost: (count: number, err: Error) => void) {
    this.stream = stream
    this.limit = limit
    this.onLost = onLost
  }

  /** false when the queue is full (the frame is not taken). */
  push (frame: Uint8Array): boolean {
    if (this.queue.length >= this.limit) return false
    this.queue.push(frame)
    if (!this.pumping) this.pump().catch(() => {})
    else if (this.gathering && this.queue.length >= FULL_CLIENT_BATCH) this.sendFullBatch()
    return true
  }

  /** While the writer gathers a turn's frames, a full batch goes at once (as relay.ts sendFullBatch). */
  private sendFullBatch (): void {
    const batch = takeBatch(this.queue, NO_HEADER)
    try {
      // false: the stream is full now; no more batches this turn (the queue's bound applies again),
      // the writer waits for it when its turn comes
      if (!this.stream.send(batch.bytes)) this.gathering = false
    } catch (err) {
      this.gathering = false
      const lost = this.queue.length + batch.count
      this.queue.length = 0
      this.onLost(lost, err as Error)
      this.stream.abort(err as Error)
    }
  }

  private async pump (): Promise<void> {
    this.pumping = true
    try {
      this.gathering = true
      await nextTurn()
      this.gathering = false
      while (this.queue.length > 0) {
        const batch = takeBatch(this.queue, NO_HEADER)
        let taken = false
        try {
          const more = this.stream.send(batch.bytes)
          taken = true
          if (!more) await waitWritable(this.stream, FRAME_HEADER.length + CLIENT_FRAME_LENGTH, CLIENT_DRAIN_TIMEOUT_MS)
        } catch (err) {
          // what the stream still held, what it refused and what waited behind it
          const lost = this.queue.length + (taken ? 0 : batch.count) + (Math.ceil(this.stream.writeBufferLength / (FRAME_HEADER.length + CLIENT_FRAME_LENGTH)) || (taken ? 1 : 0))
          this.queue.length = 0
          this.onLost(lost, err as Error)
          this.stream.abort(err as Error)
          return
        }
      }
    } finally {
      this.pumping = false
    }
  }
}

export interface ClientLinkServerInit {
  /** A client asked to send `packet` to the relay `address`. Decide and count there; never throws back. */
  onSubmit: (address: Uint8Array, packet: Uint8Array, client: Uint8Array) => void
  packetsPerSecond?: number
  burst?: number
  queueLength?: number
}

interface ClientEntry { stream: Stream, writer: FrameWriter }
interface Bucket { tokens: number, last: number }

/** The relay side: accepts client streams, takes their submissions, hands packets to connected clients. */
export class ClientLinkServer {
  private readonly node: Libp2p
  private readonly init: Required<ClientLinkServerInit>
  private readonly clients = new Map<string, ClientEntry>()
  private readonly buckets = new Map<string, Bucket>()
  private readonly log = logger('p2pchat:onion:clients')
  private running = false
  readonly stats: ClientLinkStats = { submitted: 0, delivered: 0, dropped: {}, streamErrors: 0 }

  constructor (node: Libp2p, init: ClientLinkServerInit) {
    this.node = node
    this.init = {
      packetsPerSecond: DEFAULT_CLIENT_PACKETS_PER_SECOND,
      burst: DEFAULT_CLIENT_BURST,
      queueLength: DEFAULT_CLIENT_QUEUE_LENGTH,
      ...init
    }
  }

  async start (): Promise<void> {
    if (this.running) return
    await this.node.handle(CLIENT_PROTOCOL, (stream, connection) => { this.accept(stream, connection) }, {
      maxInboundStreams: MAX_CLIENT_STREAMS_PER_CONNECTION
    })
    this.running = true
  }

  async stop (): Promise<void> {
    if (!this.running) return
    this.running = false
    await this.node.unhandle(CLIENT_PROTOCOL)
    for (const c of this.clients.values()) c.stream.abort(new Error('client link service stopped'))
    this.clients.clear()
  }

  /** Clients with a live stream now. */
  get size (): number { return this.clients.size }

  /** Is a client with this transport key connected? */
  has (client: Uint8Array): boolean { return this.clients.has(hex(client)) }

  private drop (reason: ClientDropReason, n = 1): void {
    this.stats.dropped[reason] = (this.stats.dropped[reason] ?? 0) + n
  }

  private accept (stream: Stream, connection: Connection): void {
    const key = transportKeyOf(connection.remotePeer)
    if (key == null) { this.drop('not-ed25519'); stream.abort(new Error('clients need an Ed25519 peer id')); return }
    const id = hex(key)
    const previous = this.clients.get(id)
    const entry: ClientEntry = {
      stream,
      writer: new FrameWriter(stream, this.init.queueLength, (lost) => { this.drop('send-failed', lost) })
    }
    this.clients.set(id, entry)
    if (previous != null) previous.stream.abort(new Error('replaced by a newer stream of the same client'))
    readFrames(stream, (frame) => { this.receive(frame, key, id) }).then(() => {
      // the client closed its side: close ours too, so its reader ends
      this.forget(id, entry)
      stream.close({ signal: AbortSignal.timeout(2_000) }).catch((err: Error) => { stream.abort(err) })
    }, (err: Error) => {
      this.forget(id, entry)
      if (err.name === 'InvalidMessageLengthError' || err.name === 'InvalidParametersError') this.drop('oversize-frame')
      else this.stats.streamErrors++
      this.log('a client stream ended: %s', err.message)
      stream.abort(err)
    })
  }

  private forget (id: string, entry: ClientEntry): void {
    if (this.clients.get(id) === entry) this.clients.delete(id)
  }

  private allow (id: string): boolean {
    const now = performance.now()
    let b = this.buckets.get(id)
    if (b == null) {
      if (this.buckets.size >= MAX_TRACKED_CLIENTS) this.buckets.clear()
      b = { tokens: this.init.burst, last: now }
      this.buckets.set(id, b)
    }
    b.tokens = Math.min(this.init.burst, b.tokens + (now - b.last) * this.init.packetsPerSecond / 1000)
    b.last = now
    if (b.tokens < 1) return false
    b.tokens -= 1
    return true
  }

  private receive (bytes: Uint8Array, client: Uint8Array, id: string): void {
    const frame = parseClientFrame(bytes)
    if (!frame.ok) { this.drop(frame.reason); return }
    if (frame.kind !== KIND_SUBMIT) { this.drop('kind'); return }
    if (!this.allow(id)) { this.drop('rate-limit'); return }
    this.stats.submitted++
    try {
      this.init.onSubmit(frame.address, frame.packet, client)
    } catch (err) {
      this.log.error('onSubmit threw: %s', (err as Error).message)
    }
  }

  /** Hands `packet` to the connected client `client` (its transport key). Never dials; false when dropped. */
  deliver (client: Uint8Array, packet: Uint8Array): boolean {
    const entry = this.clients.get(hex(client))
    if (entry == null) { this.drop('client-gone'); return false }
    if (!entry.writer.push(clientFrame(KIND_DELIVER, ZERO_ADDRESS, packet))) { this.drop('queue-full'); return false }
    this.stats.delivered++
    return true
  }
}

export interface ClientLinkInit {
  /** A packet the entry relay handed over (its last relay layer named this client). */
  onDeliver: (packet: Uint8Array) => void
  /** The stream ended (the relay went away, the connection dropped): reconnect or choose another. */
  onClose?: (err?: Error) => void
  queueLength?: number
  signal?: AbortSignal
}

/** The client side: one stream to the entry relay, packets out as SUBMIT, packets in as DELIVER. */
export class ClientLink {
  readonly relay: PeerId
  readonly stats = { submitted: 0, received: 0, dropped: {} as Partial<Record<'size' | 'kind' | 'queue-full' | 'send-failed', number>> }
  private readonly stream: Stream
  private readonly writer: FrameWriter
  private closed = false
  private readonly ended: Promise<void>

  private constructor (relay: PeerId, stream: Stream, init: ClientLinkInit) {
    this.relay = relay
    this.stream = stream
    this.writer = new FrameWriter(stream, init.queueLength ?? DEFAULT_CLIENT_QUEUE_LENGTH, (lost) => {
      this.stats.dropped['send-failed'] = (this.stats.dropped['send-failed'] ?? 0) + lost
    })
    this.ended = readFrames(stream, (bytes) => {
      const frame = parseClientFrame(bytes)
      if (!frame.ok || frame.kind !== KIND_DELIVER) {
        const reason = frame.ok ? 'kind' : frame.reason
        this.stats.dropped[reason] = (this.stats.dropped[reason] ?? 0) + 1
        return
      }
      this.stats.received++
      init.onDeliver(frame.packet)
    }).then(() => { this.finish(init) }, (err: Error) => { this.finish(init, err) })
  }

  /** Opens the client stream to `relay` (dialling it if needed). Throws when it cannot be reached. */
  static async open (node: Libp2p, relay: PeerId, init: ClientLinkInit): Promise<ClientLink> {
    const stream = await node.dialProtocol(relay, CLIENT_PROTOCOL, { signal: init.signal ?? AbortSignal.timeout(10_000) })
    return new ClientLink(relay, stream, init)
  }

  private finish (init: ClientLinkInit, err?: Error): void {
    if (this.closed) return
    this.closed = true
    init.onClose?.(err)
  }

  get isOpen (): boolean { return !this.closed }

  /** Queues `packet` for the relay `address`; false when the link is closed or its queue is full. */
  submit (address: Uint8Array, packet: Uint8Array): boolean {
    if (this.closed) return false
    if (!this.writer.push(clientFrame(KIND_SUBMIT, address, packet))) {
      this.stats.dropped['queue-full'] = (this.stats.dropped['queue-full'] ?? 0) + 1
      return false
    }
    this.stats.submitted++
    return true
  }

  /** Pauses or resumes reading deliveries (backpressure towards the relay). */
  pause (): void { pauseStream(this.stream) }
  resume (): void { resumeStream(this.stream) }

  /** Closes the link (the relay closes its side in turn); aborts it if that takes longer than 2 s. */
  async close (): Promise<void> {
    if (!this.closed) {
      try { await this.stream.close({ signal: AbortSignal.timeout(2_000) }) } catch { this.stream.abort(new Error('client link closed')) }
    }
    const timer = setTimeout(() => { this.stream.abort(new Error('client link closed')) }, 2_000)
    await this.ended
    clearTimeout(timer)
  }
}
