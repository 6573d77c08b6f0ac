import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { peerIdFromString } from '@libp2p/peer-id'
import { addressFromPeerId, GAMMA_OFFSET, HEADER_LENGTH, PACKET_VERSION, ONION_PROTOCOL, OnionRouter, PACKET_SIZE, createPacket, onionKeyFor } from '../protocols/onion/index.ts'
import type { OnionEvent } from '../protocols/onion/index.ts'
import { TestNetwork } from './helpers/network.ts'
import type { TestPeer } from './helpers/network.ts'
import { waitFor } from './helpers/wait.ts'

interface Node extends TestPeer {
  router: OnionRouter
  events: OnionEvent[]
  messages: Uint8Array[]
  replies: Uint8Array[]
}

function contains (haystack: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(haystack).indexOf(Buffer.from(needle)) !== -1
}

function stats (nodes: Node[]): string {
  return nodes.map(n => `${n.node.peerId.toString().slice(-6)} ${JSON.stringify(n.router.service.stats)} queued=${n.router.service.queuedPackets}`).join('; ')
}

describe('onion routing on an in-process loopback network: bootstrap, 5 relays, 2 users', { timeout: 300_000 }, () => {
  const net = new TestNetwork()
  const nodes: Node[] = []
  let relays: Node[]
  let alice: Node
  let bob: Node

  before(async () => {
    const peers = await net.start(7)
    for (const [i, peer] of peers.entries()) {
      const n = peer as Node
      n.events = []
      n.messages = []
      n.replies = []
      n.router = new OnionRouter(peer.node, {
        directory: peer.directory,
        onionPrivate: peer.identity.onionPrivate,
        onionPublic: peer.identity.onionPublic,
        relay: i < 5,
        announceIntervalMs: 500,
        onEvent: (e) => n.events.push(e),
        onMessage: (payload) => n.messages.push(payload),
        onReply: (payload) => n.replies.push(payload)
      })
      await n.router.start()
      nodes.push(n)
    }
    relays = nodes.slice(0, 5)
    alice = nodes[5]
    bob = nodes[6]
    await Promise.all(relays.map(async r => await r.router.announce()))
    assert.equal(await alice.router.discoverRelays(), 5, 'cold start finds all five relays through the DHT')
    await waitFor(() => bob.router.relays.size === 5, 'bob to hear all relays on gossip', 30_000)
  })

  after(async () => {
    await Promise.all(nodes.map(async n => await n.router.stop()))
    await net.teardown()
  })

  it('delivers 200 messages over 3-hop paths; same size on every link; no relay sees the plaintext or both ends', async () => {
    for (const r of relays) r.events.length = 0
    const sent: Array<{ text: Uint8Array, path: string[] }> = []
    const bobRecord = await alice.directory.lookupName('bob').catch(() => undefined)
    assert.equal(bobRecord, undefined, 'this test addresses bob by his keys directly; names are the chat layer\'s')
    const recipient = { peerId: bob.node.peerId.toString(), onionKey: bob.identity.onionPublic }
    for (let i = 0; i < 200; i++) {
      const text = new Uint8Array(randomBytes(200))
      const { path } = alice.router.send(recipient, text)
      assert.equal(path.length, 3)
      assert.equal(new Set(path).size, 3)
      sent.push({ text, path })
    }
    await waitFor(() => bob.messages.length >= 200, () => `200 deliveries (got ${bob.messages.length}); ${stats(nodes)}`, 120_000)
    assert.equal(bob.messages.length, 200)
    const got = new Set(bob.messages.map(m => Buffer.from(m).toString('hex')))
    for (const s of sent) assert.ok(got.has(Buffer.from(s.text).toString('hex')), 'every message arrives intact')

    const a = alice.node.peerId.toString()
    const b = bob.node.peerId.toString()
    const allowed = new Map<string, Set<string>>()
    for (const { path } of sent) {
      const full = [a, ...path, b]
      for (let i = 1; i <= 3; i++) {
        const key = full[i]
        if (!allowed.has(key)) allowed.set(key, new Set())
        allowed.get(key)?.add(`${full[i - 1]}>${full[i + 1]}`)
      }
    }
    let forwards = 0
    for (const r of relays) {
      const me = r.node.peerId.toString()
      for (const e of r.events) {
        if (e.type === 'in') {
          assert.equal(e.packet.length, PACKET_SIZE, 'inbound packet size')
          for (const s of sent) assert.ok(!contains(e.packet, s.text.subarray(0, 24)), 'no plaintext on an inbound link')
        }
        if (e.type === 'forward') {
          forwards++
          assert.equal(e.size, PACKET_SIZE)
          assert.ok(allowed.get(me)?.has(`${e.from}>${e.to}`), `${me} forwarded ${e.from} > ${e.to}, not a hop of any path`)
          assert.ok(!(e.from === a && e.to === b), 'no relay links the two ends')
          for (const s of sent) assert.ok(!contains(e.packet, s.text.subarray(0, 24)), 'no plaintext in a forwarded packet')
        }
        assert.notEqual(e.type, 'drop', `relay ${me} dropped a good packet: ${JSON.stringify(e)}`)
      }
    }
    assert.equal(forwards, 600, 'three forwards per message')
  })

  it('a reply through a SURB reaches the original sender; the same SURB used twice is refused at its first hop', async () => {
    const block = alice.router.createReplyBlock()
    const firstHop = relays.find(r => r.node.peerId.toString() === block.path[0])
    assert.ok(firstHop != null)
    const replayedBefore = firstHop.router.service.stats.dropped.replay ?? 0
    const receipt = new TextEncoder().encode('delivered: message 1')
    bob.router.reply(block.surb, receipt)
    await waitFor(() => alice.replies.length === 1, () => `the reply over ${block.path.join(' > ')}; ${stats(nodes)}`, 60_000)
    assert.deepEqual(alice.replies[0], receipt)
    bob.router.reply(block.surb, new TextEncoder().encode('again'))
    await waitFor(() => (firstHop.router.service.stats.dropped.replay ?? 0) === replayedBefore + 1, 'the replayed SURB to be dropped', 20_000)
    assert.equal(alice.replies.length, 1)
  })

  it('a reply block built ahead is given out once, only when its path avoids the excluded relays, and its reply opens', async () => {
    alice.router.createReplyBlock()
    await waitFor(() => alice.router.spareReady, 'alice to build a reply block ahead', 10_000)
    const spare = (alice.router as unknown as { spare: { path: string[] } }).spare.path
    // a block that must avoid one of the spare's relays is built fresh; the spare is kept
    const avoiding = alice.router.createReplyBlock({ exclude: [spare[1]] })
    assert.ok(!avoiding.path.includes(spare[1]), `path ${avoiding.path.join(' > ')} avoids ${spare[1]}`)
    assert.equal(alice.router.spareReady, true)
    const given = alice.router.createReplyBlock()
    assert.deepEqual(given.path, spare, 'the block built ahead is the one given out')
    assert.equal(alice.router.spareReady, false)
    const before = alice.replies.length
    const text = new TextEncoder().encode('through a block built ahead')
    bob.router.reply(given.surb, text)
    await waitFor(() => alice.replies.length === before + 1, () => `the reply over ${given.path.join(' > ')}; ${stats(nodes)}`, 60_000)
    assert.deepEqual(alice.replies.at(-1), text)
  })

  it('drops flipped header bits, replays, garbage, short and oversize frames, and keeps forwarding', async () => {
    const [r1, r2, r3] = relays
    const hop = (n: Node): { address: Uint8Array, onionKey: Uint8Array } => {
      const rec = alice.router.relays.list().find(k => k.record.peerId === n.node.peerId.toString())
      assert.ok(rec != null)
      const key = onionKeyFor(rec.record)
      assert.ok(key != null)
      return { address: addressFromPeerId(n.node.peerId), onionKey: key.key }
    }
    const path = [hop(r1), hop(r2), hop(r3), { address: addressFromPeerId(bob.node.peerId), onionKey: bob.identity.onionPublic }]
    const dropped = (): number => Object.values(r1.router.service.stats.dropped).reduce((n, v) => n + (v ?? 0), 0)
    const deliveredBefore = bob.messages.length

    // every header region: version, alpha, beta, gamma
    const positions = [0, 1, 17, 32, 33, 100, GAMMA_OFFSET - 1, GAMMA_OFFSET, GAMMA_OFFSET + 11, HEADER_LENGTH - 1]
    for (const pos of positions) {
      const { firstHop, packet } = createPacket(path, new TextEncoder().encode(`flip ${pos}`))
      packet[pos] ^= 0x04
      const before = dropped()
      alice.router.service.send(firstHop, packet)
      await waitFor(() => dropped() === before + 1, `the packet flipped at ${pos} to be dropped at the first hop`, 10_000)
    }

    const { firstHop, packet } = createPacket(path, new TextEncoder().encode('once'))
    alice.router.service.send(firstHop, packet.slice())
    await waitFor(() => bob.messages.length === deliveredBefore + 1, 'the original packet', 10_000)
    const replays = r1.router.service.stats.dropped.replay ?? 0
    alice.router.service.send(firstHop, packet.slice())
    await waitFor(() => (r1.router.service.stats.dropped.replay ?? 0) === replays + 1, 'the replay to be dropped', 10_000)

    // raw frames on a stream of our own
    const stream = await alice.node.dialProtocol(peerIdFromString(r1.node.peerId.toString()), ONION_PROTOCOL)
    const frame = (body: Uint8Array): Uint8Array => {
      const len: number[] = []
      let n = body.length
      while (n >= 0x80) { len.push((n & 0x7f) | 0x80); n >>>= 7 }
      len.push(n)
      return new Uint8Array([...len, ...body])
    }
    const stats = r1.router.service.stats.dropped
    const garbage = new Uint8Array(randomBytes(PACKET_SIZE))
    garbage[0] = PACKET_VERSION // the right version, so it is the MAC that refuses it
    garbage[32] &= 0x7f // a canonical point
    const mac = stats.mac ?? 0
    const size = stats.size ?? 0
    stream.send(frame(garbage))
    stream.send(frame(new Uint8Array(100)))
    stream.send(frame(new Uint8Array(PACKET_SIZE + 1)))
    await waitFor(() => (stats.mac ?? 0) === mac + 1 && (stats.size ?? 0) === size + 2, 'garbage, short and long frames to be counted', 10_000)
    const oversize = stats['oversize-frame'] ?? 0
    stream.send(frame(new Uint8Array(PACKET_SIZE * 4)))
    await waitFor(() => (stats['oversize-frame'] ?? 0) === oversize + 1, 'the oversize frame to be counted', 10_000)

    const good = createPacket(path, new TextEncoder().encode('still working'))
    alice.router.service.send(good.firstHop, good.packet)
    await waitFor(() => bob.messages.some(m => new TextDecoder().decode(m) === 'still working'), 'a good packet after the junk', 10_000)
  })
})
