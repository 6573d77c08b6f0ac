import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { createP2PNode } from '../node/create.ts'
import type { P2PNode } from '../node/create.ts'
import { ephemeralIdentity } from '../node/identity.ts'
import { KIND_RELAY, signRecord } from '../protocols/directory/record.ts'
import {
  addressFromPeerId, createPacket, createSurb, generateOnionKey, packetFromSurb, NotEnoughRelaysError, OnionKeyRing, OnionService, onionKeyFor,
  PACKET_SIZE, RelayDirectory, ReplayFilter
} from '../protocols/onion/index.ts'
import type { FinalResult } from '../protocols/onion/index.ts'
import { waitFor } from './helpers/wait.ts'

describe('ReplayFilter', () => {
  it('says fresh once and seen after, for many tags, with a size fixed at construction', () => {
    const f = new ReplayFilter(50_000)
    const bytes = f.byteLength
    const tags = Array.from({ length: 20_000 }, () => new Uint8Array(randomBytes(32)))
    let falsePositives = 0
    for (const t of tags) if (f.checkAndAdd(t)) falsePositives++
    assert.ok(falsePositives <= 1, `false positives: ${falsePositives}`)
    for (const t of tags) assert.equal(f.checkAndAdd(t), true)
    assert.equal(f.byteLength, bytes)
    assert.equal(f.size, 20_000 - falsePositives)
  })

  it('reports full at capacity', () => {
    const f = new ReplayFilter(10)
    for (let i = 0; i < 10; i++) f.checkAndAdd(new Uint8Array(randomBytes(32)))
    assert.equal(f.full, true)
    assert.throws(() => f.checkAndAdd(new Uint8Array(8)), RangeError)
  })
})

describe('OnionKeyRing', () => {
  it('rotates on schedule, publishes the next key ahead, accepts the previous key for the grace period only', () => {
    let now = 1_000_000
    const ring = new OnionKeyRing({ epochMs: 1000, graceMs: 200, now: () => now, replayCapacity: 100 })
    let rotations = 0
    ring.onRotate = () => { rotations++ }
    const first = ring.current
    const next = ring.next
    assert.deepEqual(ring.descriptorKeys().map(k => k.epoch), [first.epoch, next.epoch])
    assert.equal(ring.descriptorKeys()[1].notBefore, first.notAfter, 'the next key is published ahead of the switch')
    now += 999
    assert.equal(ring.tick(), false)
    now += 1
    assert.equal(ring.tick(), true)
    assert.equal(ring.current, next)
    assert.equal(ring.previous, first)
    assert.ok(ring.candidates().includes(first))
    now += 199
    ring.tick()
    assert.ok(ring.candidates().includes(first), 'still within the grace period')
    now += 1
    ring.tick()
    assert.ok(!ring.candidates().includes(first), 'retired after the grace period, with its replay filter')
    assert.equal(rotations, 1)
    assert.ok(ring.replayBytes <= 3 * first.filter.byteLength)
  })

  it('rotates early when the replay filter is full', () => {
    const now = 5_000
    const ring = new OnionKeyRing({ epochMs: 1_000_000, now: () => now, replayCapacity: 5 })
    const first = ring.current
    for (let i = 0; i < 5; i++) first.filter.checkAndAdd(new Uint8Array(randomBytes(32)))
    assert.equal(ring.tick(), true)
    assert.notEqual(ring.current, first)
  })
})

