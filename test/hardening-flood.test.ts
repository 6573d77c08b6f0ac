/**
 * Flooding a relay: a peer sends packets far above the per-peer limit on one stream and opens
 * streams without end. It is throttled (rate-limit drops, refused streams); other users' messages
 * through the same relay all arrive; the relay's queues and heap stay bounded.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { after, before, describe, it } from 'node:test'
import { addressFromPeerId, MAX_INBOUND_STREAMS, PACKET_VERSION, ONION_PROTOCOL, OnionRouter, PACKET_SIZE, createPacket, onionKeyFor } from '../protocols/onion/index.ts'
import { TestNetwork } from './helpers/network.ts'
import type { TestPeer } from './helpers/network.ts'
import { waitFor } from './helpers/wait.ts'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void
function heapMb (): number { gc(); gc(); return process.memoryUsage().heapUsed / 2 ** 20 }

interface Node extends TestPeer { router: OnionRouter, messages: Uint8Array[] }

function frame (body: Uint8Array): Uint8Array {
  const len: number[] = []
  let n = body.length
  while (n >= 0x80) { len.push((n & 0x7f) | 0x80); n >>>= 7 }
  len.push(n)
  return new Uint8Array([...len, ...body])
}

describe('a flooding peer is throttled; other traffic through the relay still arrives', { timeout: 180_000 }, () => {
  const net = new TestNetwork()
  const nodes: Node[] = []
  const LIMIT = { packetsPerSecond: 300, burst: 300, queueLength: 256 }

  before(async () => {
    const peers = await net.start(6)
    for (const [i, peer] of peers.entries()) {
      const n = peer as Node
      n.messages = []
      n.router = new OnionRouter(peer.node, {
        directory: peer.directory, onionPrivate: peer.identity.onionPrivate, onionPublic: peer.identity.onionPublic,
        relay: i < 3, announceIntervalMs: 500, limits: LIMIT, onMessage: (p) => n.messages.push(p)
      })
      await n.router.start()
      nodes.push(n)
    }
    await Promise.all(nodes.slice(0, 3).map(async r => await r.router.announce()))
    await waitFor(() => nodes[3].router.relays.size === 3, 'alice to know the relays', 30_000)
  })
  after(async () => {
    await Promise.all(nodes.map(async n => await n.router.stop()))
    await net.teardown()
  })

  it('20,000 junk packets and endless streams from one peer; 100 messages from another all arrive', async () => {
    const [r1, r2, r3, alice, bob, flooder] = nodes
    const hop = (n: Node): { address: Uint8Array, onionKey: Uint8Array } => {
      const rec = alice.router.relays.list().find(k => k.record.peerId === n.node.peerId.toString())
      assert.ok(rec != null)
      return { address: addressFromPeerId(n.node.peerId), onionKey: onionKeyFor(rec.record)?.key ?? new Uint8Array() }
    }
    const path = [hop(r1), hop(r2), hop(r3), { address: addressFromPeerId(bob.node.peerId), onionKey: bob.identity.onionPublic }]
    const stats = r1.router.service.stats
    const heapBefore = heapMb()

    // the flood: well-formed-looking packets (right size, version, canonical alpha), as fast as the stream takes them
    const stream = await flooder.node.dialProtocol(r1.node.peerId, ONION_PROTOCOL)
    const junk = new Uint8Array(randomBytes(PACKET_SIZE))
    junk[0] = PACKET_VERSION
    junk[32] &= 0x7f
    const FLOOD = 20_000
    const flood = (async () => {
      for (let i = 0; i < FLOOD; i++) {
        junk[1 + (i % 31)] = i & 0xff
        if (!stream.send(frame(junk))) await stream.onDrain({ signal: AbortSignal.timeout(30_000) })
      }
    })()
    // and streams without end
    let opened = 0
    let refused = 0
    const streams = (async () => {
      for (let i = 0; i < 64; i++) {
        try {
          const s = await flooder.node.dialProtocol(r1.node.peerId, ONION_PROTOCOL, { signal: AbortSignal.timeout(5_000) })
          s.send(frame(junk))
          opened++
        } catch { refused++ }
      }
    })()

    // meanwhile alice's messages through the same relay
    const sent: string[] = []
    for (let i = 0; i < 100; i++) {
      const text = `alice ${i} ${randomBytes(4).toString('hex')}`
      sent.push(text)
      const { firstHop, packet } = createPacket(path, new TextEncoder().encode(text))
      alice.router.service.send(firstHop, packet)
    }
    await Promise.all([flood, streams])
    await waitFor(() => bob.messages.length >= 100, 'alice\'s 100 messages', 60_000)
    // the relay reads until the flood is consumed or the stream is cut; wait (bounded) until it stops reading
    let last = -1
    let still = 0
    for (let i = 0; i < 300 && stats.received < FLOOD && still < 15; i++) {
      still = stats.received === last ? still + 1 : 0
      last = stats.received
      await new Promise(resolve => setTimeout(resolve, 200))
    }
    const got = bob.messages.map(m => new TextDecoder().decode(m)).sort()
    assert.deepEqual(got, sent.sort(), 'every message of alice arrived once')
    const limited = stats.dropped['rate-limit'] ?? 0
    const heapAfter = heapMb()
    console.log(`flood: ${FLOOD} junk packets + 64 stream opens; rate-limited ${limited}, mac-dropped ${stats.dropped.mac ?? 0}; streams opened ${opened}, refused ${refused}; ` +
      `queued now ${r1.router.service.queuedPackets}; heap ${heapBefore.toFixed(1)} -> ${heapAfter.toFixed(1)} MB`)
    assert.ok(stats.received >= FLOOD, `the relay read the whole flood on one stream (${stats.received}; ${JSON.stringify(stats.dropped)}): a burst of frames must not end it`)
    assert.ok(limited >= FLOOD / 2, `most of the flood is rate-limited (${limited})`)
    assert.ok(refused > 0 || opened <= MAX_INBOUND_STREAMS + 1, `endless streams are refused (opened ${opened}, refused ${refused})`)
    assert.ok(r1.router.service.queuedPackets <= LIMIT.queueLength * 3)
    assert.ok(heapAfter - heapBefore < 40, `heap grew ${heapAfter - heapBefore} MB`)
    assert.equal(stats.dropped.internal ?? 0, 0)
  })
})
