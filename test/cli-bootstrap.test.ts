/**
 * `p2pchat bootstrap` as a real process on loopback, dialled by a burst of newcomers at once: every
 * newcomer dials from 127.0.0.1, and libp2p's inbound limit (5 connections per second per host)
 * would refuse all but five of them unless the bootstrap node exempts its own local range.
 */
import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { createP2PNode, routingTableSize } from '../node/create.ts'
import type { P2PNode } from '../node/create.ts'
import { ephemeralIdentity } from '../node/identity.ts'
import { CliNetwork } from './helpers/cli-network.ts'
import { waitFor, within } from './helpers/wait.ts'

describe('p2pchat bootstrap on loopback', { timeout: 120_000 }, () => {
  const net = new CliNetwork()
  const nodes: P2PNode[] = []
  after(async () => {
    await Promise.all(nodes.map(async n => await within(Promise.resolve(n.stop()), 10_000, 'node stop').catch(() => {})))
    await net.teardown()
  })

  it('admits twelve newcomers dialling in the same second', async () => {
    await net.bootstrap()
    // the newcomers exempt nothing themselves: only the bootstrap process decides whom it admits
    nodes.push(...await Promise.all(Array.from({ length: 12 }, async () => await createP2PNode({
      privateKey: (await ephemeralIdentity()).privateKey,
      listen: ['/ip4/127.0.0.1/tcp/0'],
      bootstrap: [net.bootstrapAddr]
    }))))
    await waitFor(() => nodes.every(n => routingTableSize(n.services.dht) > 0),
      () => `every newcomer to hold the bootstrap node in its DHT table (${nodes.filter(n => routingTableSize(n.services.dht) > 0).length} of ${nodes.length} do)`, 20_000, 100)
    assert.equal(nodes.filter(n => n.getConnections().length > 0).length, nodes.length)
  })
})