describe('RelayDirectory', () => {
  async function descriptor (expiry = Date.now() + 3600_000): Promise<{ bytes: Uint8Array, peerId: string }> {
    const id = await ephemeralIdentity()
    const rec = signRecord({
      kind: KIND_RELAY,
      nick: '',
      identityKey: id.identityKey,
      onionKeys: [{ epoch: 1, notBefore: Date.now() - 1000, notAfter: Date.now() + 3600_000, key: id.onionPublic }],
      addrs: [],
      sequence: 1n,
      expiry
    }, id.signer)
    return { bytes: rec.bytes, peerId: rec.peerId }
  }

  it('keeps verified descriptors, rejects tampered and expired ones, and picks distinct relays', async () => {
    const dir = new RelayDirectory()
    const good = await Promise.all([descriptor(), descriptor(), descriptor(), descriptor()])
    for (const d of good) assert.ok(dir.add(d.bytes) != null)
    const tampered = (await descriptor()).bytes.slice()
    tampered[tampered.length - 1] ^= 1
    assert.equal(dir.add(tampered), undefined)
    assert.equal(dir.add(new Uint8Array(10)), undefined)
    assert.equal(dir.size, 4)
    assert.ok((dir.rejected.signature ?? 0) >= 1)
    for (let i = 0; i < 20; i++) {
      const path = dir.choosePath(3, [good[0].peerId])
      assert.equal(new Set(path.map(r => r.record.peerId)).size, 3)
      assert.ok(!path.some(r => r.record.peerId === good[0].peerId))
      assert.ok(onionKeyFor(path[0].record) != null)
    }
    assert.throws(() => dir.choosePath(4, [good[0].peerId]), NotEnoughRelaysError)
  })

  it('prefers relays heard from recently', async () => {
    let now = Date.now()
    const dir = new RelayDirectory({ now: () => now, announceIntervalMs: 1000 })
    const stale = await Promise.all([descriptor(), descriptor(), descriptor()])
    for (const d of stale) dir.add(d.bytes)
    now += 60_000
    const fresh = await Promise.all([descriptor(now + 3600_000), descriptor(now + 3600_000), descriptor(now + 3600_000)])
    for (const d of fresh) dir.add(d.bytes)
    for (let i = 0; i < 10; i++) {
      const ids = dir.choosePath(3).map(r => r.record.peerId).sort()
      assert.deepEqual(ids, fresh.map(d => d.peerId).sort())
    }
  })

  it('refreshes a relay on a repeated announcement of the same bytes, until they expire', async () => {
    let now = Date.now()
    const dir = new RelayDirectory({ now: () => now })
    const d = await descriptor(now + 10_000)
    assert.ok(dir.add(d.bytes) != null)
    now += 5_000
    assert.equal(dir.add(d.bytes)?.peerId, d.peerId)
    assert.equal(dir.list()[0].lastSeen, now)
    now += 5_000
    assert.equal(dir.add(d.bytes), undefined, 'expired bytes are refused even though they were verified before')
    assert.equal(dir.size, 0)
    assert.equal(dir.rejected.expired, 1)
  })
})

