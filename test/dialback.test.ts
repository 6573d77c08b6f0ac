/**
 * Dial-back helpers beyond the bootstrap node (protocols/reachability/SPEC.md, "The requester"), in
 * process on loopback: relays listen on 127.N.0.1, each in its own /16, the bootstrap node on
 * 127.0.0.1. Relays that start together are in nobody's relay list yet (a relay announces itself only
 * after its check), so they find each other as DHT servers and each is dialled back from several
 * networks, not by the bootstrap node alone; a relay whose announced address nobody can dial is refused
 * by the helpers of every network it asked. First, with a fake node, the race that once left one of
 * the relays starting together with its bootstrap node's word alone: a candidate that dialled the
 * relay while it looked candidates up must be dialled anew to count in its network.
 */
import { after, before, describe, it, test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Connection, PeerId } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import type { Multiaddr } from '@multiformats/multiaddr'
import { ChatNetwork, writeTransportKeyWithRole } from './helpers/chat-network.ts'
import { LOOPBACK_ALLOW } from './helpers/network.ts'
import { within } from './helpers/wait.ts'
import { RelayNode, RelayUnreachableError } from '../node/relay-node.ts'
import { recruitHelpers, REQUIRED_GROUPS, TARGET_GROUPS } from '../protocols/reachability/dialback.ts'

/** A TCP port on 127.9.0.1 that nothing listens on (bound, then released). */
async function closedPort (host: string): Promise<number> {
  const s = createServer()
  await new Promise<void>(resolve => s.listen(0, host, resolve))
  const port = (s.address() as { port: number }).port
  await new Promise<void>(resolve => s.close(() => { resolve() }))
  return port
}

async function newPeerId (): Promise<PeerId> {
  return peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
}

/**
 * The race of relays starting together, made deterministic: while this node's DHT query runs, relay B
 * dials this node (B's own lookup), and this node's own lookup connects to relay C. libp2p's dial without
 * `force` returns an open connection to the peer whatever its direction, and B's inbound connection
 * shows B's source address (on loopback 127.0.0.1: the bootstrap node's /16), not B's network. B must
 * be dialled anew to count in its /16; C's group is connected already and is not dialled again.
 */
test('recruiting dials a candidate that dialled this node meanwhile anew, to count in its network group', async () => {
  const [self, boot, b, c] = await Promise.all([newPeerId(), newPeerId(), newPeerId(), newPeerId()])
  const conns: Connection[] = []
  const connect = (peer: PeerId, addr: string, direction: 'inbound' | 'outbound'): Connection => {
    const conn = { remotePeer: peer, remoteAddr: multiaddr(addr), direction, status: 'open' } as unknown as Connection
    conns.push(conn)
    return conn
  }
  connect(boot, '/ip4/127.0.0.1/tcp/4000', 'outbound')
  const dials: Array<{ addr: string, force: boolean }> = []
  const node = {
    peerId: self,
    getConnections: () => conns.filter(x => x.status === 'open'),
    dialProtocol: async () => { throw new Error('no relay list in this test') },
    // as libp2p's connection manager: without force, any open connection to the peer is returned
    dial: async (ma: Multiaddr, opts: { force?: boolean } = {}) => {
      const peer = ma.getComponents().find(x => x.name === 'p2p')?.value
      dials.push({ addr: ma.toString(), force: opts.force === true })
      const existing = conns.find(x => x.remotePeer.toString() === peer)
      if (opts.force !== true && existing != null) return existing
      const target = peer === b.toString() ? b : c
      return connect(target, ma.decapsulateCode(421).toString(), 'outbound')
    }
  } as unknown as Parameters<typeof recruitHelpers>[0]
  const result = await within(recruitHelpers(node, AbortSignal.timeout(10_000), {
    rounds: 3,
    pauseMs: 10,
    candidates: async function * () {
      connect(b, '/ip4/127.0.0.1/tcp/51234', 'inbound')
      connect(c, '/ip4/127.3.0.1/tcp/4003', 'outbound')
      yield { peerId: b.toString(), addrs: ['/ip4/127.2.0.1/tcp/4002'] }
      yield { peerId: c.toString(), addrs: ['/ip4/127.3.0.1/tcp/4003'] }
    }
  }), 10_000, 'recruiting')
  assert.equal(result.groups, TARGET_GROUPS, JSON.stringify(result))
  assert.deepEqual(conns.filter(x => x.direction === 'outbound').map(x => x.remoteAddr.toString()).sort(),
    ['/ip4/127.0.0.1/tcp/4000', '/ip4/127.2.0.1/tcp/4002', '/ip4/127.3.0.1/tcp/4003'])
  // B anew; C not at all (its group came with this node's own lookup)
  assert.deepEqual(dials, [{ addr: `/ip4/127.2.0.1/tcp/4002/p2p/${b.toString()}`, force: true }])
})

