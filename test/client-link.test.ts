/**
 * `/onion-chat/2.0/client` between two in-process libp2p nodes on loopback: a client's submissions
 * reach the relay with their address, the relay's deliveries reach the client, the relay never dials a
 * client, and bad frames are counted drops.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { createP2PNode } from '../node/create.ts'
import type { P2PNode } from '../node/create.ts'
import { PACKET_SIZE } from '../protocols/onion/constants.ts'
import {
  CLIENT_PROTOCOL, ClientLink, ClientLinkServer, clientFrame, KIND_DELIVER, KIND_SUBMIT, parseClientFrame, transportKeyOf
} from '../protocols/onion/client-link.ts'
import { LOOPBACK_ALLOW } from './helpers/network.ts'
import { waitFor, within } from './helpers/wait.ts'

async function node (listen: string[]): Promise<P2PNode> {
  return await createP2PNode({ privateKey: await generateKeyPair('Ed25519'), listen, allow: LOOPBACK_ALLOW })
}

const packet = (fill: number): Uint8Array => new Uint8Array(PACKET_SIZE).fill(fill)

describe('client link frames', () => {
  it('round-trips and refuses wrong sizes and kinds', () => {
    const address = new Uint8Array(randomBytes(32))
    const frame = clientFrame(KIND_SUBMIT, address, packet(7))
    const parsed = parseClientFrame(frame.subarray(2))
    assert.ok(parsed.ok)
    assert.equal(parsed.kind, KIND_SUBMIT)
    assert.deepEqual(parsed.address, address)
    assert.deepEqual(parsed.packet, packet(7))
    assert.deepEqual(parseClientFrame(frame.subarray(3)), { ok: false, reason: 'size' })
    const badKind = frame.slice(2)
    badKind[0] = 9
    assert.deepEqual(parseClientFrame(badKind), { ok: false, reason: 'kind' })
    assert.throws(() => clientFrame(KIND_SUBMIT, new Uint8Array(31), packet(0)), RangeError)
    assert.throws(() => clientFrame(KIND_SUBMIT, address, new Uint8Array(10)), RangeError)
  })
})

describe('client link between a user and its entry relay', () => {
  let relay: P2PNode
  let user: P2PNode
  let server: ClientLinkServer
  const submitted: Array<{ address: Uint8Array, packet: Uint8Array, client: Uint8Array }> = []

  before(async () => {
    relay = await node(['/ip4/127.0.0.1/tcp/0'])
    user = await node([]) // a client listens nowhere
    server = new ClientLinkServer(relay, { onSubmit: (address, p, client) => { submitted.push({ address, packet: p, client }) } })
    await server.start()
    await user.peerStore.merge(relay.peerId, { multiaddrs: relay.getMultiaddrs() })
  })

  after(async () => {
    await server.stop()
    await within(Promise.all([relay.stop(), user.stop()]), 10_000, 'nodes stop').catch(() => {})
  })

  it('carries submissions up and deliveries down over one stream', async () => {
    const delivered: Uint8Array[] = []
    const link = await ClientLink.open(user, relay.peerId, { onDeliver: p => delivered.push(p) })
    const target = new Uint8Array(randomBytes(32))
    for (let i = 0; i < 20; i++) assert.ok(link.submit(target, packet(i)))
    await waitFor(() => submitted.length === 20, '20 submissions at the relay', 10_000)
    assert.ok(submitted.every((s, i) => Buffer.from(s.address).equals(target) && s.packet[0] === i))
    assert.deepEqual(submitted[0].client, transportKeyOf(user.peerId), 'the relay knows which client submitted')

    const userKey = transportKeyOf(user.peerId) as Uint8Array
    await waitFor(() => server.has(userKey), 'the relay to hold the client stream', 5_000)
    for (let i = 0; i < 20; i++) assert.ok(server.deliver(userKey, packet(100 + i)))
    await waitFor(() => delivered.length === 20, '20 deliveries at the client', 10_000)
    assert.ok(delivered.every((p, i) => p.length === PACKET_SIZE && p[0] === 100 + i))
    await link.close()
    await waitFor(() => !server.has(userKey), 'the relay to forget the closed client', 5_000)
  })

  it('never dials a client: a delivery to a client without a stream is dropped as client-gone', async () => {
    const stranger = await node([])
    try {
      const before = relay.getConnections().length
      const key = transportKeyOf(stranger.peerId) as Uint8Array
      const gone = server.stats.dropped['client-gone'] ?? 0
      assert.equal(server.deliver(key, packet(1)), false)
      assert.equal(server.stats.dropped['client-gone'], gone + 1)
      assert.equal(relay.getConnections().length, before)
      assert.equal(relay.getConnections(stranger.peerId).length, 0, 'no connection to the stranger was made')
    } finally {
      await stranger.stop()
    }
  })

  it('counts a DELIVER sent upstream and a frame of the wrong size as drops, and keeps the stream', async () => {
    const stream = await user.dialProtocol(relay.peerId, CLIENT_PROTOCOL)
    const kinds = server.stats.dropped.kind ?? 0
    const sizes = server.stats.dropped.size ?? 0
    const before = submitted.length
    stream.send(clientFrame(KIND_DELIVER, new Uint8Array(32), packet(3)))
    stream.send(Uint8Array.of(5, 1, 2, 3, 4, 5))
    stream.send(clientFrame(KIND_SUBMIT, new Uint8Array(32), packet(4)))
    await waitFor(() => submitted.length === before + 1, 'the good frame after the bad ones', 10_000)
    assert.equal(server.stats.dropped.kind, kinds + 1)
    assert.equal(server.stats.dropped.size, sizes + 1)
    stream.abort(new Error('done'))
  })

  it('a second stream of the same client replaces the first', async () => {
    const first: Uint8Array[] = []
    const second: Uint8Array[] = []
    let firstClosed = false
    const a = await ClientLink.open(user, relay.peerId, { onDeliver: p => first.push(p), onClose: () => { firstClosed = true } })
    await waitFor(() => server.size >= 1, 'first stream', 5_000)
    const b = await ClientLink.open(user, relay.peerId, { onDeliver: p => second.push(p) })
    await waitFor(() => firstClosed, 'the first stream to be closed by the relay', 5_000)
    assert.ok(server.deliver(transportKeyOf(user.peerId) as Uint8Array, packet(9)))
    await waitFor(() => second.length === 1, 'delivery on the second stream', 5_000)
    assert.equal(first.length, 0)
    await a.close()
    await b.close()
  })
})
