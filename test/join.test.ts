/**
 * Joining the DHT when the bootstrap node is not there yet: @libp2p/bootstrap dials once, so a
 * newcomer started before its bootstrap node would never join; joinDht dials again until it has.
 * In protocol version 2 only relays and bootstrap nodes join the DHT (RelayNode.start, a bootstrap node
 * joining its peers); users run no DHT at all (test/dht-observe.test.ts, test/privacy.test.ts), so
 * nothing here is about users any more.
 */
import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { after, describe, it } from 'node:test'
import { createP2PNode, joinDht, routingTableSize } from '../node/create.ts'
import type { P2PNode } from '../node/create.ts'
import { ephemeralIdentity } from '../node/identity.ts'
import { within } from './helpers/wait.ts'

/** A loopback TCP port nobody listens on right now. */
async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise(resolve => server.close(resolve))
  return port
}

describe('joinDht', { timeout: 60_000 }, () => {
  const nodes: P2PNode[] = []
  after(async () => { await Promise.all(nodes.map(async n => await within(Promise.resolve(n.stop()), 10_000, 'node stop').catch(() => {}))) })

  it('joins through a bootstrap node that comes up after the first dial failed', async () => {
    const bootId = await ephemeralIdentity()
    const port = await freePort()
    const bootAddr = `/ip4/127.0.0.1/tcp/${port}/p2p/${bootId.peerId.toString()}`
    const newcomer = await createP2PNode({ privateKey: (await ephemeralIdentity()).privateKey, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [bootAddr] })
    nodes.push(newcomer)
    // the one dial @libp2p/bootstrap makes is refused: nothing listens on the port yet
    assert.equal(await joinDht(newcomer, [bootAddr], { timeoutMs: 1_000, redialMs: 5_000 }), false)
    assert.equal(routingTableSize(newcomer.services.dht), 0)
    const boot = await createP2PNode({ privateKey: bootId.privateKey, listen: [`/ip4/127.0.0.1/tcp/${port}`] })
    nodes.push(boot)
    assert.equal(await joinDht(newcomer, [bootAddr], { timeoutMs: 20_000, redialMs: 200 }), true)
    assert.ok(routingTableSize(newcomer.services.dht) >= 1)
  })

  it('gives up at the deadline with false, and stops at once on an aborted signal', async () => {
    const lonely = await createP2PNode({ privateKey: (await ephemeralIdentity()).privateKey, listen: ['/ip4/127.0.0.1/tcp/0'] })
    nodes.push(lonely)
    const nowhere = `/ip4/127.0.0.1/tcp/${await freePort()}/p2p/${(await ephemeralIdentity()).peerId.toString()}`
    assert.equal(await joinDht(lonely, [nowhere], { timeoutMs: 500, redialMs: 100 }), false)
    await assert.rejects(joinDht(lonely, [nowhere], { timeoutMs: 10_000, signal: AbortSignal.abort() }), { name: 'AbortError' })
  })
})
