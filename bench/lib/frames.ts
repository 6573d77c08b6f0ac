/**
 * The bench's own small protocols on loopback, beside `/onion-chat/1.0`: a counting sink and a plain
 * forwarder. Both read the same frames as the relay (unsigned-varint length, then PACKET_SIZE bytes)
 * through the relay's own frame reader, on the same kind of long-lived stream, with no crypto.
 */
import type { Libp2p, PeerId, Stream } from '@libp2p/interface'
import { PACKET_SIZE } from '../../protocols/onion/constants.ts'
import { DEFAULT_QUEUE_LENGTH, MAX_BATCH_BYTES, nextTurn, pauseStream, readFrames as readRelayFrames, resumeStream, takeBatch, varint, waitWritable } from '../../protocols/onion/relay.ts'

/** The plain forwarder: frames in, the same frames out to one fixed next host. */
export const PLAIN_FORWARD_PROTOCOL = '/p2pchat-bench/plain-forward/1.0'
/** Where the plain forwarder writes: the sink counts these frames like onion ones. */
export const PLAIN_SINK_PROTOCOL = '/p2pchat-bench/plain-sink/1.0'
/** A direct one-hop message between two users (the end-to-end baseline). */
export const DIRECT_PROTOCOL = '/p2pchat-bench/direct/1.0'

export const FRAME_HEADER = varint(PACKET_SIZE)
const FRAME_LENGTH = FRAME_HEADER.length + PACKET_SIZE
const NO_HEADER = new Uint8Array(0)

/**
 * Reads frames from `stream` exactly as the relay does (protocols/onion/relay.ts readFrames) and calls
 * `onFrame` for each; resolves when the stream ends or fails (the bench tears streams down at the end
 * of each phase).
 */
export async function readFrames (stream: Stream, onFrame: (frame: Uint8Array) => void): Promise<void> {
  await readRelayFrames(stream, onFrame).catch(() => {})
}

/**
 * A sender's loop: writes whole frames (header included) until `frame` returns undefined, on one
 * long-lived stream (every stream it opens is pushed to `opened`). A stream the far end resets (a relay that cannot keep up may reset a stream whose
 * read buffer overflows) is counted in `resets` and replaced; the frames in flight are lost.
 * `batch` frames go in one send (at most MAX_BATCH_BYTES), as a saturated upstream relay writes its
 * queue (protocols/onion/relay.ts); 1 writes every frame on its own.
 * A stream accepts writes into its buffer without a macrotask in between, so the loop yields to the
 * event loop every few sends; otherwise it would starve the socket and its own stop timer.
 */
export async function pumpFrames (open: () => Promise<Stream>, frame: () => Uint8Array | undefined, resets: { count: number }, opened: Stream[], batch = 1): Promise<void> {
  const perSend = Math.max(1, Math.min(batch, Math.floor(MAX_BATCH_BYTES / FRAME_LENGTH)))
  const pending: Uint8Array[] = []
  while (true) {
    let stream: Stream
    try {
      stream = await open()
      opened.push(stream)
    } catch {
      resets.count++
      if (resets.count > 1000) return
      await new Promise(resolve => setTimeout(resolve, 50))
      continue
    }
    try {
      let sinceYield = 0
      while (true) {
        pending.length = 0
        while (pending.length < perSend) {
          const f = frame()
          if (f === undefined) break
          pending.push(f)
        }
        // left open: closing right away can lose frames the far end has not read yet; the caller
        // closes `opened` once the far end has read everything
        if (pending.length === 0) return
        sinceYield += pending.length
        const { bytes } = takeBatch(pending, NO_HEADER)
        if (!stream.send(bytes)) await waitWritable(stream, FRAME_LENGTH, DRAIN_TIMEOUT_MS)
        if (sinceYield >= 16) { sinceYield = 0; await nextTurn() }
      }
    } catch (err) {
      resets.count++
      stream.abort(err as Error)
    }
  }
}

/** A sender whose stream does not drain within this gives it up and opens another. */
export const DRAIN_TIMEOUT_MS = 5_000
/**
 * The baseline forwarder: what OnionService does around processPacket (read frames, queue per
 * neighbour with the same bound, one long-lived outbound stream written in the same batches, wait on
 * drain), without the onion.
 */
export class PlainForwarder {
  private readonly node: Libp2p
  private readonly queue: Uint8Array[] = []
  private next: PeerId | undefined
  private out: Stream | undefined
  private pumping = false
  private readonly inbound = new Set<Stream>()
  private paused = false
  received = 0
  forwarded = 0
  dropped = 0

  constructor (node: Libp2p) { this.node = node }

  async start (next: PeerId): Promise<void> {
    this.next = next
    await this.node.handle(PLAIN_FORWARD_PROTOCOL, (stream) => {
      this.inbound.add(stream)
      if (this.paused) pauseStream(stream)
      readFrames(stream, (frame) => { this.receive(frame) }).finally(() => this.inbound.delete(stream)).catch(() => {})
    }, { maxInboundStreams: 16 })
  }

  private receive (frame: Uint8Array): void {
    this.received++
    if (frame.length !== PACKET_SIZE) { this.dropped++; return }
    if (this.queue.length >= DEFAULT_QUEUE_LENGTH) { this.dropped++; return }
    this.queue.push(frame)
    // the relay's backpressure (OnionService.hold), so both forwarders meet the same flow control
    if (!this.paused && this.queue.length >= DEFAULT_QUEUE_LENGTH / 2) this.setPaused(true)
    if (!this.pumping) this.pump().catch(() => {})
  }

  private async pump (): Promise<void> {
    this.pumping = true
    try {
      // as the relay's pump: the frames read in this turn go out in one send
      await nextTurn()
      while (this.queue.length > 0 && this.next != null) {
        if (this.out == null || this.out.status !== 'open') {
          this.out = await this.node.dialProtocol(this.next, PLAIN_SINK_PROTOCOL)
        }
        const { bytes, count } = takeBatch(this.queue, FRAME_HEADER)
        if (this.paused && this.queue.length <= DEFAULT_QUEUE_LENGTH / 4) this.setPaused(false)
        if (!this.out.send(bytes)) await waitWritable(this.out, FRAME_LENGTH, DRAIN_TIMEOUT_MS)
        this.forwarded += count
      }
    } finally {
      this.pumping = false
      if (this.paused && this.queue.length <= DEFAULT_QUEUE_LENGTH / 4) this.setPaused(false)
    }
  }

  private setPaused (paused: boolean): void {
    this.paused = paused
    for (const s of this.inbound) {
      if (paused) pauseStream(s)
      else resumeStream(s)
    }
  }
}
