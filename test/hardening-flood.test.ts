/**
 * Flooding a relay of protocol v2 (test/helpers/chat-network.ts: 4 RelayNodes, ChatNode users): a peer
 * sends packets far above the per-peer limit on one mix stream (`/onion-chat/2.0`) and opens mix streams
 * without end, while a client floods the relay's client link (`/onion-chat/2.0/client`) with SUBMITs.
 * Both are throttled: no more passes either limiter than its token bucket allows over the flood's duration
 * (burst + rate x seconds), the rest is counted as rate-limit drops, extra streams are refused; meanwhile
 * alice's messages to bob, which cross the flooded relay, are all stored and delivered; the relay's
 * queues and heap stay bounded.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { after, before, describe, it } from 'node:test'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { createClientNode } from '../node/create.ts'
import { ephemeralIdentity } from '../node/identity.ts'
import { CLIENT_PROTOCOL, clientFrame, DEFAULT_CLIENT_BURST, DEFAULT_CLIENT_PACKETS_PER_SECOND, KIND_SUBMIT, transportKeyOf } from '../protocols/onion/client-link.ts'
import { PACKET_SIZE, PACKET_VERSION } from '../protocols/onion/constants.ts'
import { MAX_INBOUND_STREAMS, ONION_PROTOCOL } from '../protocols/onion/relay.ts'
import { ChatNetwork, eventsOf } from './helpers/chat-network.ts'
import type { TestRelay, TestUser } from './helpers/chat-network.ts'
import { LOOPBACK_ALLOW } from './helpers/network.ts'
import { waitFor, within } from './helpers/wait.ts'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void
function heapMb (): number { gc(); gc(); return process.memoryUsage().heapUsed / 2 ** 20 }

function frame (body: Uint8Array): Uint8Array {
  const len: number[] = []
  let n = body.length
  while (n >= 0x80) { len.push((n & 0x7f) | 0x80); n >>>= 7 }
  len.push(n)
  return new Uint8Array([...len, ...body])
}

/** Waits (bounded) until `count()` stops growing for `quietRounds` checks, or reaches `target`. */
async function settled (count: () => number, target: number): Promise<void> {
  let last = -1
  let still = 0
  for (let i = 0; i < 300 && count() < target && still < 15; i++) {
    still = count() === last ? still + 1 : 0
    last = count()
    await new Promise(resolve => setTimeout(resolve, 200))
  }
}

