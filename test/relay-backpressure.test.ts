/**
 * Relay backpressure (protocols/onion/relay.ts): a next hop that stops reading makes the relay pause
 * its inbound streams, so senders wait instead of the relay dropping their packets; a next hop that
 * never drains holds the relay for at most maxHoldMs, after which its overflow is dropped and other
 * traffic through the relay flows again. Three real nodes on loopback, packets built for them.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Stream } from '@libp2p/interface'
import { createP2PNode } from '../node/create.ts'
import type { P2PNode } from '../node/create.ts'
import { ephemeralIdentity } from '../node/identity.ts'
import {
  addressFromPeerId, createPacket, DEFAULT_QUEUE_LENGTH, frameOf, generateOnionKey, ONION_PROTOCOL, OnionKeyRing, OnionService,
  readFrames
} from '../protocols/onion/index.ts'
import { waitFor, within } from './helpers/wait.ts'

const LOOPBACK = { listen: ['/ip4/127.0.0.1/tcp/0'], allow: ['/ip4/127.0.0.1/ipcidr/8'] }

/** A next hop that counts the frames it reads; `stalled` ones pause every inbound stream until released. */
class NextHop {
  node!: P2PNode
  received = 0
  stalled = true
  readonly streams: Stream[] = []

  async start (): Promise<this> {
    this.node = await createP2PNode({ privateKey: (await ephemeralIdentity()).privateKey, ...LOOPBACK })
    await this.node.handle(ONION_PROTOCOL, (stream) => {
      if (this.stalled) stream.pause()
      this.streams.push(stream)
      readFrames(stream, () => { this.received++ }).catch(() => {})
    })
    return this
  }

  release (): void {
    this.stalled = false
    for (const s of this.streams) s.resume()
  }
}

/** Writes every frame on one stream, waiting on the stream's flow control (as a relay or client does). */
async function sendAll (stream: Stream, frames: Uint8Array[]): Promise<void> {
  for (const f of frames) {
    if (!stream.send(f)) await stream.onDrain({ signal: AbortSignal.timeout(60_000) })
  }
}

describe('relay backpressure: a next hop that stops reading', { timeout: 180_000 }, () => {
  let sender: P2PNode
  let relayNode: P2PNode
  let relay: OnionService
  const ring = new OnionKeyRing({ replayCapacity: 100_000 })
  const hops: NextHop[] = []

  before(async () => {
    const id = await ephemeralIdentity()
    relayNode = await createP2PNode({ privateKey: id.privateKey, ...LOOPBACK })
    relay = new OnionService(relayNode, {
      keyRing: ring,
      onDeliver: () => {},
      packetsPerSecond: 1_000_000,
      burst: 1_000_000,
      maxHoldMs: 2_000
    })
    await relay.start()
    sender = await createP2PNode({ privateKey: (await ephemeralIdentity()).privateKey, ...LOOPBACK })
    await sender.dial(relayNode.getMultiaddrs()[0])
  })
  after(async () => {
    await relay.stop()
    await Promise.all([sender, relayNode, ...hops.map(h => h.node)].map(async n => await within(Promise.resolve(n.stop()), 10_000, 'node stop')))
  })

  function packetsTo (hop: NextHop, count: number): Uint8Array[] {
    const key = generateOnionKey()
    const path = [
      { address: addressFromPeerId(relayNode.peerId), onionKey: ring.current.publicKey },
      { address: addressFromPeerId(hop.node.peerId), onionKey: key.publicKey }
    ]
    return Array.from({ length: count }, (_, i) => frameOf(createPacket(path, new TextEncoder().encode(`packet ${i}`)).packet))
  }

  it('pauses its senders instead of dropping: three queues worth of packets all arrive once the hop reads again', async () => {
    const hop = await new NextHop().start()
    hops.push(hop)
    await relayNode.dial(hop.node.getMultiaddrs()[0])
    const count = 3 * DEFAULT_QUEUE_LENGTH
    const frames = packetsTo(hop, count)
    const stream = await sender.dialProtocol(relayNode.peerId, ONION_PROTOCOL)
    const sending = sendAll(stream, frames)

    await waitFor(() => relay.stats.held >= 1, () => `the relay to pause its inbound streams (queued ${relay.queuedPackets})`, 30_000)
    // while the hop reads nothing, the relay holds fewer than its queue and the rest waits upstream
    assert.ok(relay.queuedPackets <= DEFAULT_QUEUE_LENGTH, `queued ${relay.queuedPackets}`)
    assert.ok(relay.stats.received < count, `the relay read ${relay.stats.received} of ${count} while paused`)

    hop.release()
    await within(sending, 60_000, 'the sender writing every packet')
    await waitFor(() => hop.received === count, () => `all ${count} packets at the hop (got ${hop.received}, drops ${JSON.stringify(relay.stats.dropped)})`, 60_000)
    assert.deepEqual(relay.stats.dropped, {})
    assert.equal(relay.stats.holdTimeouts, 0)
    await stream.close()
  })

  it('a hop that never reads holds the relay for maxHoldMs at most; its overflow is dropped and other hops still get their packets', async () => {
    const stuck = await new NextHop().start()
    const healthy = await new NextHop().start()
    healthy.stalled = false
    hops.push(stuck, healthy)
    await relayNode.dial(stuck.node.getMultiaddrs()[0])
    await relayNode.dial(healthy.node.getMultiaddrs()[0])
    const heldBefore = relay.stats.held

    const toStuck = packetsTo(stuck, 2 * DEFAULT_QUEUE_LENGTH)
    const flood = await sender.dialProtocol(relayNode.peerId, ONION_PROTOCOL)
    const flooding = sendAll(flood, toStuck)
    await waitFor(() => relay.stats.held > heldBefore, 'the stuck hop to pause the relay', 30_000)

    const toHealthy = packetsTo(healthy, 50)
    const other = await sender.dialProtocol(relayNode.peerId, ONION_PROTOCOL)
    await within(sendAll(other, toHealthy), 30_000, 'the other sender writing')
    await waitFor(() => healthy.received === 50, () => `50 packets at the healthy hop (got ${healthy.received})`, 30_000)
    assert.ok(relay.stats.holdTimeouts >= 1, 'the stuck hop timed out its hold')
    await within(flooding, 30_000, 'the flooding sender writing (the relay reads again)')
    await waitFor(() => (relay.stats.dropped['queue-full'] ?? 0) > 0, () => `queue-full drops for the stuck hop (${JSON.stringify(relay.stats.dropped)})`, 30_000)
    assert.equal(stuck.received, 0)
    flood.abort(new Error('test over'))
    await other.close()
  })
})
