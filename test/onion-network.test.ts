/**
 * Onion routing of protocol v2 on an in-process loopback network (test/helpers/chat-network.ts): a
 * bootstrap node and five RelayNodes, each on its own /16, every relay's mix events recorded.
 *
 * First, raw clients (a client libp2p node, a client link to an entry relay, the onion client of
 * protocols/onion/client.ts) send requests whose paths they know, so what each relay saw can be checked
 * against those paths exactly: packet sizes, no plaintext, only path neighbours, the client only as
 * 'client' at its entry; a reply block used twice; tampered, replayed and malformed input; packets for a
 * peer that is not a relay ('unknown-relay') or for a client that is not connected ('client-gone'), and
 * no dial to a user either way. Then two ChatNodes exchange many messages over the same relays, and the
 * same properties hold for the traffic the chat layer makes (deposits, pushes, receipts, stocking).
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { createClientNode } from '../node/create.ts'
import type { ClientNode } from '../node/create.ts'
import { ephemeralIdentity } from '../node/identity.ts'
import { CLIENT_FRAME_LENGTH, CLIENT_PROTOCOL, ClientLink, clientFrame, KIND_DELIVER, transportKeyOf } from '../protocols/onion/client-link.ts'
import { OnionClient } from '../protocols/onion/client.ts'
import { GAMMA_OFFSET, HEADER_LENGTH, PACKET_SIZE, PACKET_VERSION } from '../protocols/onion/constants.ts'
import { chooseRelay, pathRelays } from '../protocols/onion/paths.ts'
import type { PathRelay } from '../protocols/onion/paths.ts'
import { ONION_PROTOCOL } from '../protocols/onion/relay.ts'
import type { OnionEvent } from '../protocols/onion/relay.ts'
import { encodeServiceBody, SERVICE_DROP } from '../protocols/onion/service-body.ts'
import { createPacket, generateOnionKey } from '../protocols/onion/sphinx.ts'
import { ChatNetwork, eventsOf } from './helpers/chat-network.ts'
import type { TestRelay, TestUser } from './helpers/chat-network.ts'
import { LOOPBACK_ALLOW } from './helpers/network.ts'
import { waitFor, within } from './helpers/wait.ts'

const RELAYS = 5

interface Observed { relay: TestRelay, events: OnionEvent[] }

interface RawClient {
  node: ClientNode
  peerId: string
  key: Uint8Array
  entry: PathRelay
  link: ClientLink
  client: OnionClient
  replies: Uint8Array[]
}

function contains (haystack: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(haystack.buffer, haystack.byteOffset, haystack.byteLength).indexOf(Buffer.from(needle)) !== -1
}

function varintFrame (body: Uint8Array): Uint8Array {
  const len: number[] = []
  let n = body.length
  while (n >= 0x80) { len.push((n & 0x7f) | 0x80); n >>>= 7 }
  len.push(n)
  return new Uint8Array([...len, ...body])
}

describe('onion routing of protocol v2: bootstrap, 5 relays on their own /16s, clients through entry relays', { timeout: 300_000 }, () => {
  const net = new ChatNetwork()
  const observed: Observed[] = []
  const relayIds = new Set<string>()
  const byId = (id: string): Observed => {
    const o = observed.find(x => x.relay.relay.peerId === id)
    assert.ok(o != null, `relay ${id}`)
    return o
  }
  const relays = (): PathRelay[] => pathRelays(observed[0].relay.relay.relays.list())
  const dropCover = (): number => observed.reduce((n, o) => n + o.relay.relay.services.stats.dropCover, 0)
  const clearEvents = (): void => { for (const o of observed) o.events.length = 0 }
  const summary = (): string => observed.map(o => `${o.relay.relay.peerId.slice(-6)} ${JSON.stringify(o.relay.relay.onion.stats)} clients ${JSON.stringify(o.relay.relay.clients.stats)}`).join('; ')

  before(async () => {
    await net.bootstrap()
    for (let i = 0; i < RELAYS; i++) {
      const events: OnionEvent[] = []
      // attest: false: the relays' own loop probes (node/admission.ts) are traffic no client path explains
      const relay = await net.relay({ attest: false, onOnionEvent: (e) => { events.push(e) } })
      observed.push({ relay, events })
      relayIds.add(relay.relay.peerId)
    }
    await net.waitForRelayGossip()
    assert.equal(new Set(net.relays.map(r => r.relay.addrs()[0].split('/')[2].split('.').slice(0, 2).join('.'))).size, RELAYS, 'each relay on its own /16')
  })
  after(async () => { await net.teardown() })

  describe('raw clients whose paths are known', () => {
    const clients: RawClient[] = []

    async function rawClient (entry: TestRelay): Promise<RawClient> {
      const node = await createClientNode({ privateKey: (await ephemeralIdentity()).privateKey, allow: LOOPBACK_ALLOW })
      await node.dial(multiaddr(`${entry.relay.addrs()[0]}`), { signal: AbortSignal.timeout(10_000) })
      const entryRelay = relays().find(r => r.peerId === entry.relay.peerId)
      assert.ok(entryRelay != null)
      const replies: Uint8Array[] = []
      let client: OnionClient | undefined
      const link = await ClientLink.open(node, peerIdFromString(entry.relay.peerId), { onDeliver: (p) => { client?.deliver(p) } })
      const key = transportKeyOf(node.peerId)
      assert.ok(key != null)
      client = new OnionClient({ self: key, relays, entry: () => ({ relay: entryRelay, submit: (a, p) => link.submit(a, p) }) })
      const c = { node, peerId: node.peerId.toString(), key, entry: entryRelay, link, client, replies }
      clients.push(c)
      await waitFor(() => entry.relay.clients.has(key), 'the entry relay to hold the client link', 10_000)
      return c
    }

    let a: RawClient
    let b: RawClient

    before(async () => {
      a = await rawClient(observed[0].relay)
      b = await rawClient(observed[1].relay)
    })
    after(async () => {
      for (const c of clients) {
        await c.link.close().catch(() => {})
        await within(Promise.resolve(c.node.stop()), 10_000, 'client node stop').catch(() => {})
      }
    })

    it('200 requests over entry > mix > mix > final: 3072 bytes on every relay link, no plaintext, each relay sees only its path neighbours and the client only as \'client\' at its entry', async () => {
      clearEvents()
      const before = dropCover()
      const sent: Array<{ path: string[], marker: Uint8Array }> = []
      for (let i = 0; i < 200; i++) {
        const final = chooseRelay(relays(), [a.entry.peerId])
        assert.ok(final != null)
        const marker = new Uint8Array(randomBytes(48))
        const { path } = a.client.send(final, SERVICE_DROP, marker)
        assert.equal(path.length, 3)
        assert.equal(new Set([a.entry.peerId, ...path]).size, 4, 'entry, two mixes and the final relay are distinct')
        sent.push({ path, marker })
      }
      await waitFor(() => dropCover() === before + 200, () => `200 requests at their final relays (got ${dropCover() - before}); ${summary()}`, 120_000)

      // who may hand whom a packet, per relay: entry 'client' > m1; m1 entry > m2; m2 m1 > final; final: in from m2
      const forwards = new Map<string, Set<string>>()
      const ins = new Map<string, Set<string>>()
      const allow = (m: Map<string, Set<string>>, at: string, what: string): void => { m.set(at, (m.get(at) ?? new Set()).add(what)) }
      for (const { path: [m1, m2, final] } of sent) {
        allow(forwards, a.entry.peerId, `client>${m1}`)
        allow(forwards, m1, `${a.entry.peerId}>${m2}`)
        allow(forwards, m2, `${m1}>${final}`)
        allow(ins, m1, a.entry.peerId)
        allow(ins, m2, m1)
        allow(ins, final, m2)
      }
      let nForward = 0
      let nIn = 0
      for (const o of observed) {
        const me = o.relay.relay.peerId
        for (const e of o.events) {
          assert.notEqual(e.type, 'drop', `relay ${me} dropped a good packet: ${JSON.stringify(e)}`)
          if (e.type === 'in') {
            nIn++
            assert.equal(e.packet.length, PACKET_SIZE)
            assert.ok(ins.get(me)?.has(e.from), `${me} got a packet from ${e.from}, not its neighbour on any path`)
            for (const s of sent) assert.ok(!contains(e.packet, s.marker.subarray(0, 24)), 'no plaintext on an inbound link')
          }
          if (e.type === 'forward') {
            nForward++
            assert.equal(e.size, PACKET_SIZE)
            assert.equal(e.packet.length, PACKET_SIZE)
            assert.ok(forwards.get(me)?.has(`${e.from}>${e.to}`), `${me} forwarded ${e.from} > ${e.to}, not a hop of any path`)
            assert.ok(relayIds.has(e.to), 'forwarded to relays only')
            for (const s of sent) assert.ok(!contains(e.packet, s.marker.subarray(0, 24)), 'no plaintext in a forwarded packet')
          }
          if (e.type === 'in' || e.type === 'forward') assert.notEqual(e.from, a.peerId, 'the client is never named by its peer id')
        }
      }
      assert.equal(nForward, 600, 'entry, first mix and second mix each forward every request once')
      assert.equal(nIn, 600, 'first mix, second mix and final relay each read every request once')
    })

    it('a reply through a client\'s reply block reaches it over the entry relay\'s client link; the same block used twice is refused at its first hop', async () => {
      const made = a.client.replyBlock((payload) => { a.replies.push(payload) })
      assert.equal(made.path.at(-1), a.entry.peerId, 'a reply block ends at the entry relay, then the client')
      const firstHop = byId(made.path[0]).relay.relay
      const replaysBefore = firstHop.onion.stats.dropped.replay ?? 0
      const answer = new TextEncoder().encode('an answer through the block')
      b.client.replyThrough(made.surb, answer)
      await waitFor(() => a.replies.length === 1, () => `the reply over ${made.path.join(' > ')}; ${summary()}`, 30_000)
      assert.deepEqual(a.replies[0], answer)
      b.client.replyThrough(made.surb, new TextEncoder().encode('again'))
      await waitFor(() => (firstHop.onion.stats.dropped.replay ?? 0) === replaysBefore + 1, 'the second use to be dropped at the first hop', 20_000)
      assert.equal(a.replies.length, 1)
    })

    it('flipped header bits, a replay, garbage, short and oversize frames (mix and client link) are counted drops, and forwarding goes on', async () => {
      const entry = byId(a.entry.peerId).relay.relay
      const [m, final] = relays().filter(r => r.peerId !== a.entry.peerId)
      const path = [a.entry, m, final].map(r => ({ address: r.address, onionKey: r.onionKey }))
      const body = (text: string): Uint8Array => encodeServiceBody({ service: SERVICE_DROP, replyBlock: undefined, request: new TextEncoder().encode(text) })
      const dropped = (): number => Object.values(entry.onion.stats.dropped).reduce((n: number, v) => n + (v ?? 0), 0)

      // every header region: version, alpha, beta, gamma; submitted to the entry relay as first hop
      for (const pos of [0, 1, 17, 32, 33, 100, GAMMA_OFFSET - 1, GAMMA_OFFSET, GAMMA_OFFSET + 11, HEADER_LENGTH - 1]) {
        const { firstHop, packet } = createPacket(path, body(`flip ${pos}`))
        packet[pos] ^= 0x04
        const before = dropped()
        assert.ok(a.link.submit(firstHop, packet))
        await waitFor(() => dropped() === before + 1, `the packet flipped at ${pos} to be dropped at the first hop`, 10_000)
      }

      const covered = dropCover()
      const once = createPacket(path, body('once'))
      a.link.submit(once.firstHop, once.packet.slice())
      await waitFor(() => dropCover() === covered + 1, 'the original packet at its final relay', 10_000)
      const replays = entry.onion.stats.dropped.replay ?? 0
      a.link.submit(once.firstHop, once.packet.slice())
      await waitFor(() => (entry.onion.stats.dropped.replay ?? 0) === replays + 1, 'the replay to be dropped', 10_000)

      // raw frames on a mix stream of our own
      const stream = await a.node.dialProtocol(peerIdFromString(entry.peerId), ONION_PROTOCOL, { signal: AbortSignal.timeout(10_000) })
      const stats = entry.onion.stats.dropped
      const garbage = new Uint8Array(randomBytes(PACKET_SIZE))
      garbage[0] = PACKET_VERSION // the right version, so it is the MAC that refuses it
      garbage[32] &= 0x7f // a canonical point
      const mac = stats.mac ?? 0
      const size = stats.size ?? 0
      stream.send(varintFrame(garbage))
      stream.send(varintFrame(new Uint8Array(100)))
      stream.send(varintFrame(new Uint8Array(PACKET_SIZE + 1)))
      await waitFor(() => (stats.mac ?? 0) === mac + 1 && (stats.size ?? 0) === size + 2, 'garbage, short and long frames to be counted', 10_000)
      const oversize = stats['oversize-frame'] ?? 0
      stream.send(varintFrame(new Uint8Array(PACKET_SIZE * 4)))
      await waitFor(() => (stats['oversize-frame'] ?? 0) === oversize + 1, 'the oversize frame to be counted', 10_000)

      // raw frames on a client link of another client node (a second stream of a's would replace a's link)
      const junkNode = await createClientNode({ privateKey: (await ephemeralIdentity()).privateKey, allow: LOOPBACK_ALLOW })
      try {
        await junkNode.dial(multiaddr(entry.addrs()[0]), { signal: AbortSignal.timeout(10_000) })
        const cs = await junkNode.dialProtocol(peerIdFromString(entry.peerId), CLIENT_PROTOCOL, { signal: AbortSignal.timeout(10_000) })
        const cstats = entry.clients.stats.dropped
        const kinds = cstats.kind ?? 0
        const sizes = cstats.size ?? 0
        cs.send(clientFrame(KIND_DELIVER, new Uint8Array(32), once.packet)) // a DELIVER the wrong way
        cs.send(varintFrame(new Uint8Array(CLIENT_FRAME_LENGTH - 1)))
        await waitFor(() => (cstats.kind ?? 0) === kinds + 1 && (cstats.size ?? 0) === sizes + 1, 'a wrong-way and a short client frame to be counted', 10_000)
        const over = cstats['oversize-frame'] ?? 0
        cs.send(varintFrame(new Uint8Array(CLIENT_FRAME_LENGTH * 4)))
        await waitFor(() => (cstats['oversize-frame'] ?? 0) === over + 1, 'the oversize client frame to be counted', 10_000)
      } finally {
        await within(Promise.resolve(junkNode.stop()), 10_000, 'junk node stop')
      }

      const good = createPacket(path, body('still working'))
      const coveredNow = dropCover()
      assert.ok(a.link.submit(good.firstHop, good.packet))
      await waitFor(() => dropCover() === coveredNow + 1, 'a good packet after the junk', 10_000)
    })

    it('a RELAY layer naming a peer that is no relay is dropped (unknown-relay), a CLIENT layer for an absent client is client-gone, and the relay dials neither', async () => {
      const entry = byId(a.entry.peerId).relay.relay
      // a user-like peer the relay could dial: it listens, and it connected once (so the relay has its address)
      const user = await createClientNode({ privateKey: (await ephemeralIdentity()).privateKey, listen: ['/ip4/127.0.0.1/tcp/0'], allow: LOOPBACK_ALLOW })
      const inbound: string[] = []
      user.addEventListener('connection:open', (e) => { if (e.detail.direction === 'inbound') inbound.push(e.detail.remotePeer.toString()) })
      try {
        await user.dial(multiaddr(entry.addrs()[0]), { signal: AbortSignal.timeout(10_000) })
        await waitFor(async () => (await entry.node.peerStore.get(user.peerId).catch(() => undefined))?.addresses.length !== undefined, 'the relay to learn the user\'s address', 10_000)
        await user.hangUp(peerIdFromString(entry.peerId))
        await waitFor(() => entry.node.getConnections(user.peerId).length === 0, 'the connection to close', 10_000)
        const userKey = transportKeyOf(user.peerId)
        assert.ok(userKey != null)
        const unknown = entry.onion.stats.dropped['unknown-relay'] ?? 0
        const gone = entry.clients.stats.dropped['client-gone'] ?? 0
        const asRelay = createPacket([{ address: a.entry.address, onionKey: a.entry.onionKey }, { address: userKey, onionKey: generateOnionKey().publicKey }], new Uint8Array(16))
        const asClient = createPacket([{ address: a.entry.address, onionKey: a.entry.onionKey }, { address: userKey, onionKey: generateOnionKey().publicKey, client: true }], new Uint8Array(16))
        assert.ok(a.link.submit(asRelay.firstHop, asRelay.packet))
        assert.ok(a.link.submit(asClient.firstHop, asClient.packet))
        await waitFor(() => (entry.onion.stats.dropped['unknown-relay'] ?? 0) === unknown + 1 && (entry.clients.stats.dropped['client-gone'] ?? 0) === gone + 1,
          () => `the drops (${summary()})`, 10_000)
        // the relay handled later packets from the same link, so it is past both: still no dial
        const covered = dropCover()
        const final = chooseRelay(relays(), [a.entry.peerId])
        assert.ok(final != null)
        a.client.send(final, SERVICE_DROP, new Uint8Array(4))
        await waitFor(() => dropCover() === covered + 1, 'a later packet', 10_000)
        assert.deepEqual(inbound, [], 'the relay never dialled the user')
        assert.equal(entry.node.getConnections(user.peerId).length, 0)
      } finally {
        await within(Promise.resolve(user.stop()), 10_000, 'user node stop')
      }
    })
  })

  describe('two ChatNodes over the same relays', () => {
    let alice: TestUser
    let bob: TestUser
    const MESSAGES = 20

    before(async () => {
      clearEvents()
      alice = await net.user('alice')
      bob = await net.user('bob')
    })

    it(`${MESSAGES} messages each way are stored and delivered; every packet the relays handle is 3072 bytes, none carries a text, and each relay knows users only as its own clients`, async () => {
      const texts: string[] = []
      for (let i = 0; i < MESSAGES; i++) {
        const ta = `from alice ${i} ${randomBytes(8).toString('hex')}`
        const tb = `from bob ${i} ${randomBytes(8).toString('hex')}`
        alice.chat.send('bob', ta)
        bob.chat.send('alice', tb)
        texts.push(ta, tb)
      }
      await waitFor(() => eventsOf(alice, 'delivered').length >= MESSAGES && eventsOf(bob, 'delivered').length >= MESSAGES,
        () => `all receipts (alice ${eventsOf(alice, 'delivered').length}, bob ${eventsOf(bob, 'delivered').length}); ${summary()}`, 180_000)
      assert.deepEqual(eventsOf(bob, 'message').map(m => m.text).sort(), texts.filter(t => t.startsWith('from alice')).sort())
      assert.deepEqual(eventsOf(alice, 'message').map(m => m.text).sort(), texts.filter(t => t.startsWith('from bob')).sort())

      const users = [alice, bob]
      const userIds = new Set(users.map(u => u.chat.peerId))
      const needles = texts.map(t => Buffer.from(t.slice(0, 16)))
      let packets = 0
      for (const o of observed) {
        const me = o.relay.relay.peerId
        const mine = users.filter(u => u.chat.entry.relay?.peerId === me).map(u => Buffer.from(transportKeyOf(u.chat.node.peerId) ?? []).toString('hex'))
        for (const e of o.events) {
          if (e.type === 'in' || e.type === 'forward' || e.type === 'to-client') {
            packets++
            assert.equal(e.packet.length, PACKET_SIZE)
            for (const n of needles) assert.ok(!contains(e.packet, n), 'no text in a packet')
            assert.ok(relayIds.has(e.from) || e.from === 'client', `${me} names a sender ${e.from} that is neither a relay nor 'client'`)
            assert.ok(!userIds.has(e.from))
          }
          if (e.type === 'forward') assert.ok(relayIds.has(e.to) && !userIds.has(e.to), `${me} forwarded to ${e.to}, not a relay`)
          if (e.type === 'to-client') assert.ok(mine.includes(Buffer.from(e.client).toString('hex')), `${me} handed a packet to a client that is not its own`)
        }
        // connections: relays, the bootstrap node, and its own clients only
        for (const c of o.relay.relay.node.getConnections()) {
          const id = c.remotePeer.toString()
          if (relayIds.has(id) || id === net.boot?.node.peerId.toString()) continue
          const u = users.find(x => x.chat.peerId === id)
          assert.ok(u != null, `${me} has a connection to ${id}, neither a relay nor a user of this test`)
          assert.equal(u.chat.entry.relay?.peerId, me, `${me} is connected to a user whose entry relay it is not`)
        }
      }
      assert.ok(packets > 8 * MESSAGES, `the relays handled the chat traffic (${packets} packet events)`)
      for (const u of users) assert.deepEqual(u.chat.node.getConnections().map(c => c.remotePeer.toString()), [u.chat.entry.relay?.peerId], 'a user is connected to its entry relay only')
    })
  })
})