describe('a flooding peer and a flooding client are throttled; messages through the relay still arrive', { timeout: 240_000 }, () => {
  const net = new ChatNetwork()
  const LIMIT = { packetsPerSecond: 300, burst: 300, queueLength: 256 }
  let relays: TestRelay[]
  const seen: Array<{ from: string, passed: boolean, at: number }> = []
  let alice: TestUser
  let bob: TestUser

  before(async () => {
    await net.bootstrap()
    // the flooded relay records when each of the flooder's packets passed or was refused by its limiter
    relays = [await net.relay({ limits: LIMIT, onOnionEvent: (e) => { if (e.type === 'in' || (e.type === 'drop' && e.reason === 'rate-limit')) seen.push({ from: e.from, passed: e.type === 'in', at: performance.now() }) } })]
    for (let i = 0; i < 3; i++) relays.push(await net.relay({ limits: LIMIT }))
    await net.waitForRelayGossip()
    alice = await net.user('alice')
    bob = await net.user('bob')
  })
  after(async () => { await net.teardown() })

  it('20,000 junk packets and endless mix streams from one peer, 20,000 SUBMITs from one client; 30 messages from alice all stored and delivered', async () => {
    const r1 = relays[0].relay
    const stats = r1.onion.stats
    const clientStats = r1.clients.stats
    const heapBefore = heapMb()
    const forwardedBefore = stats.forwarded + stats.delivered

    const flooder = await createClientNode({ privateKey: (await ephemeralIdentity()).privateKey, allow: LOOPBACK_ALLOW })
    const floodClient = await createClientNode({ privateKey: (await ephemeralIdentity()).privateKey, allow: LOOPBACK_ALLOW })
    try {
      await flooder.dial(multiaddr(r1.addrs()[0]), { signal: AbortSignal.timeout(10_000) })
      await floodClient.dial(multiaddr(r1.addrs()[0]), { signal: AbortSignal.timeout(10_000) })
      const relayPeer = peerIdFromString(r1.peerId)

      // well-formed-looking packets (right size, version, canonical alpha), as fast as the streams take them
      const junk = new Uint8Array(randomBytes(PACKET_SIZE))
      junk[0] = PACKET_VERSION
      junk[32] &= 0x7f
      const FLOOD = 20_000
      const receivedBefore = stats.received
      const submittedBefore = clientStats.submitted + (clientStats.dropped['rate-limit'] ?? 0)
      const clientBefore = clientStats.submitted
      const floodStarted = performance.now()
      const mix = await flooder.dialProtocol(relayPeer, ONION_PROTOCOL, { signal: AbortSignal.timeout(10_000) })
      const link = await floodClient.dialProtocol(relayPeer, CLIENT_PROTOCOL, { signal: AbortSignal.timeout(10_000) })
      const self = transportKeyOf(r1.node.peerId) ?? new Uint8Array(32)
      const floodMix = (async () => {
        for (let i = 0; i < FLOOD; i++) {
          junk[1 + (i % 31)] = i & 0xff
          if (!mix.send(frame(junk))) await mix.onDrain({ signal: AbortSignal.timeout(30_000) })
        }
      })()
      const floodLink = (async () => {
        for (let i = 0; i < FLOOD; i++) {
          const p = junk.slice()
          p[40] = i & 0xff
          if (!link.send(clientFrame(KIND_SUBMIT, self, p))) await link.onDrain({ signal: AbortSignal.timeout(30_000) })
        }
      })()
      // and mix streams without end
      let opened = 0
      let refused = 0
      const streams = (async () => {
        for (let i = 0; i < 64; i++) {
          try {
            const s = await flooder.dialProtocol(relayPeer, ONION_PROTOCOL, { signal: AbortSignal.timeout(5_000) })
            s.send(frame(junk))
            opened++
          } catch { refused++ }
        }
      })()

      // meanwhile alice's messages
      const sent: string[] = []
      for (let i = 0; i < 30; i++) {
        const text = `alice ${i} ${randomBytes(4).toString('hex')}`
        sent.push(text)
        alice.chat.send('bob', text)
      }
      await Promise.all([floodMix, floodLink, streams])
      await waitFor(() => eventsOf(alice, 'delivered').length >= 30, () => `alice's 30 receipts (${eventsOf(alice, 'delivered').length}; relay ${JSON.stringify(stats)})`, 120_000)
      await settled(() => stats.received - receivedBefore, FLOOD)
      await settled(() => clientStats.submitted + (clientStats.dropped['rate-limit'] ?? 0) - submittedBefore, FLOOD)

      const floodSeconds = (performance.now() - floodStarted) / 1000
      const fromFlooder = seen.filter(e => e.from === flooder.peerId.toString())
      const passed = fromFlooder.filter(e => e.passed).length
      const mixSeconds = fromFlooder.length > 1 ? ((fromFlooder.at(-1)?.at ?? 0) - (fromFlooder[0]?.at ?? 0)) / 1000 : 0
      const got = eventsOf(bob, 'message').map(m => m.text).sort()
      assert.deepEqual(got, sent.sort(), 'every message of alice arrived once')
      assert.ok(stats.forwarded + stats.delivered - forwardedBefore >= 30, 'the flooded relay carried chat traffic meanwhile')
      const limited = stats.dropped['rate-limit'] ?? 0
      const clientLimited = clientStats.dropped['rate-limit'] ?? 0
      const heapAfter = heapMb()
      console.log(`flood: ${FLOOD} junk packets in ${mixSeconds.toFixed(1)} s + 64 stream opens; passed the limiter ${passed}, rate-limited ${limited}, mac-dropped ${stats.dropped.mac ?? 0}; streams opened ${opened}, refused ${refused}; ` +
        `client link: ${clientStats.submitted} submitted, ${clientLimited} rate-limited; queued now ${r1.onion.queuedPackets}; heap ${heapBefore.toFixed(1)} -> ${heapAfter.toFixed(1)} MB`)
      assert.ok(stats.received - receivedBefore >= FLOOD, `the relay read the whole flood on one stream (${stats.received - receivedBefore}; ${JSON.stringify(stats.dropped)}): a burst of frames must not end it`)
      // the token bucket: over the flood's duration at most burst + rate x seconds pass; the rest is dropped
      // (a bound, not a share: on a loaded machine the flood is slower and more of it may pass)
      const mixAllowance = LIMIT.burst + LIMIT.packetsPerSecond * mixSeconds
      assert.ok(fromFlooder.length >= FLOOD, `every frame of the mix flood met the limiter (${fromFlooder.length})`)
      assert.ok(passed <= mixAllowance * 1.05 + 10, `the mix flood passed ${passed} packets in ${mixSeconds.toFixed(1)} s, at most ${mixAllowance.toFixed(0)} allowed`)
      assert.ok(limited > 0, 'the mix flood was rate-limited')
      // the client link: its own bucket (DEFAULT_CLIENT_PACKETS_PER_SECOND, burst DEFAULT_CLIENT_BURST); alice's and bob's
      // own submissions through this relay (if it is their entry) count in `submitted` too, hence the margin
      const clientAllowance = DEFAULT_CLIENT_BURST + DEFAULT_CLIENT_PACKETS_PER_SECOND * floodSeconds + 1_000
      assert.ok(clientStats.submitted - clientBefore <= clientAllowance, `the client flood passed ${clientStats.submitted - clientBefore} in ${floodSeconds.toFixed(1)} s, at most ${clientAllowance.toFixed(0)} allowed`)
      assert.ok(clientLimited > 0, 'the client flood was rate-limited')
      assert.ok(refused > 0 || opened <= MAX_INBOUND_STREAMS + 1, `endless streams are refused (opened ${opened}, refused ${refused})`)
      assert.ok(r1.onion.queuedPackets <= LIMIT.queueLength * 3)
      assert.ok(heapAfter - heapBefore < 60, `heap grew ${heapAfter - heapBefore} MB`)
      assert.equal(stats.dropped.internal ?? 0, 0)
    } finally {
      await within(Promise.resolve(flooder.stop()), 10_000, 'flooder stop')
      await within(Promise.resolve(floodClient.stop()), 10_000, 'flood client stop')
    }
  })
})