describe('dial-back helpers beyond the bootstrap node', { timeout: 300_000 }, () => {
  const net = new ChatNetwork()
  before(async () => { await net.bootstrap() })
  after(async () => { await net.teardown() })

  it('relays that start together dial each other back: each is confirmed by peers in at least 2 networks', async () => {
    const started = await within(Promise.all([1, 2, 3].map(async () => await net.relay({ checkReachability: true }))), 120_000, 'three relays checking together')
    for (const { relay } of started) {
      const r = relay.reachability
      assert.ok(r != null, 'the relay ran the check')
      assert.equal(r.required, REQUIRED_GROUPS, `required ${r.required} of ${r.groups} groups: ${JSON.stringify(r.addrs)}`)
      assert.ok(r.groups >= 2, `helpers in ${r.groups} networks`)
      assert.equal(r.verified.length, 1, JSON.stringify(r))
      const v = r.addrs.find(a => a.addr === r.verified[0])
      assert.ok(v != null && v.confirmedBy.length >= 2 && v.confirmedBy.length > v.failedBy.length, JSON.stringify(v))
      // confirmed from the bootstrap node's /16 and at least one other relay's
      assert.ok(v.confirmedBy.includes('127.0') && v.confirmedBy.some(g => g !== '127.0'), JSON.stringify(v.confirmedBy))
    }
    await net.waitForRelayGossip(60_000)
  })

  it('a relay announcing an address nobody can dial is refused by the helpers of every network it asked', async () => {
    const dataDir = join(net.root, 'unreachable')
    await writeTransportKeyWithRole(dataDir, 'entry')
    const dead = await closedPort('127.9.0.1')
    const relay = await RelayNode.create({
      dataDir,
      listen: ['/ip4/127.9.0.1/tcp/0'],
      announce: [`/ip4/127.9.0.1/tcp/${dead}`],
      bootstrap: net.boot?.addrs() ?? [],
      allow: LOOPBACK_ALLOW,
      announceIntervalMs: 1_000,
      checkReachability: true
    })
    try {
      const err = await within(relay.start().then(() => undefined, (e: unknown) => e), 120_000, 'the unreachable relay\'s check')
      assert.ok(err instanceof RelayUnreachableError, String(err))
      const r = err.report
      assert.ok(r != null)
      assert.equal(r.verified.length, 0)
      assert.ok(r.groups >= 2, `helpers in ${r.groups} networks: ${err.message}`)
      assert.equal(r.addrs.length, 1)
      assert.equal(r.addrs[0].confirmedBy.length, 0)
      assert.ok(r.addrs[0].failedBy.length >= 2, JSON.stringify(r.addrs[0]))
      assert.match(err.message, /could not dial it back/)
      // it never announced itself: no relay lists it
      assert.ok(net.relays.every(x => !x.relay.relays.has(relay.peerId)))
    } finally {
      await within(relay.stop(), 10_000, 'relay stop').catch(() => {})
    }
  })
})