describe('OnionService on a relay (one real node, packets handed in directly)', () => {
  let node: P2PNode
  let service: OnionService
  const delivered: FinalResult[] = []
  const toClients: Array<{ next: Uint8Array, packet: Uint8Array }> = []
  const ring = new OnionKeyRing({ replayCapacity: 10_000 })
  const known = new Set<string>()

  before(async () => {
    const id = await ephemeralIdentity()
    node = await createP2PNode({ privateKey: id.privateKey, listen: ['/ip4/127.0.0.1/tcp/0'] })
    service = new OnionService(node, {
      keyRing: ring,
      onDeliver: (r) => delivered.push(r),
      onClient: (next, packet) => toClients.push({ next, packet }),
      isKnownRelay: (peer) => known.has(peer.toString()),
      packetsPerSecond: 10,
      burst: 20,
      queueLength: 5,
      dialTimeoutMs: 2_000
    })
    await service.start()
  })
  after(async () => {
    await service.stop()
    await node.stop()
  })

  it('rate-limits one inbound peer without touching another', () => {
    const junk = new Uint8Array(PACKET_SIZE)
    for (let i = 0; i < 100; i++) service.receive(junk, 'flooder')
    assert.ok((service.stats.dropped['rate-limit'] ?? 0) >= 75, `rate limited: ${service.stats.dropped['rate-limit']}`)
    const before = service.stats.dropped['rate-limit'] ?? 0
    service.receive(junk, 'someone-else')
    assert.equal(service.stats.dropped['rate-limit'], before, 'another peer is not limited')
  })

  it('hands a SERVICE layer under its epoch key to its services; a packet for another key is a MAC drop', () => {
    const self = addressFromPeerId(node.peerId)
    const own = createPacket([{ address: self, onionKey: ring.current.publicKey }], new TextEncoder().encode('to the relay'))
    service.receive(own.packet, 'peer-a')
    assert.equal(delivered.at(-1)?.command, 'service')
    assert.equal(new TextDecoder().decode(delivered.at(-1)?.payload), 'to the relay')
    const macBefore = service.stats.dropped.mac ?? 0
    const deliveredBefore = delivered.length
    // a user's key is never a hop of a v2 path: a packet built for one is not this relay's
    const foreign = createPacket([{ address: self, onionKey: generateOnionKey().publicKey }], new Uint8Array(8))
    service.receive(foreign.packet, 'peer-b')
    assert.equal(service.stats.dropped.mac, macBefore + 1)
    assert.equal(delivered.length, deliveredBefore)
  })

  it('forwards a RELAY layer only to a relay it knows (unknown-relay otherwise), into a bounded queue', async () => {
    const self = addressFromPeerId(node.peerId)
    const stranger = addressFromPeerId((await ephemeralIdentity()).peerId)
    const unknownBefore = service.stats.dropped['unknown-relay'] ?? 0
    const p = createPacket([{ address: self, onionKey: ring.current.publicKey }, { address: stranger, onionKey: generateOnionKey().publicKey }], new Uint8Array(8))
    service.receive(p.packet, 'peer-u')
    assert.equal(service.stats.dropped['unknown-relay'], unknownBefore + 1)
    assert.equal(service.queuedPackets, 0)

    // a known relay that does not exist: the queue holds at most 5
    const nowhereId = (await ephemeralIdentity()).peerId
    known.add(nowhereId.toString())
    const nowhere = addressFromPeerId(nowhereId)
    for (let i = 0; i < 12; i++) {
      const q = createPacket([{ address: self, onionKey: ring.current.publicKey }, { address: nowhere, onionKey: generateOnionKey().publicKey }], new Uint8Array(8))
      service.receive(q.packet, `peer-${i}`)
    }
    assert.ok(service.queuedPackets <= 5)
    assert.ok((service.stats.dropped['queue-full'] ?? 0) >= 6)
  })

  it('hands a CLIENT layer to the client links, never to the network; a REPLY layer to its services as a reply', async () => {
    const self = addressFromPeerId(node.peerId)
    const client = addressFromPeerId((await ephemeralIdentity()).peerId)
    const forwardedBefore = service.stats.forwarded
    const queuedBefore = service.queuedPackets
    const p = createPacket([{ address: self, onionKey: ring.current.publicKey, delayMs: 10 }, { address: client, onionKey: generateOnionKey().publicKey, client: true }], new Uint8Array(8))
    service.receive(p.packet, 'peer-client')
    // its slot asks the relay to hold it 10 ms (mixing, SPEC.md section 15): handed over after that
    await waitFor(() => service.stats.forwarded === forwardedBefore + 1, 'the held CLIENT layer to be handed over', 10_000, 5)
    assert.deepEqual(toClients.at(-1)?.next, client)
    assert.equal(toClients.at(-1)?.packet.length, PACKET_SIZE)
    assert.equal(service.queuedPackets, queuedBefore, 'nothing queued for a dial')
    const { surb } = createSurb([{ address: self, onionKey: ring.current.publicKey }])
    const deliveredBefore = delivered.length
    service.receive(packetFromSurb(surb, new Uint8Array(3)).packet, 'peer-reply')
    assert.equal(delivered.length, deliveredBefore + 1)
    assert.equal(delivered[deliveredBefore].command, 'reply')
  })

  it('a packet replayed under the same epoch key is dropped, a forward layer and a SERVICE layer alike', () => {
    const self = addressFromPeerId(node.peerId)
    const p = createPacket([{ address: self, onionKey: ring.current.publicKey }, { address: self, onionKey: generateOnionKey().publicKey }], new Uint8Array(8))
    const before = service.stats.dropped.replay ?? 0
    service.receive(p.packet.slice(), 'peer-r')
    service.receive(p.packet.slice(), 'peer-r2')
    assert.equal(service.stats.dropped.replay, before + 1)
    const s = createPacket([{ address: self, onionKey: ring.current.publicKey }], new Uint8Array(8))
    const deliveredBefore = delivered.length
    service.receive(s.packet.slice(), 'peer-s')
    service.receive(s.packet.slice(), 'peer-s2')
    assert.equal(delivered.length, deliveredBefore + 1, 'a SERVICE request is served once')
    assert.equal(service.stats.dropped.replay, before + 2)
  })
})
