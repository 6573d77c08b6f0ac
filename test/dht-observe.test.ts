/**
 * The instruments of the privacy tests: every DHT request a node serves is seen with its sender, and a
 * version 2 client node (no DHT service) connected to a DHT server sends no DHT request and never
 * enters a routing table.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { createClientNode, observeDhtRequests, routingTableSize } from '../node/create.ts'
import type { ClientNode, DhtRequest } from '../node/create.ts'
import { nameKey } from '../protocols/directory/index.ts'
import { LOOPBACK_ALLOW, TestNetwork } from './helpers/network.ts'
import type { TestPeer } from './helpers/network.ts'
import { within } from './helpers/wait.ts'

describe('observing DHT requests', () => {
  const net = new TestNetwork()
  const seen: DhtRequest[] = []
  let peers: TestPeer[]
  let client: ClientNode

  before(async () => {
    peers = await net.start(4)
    for (const p of net.peers) observeDhtRequests(p.node, r => seen.push(r))
    client = await createClientNode({ privateKey: await generateKeyPair('Ed25519'), allow: LOOPBACK_ALLOW })
  })

  after(async () => {
    await within(Promise.resolve(client.stop()), 10_000, 'client stop').catch(() => {})
    await net.teardown()
  })

  it('sees every request with its sender and key', async () => {
    await peers[1].directory.publishName('alice')
    const key = Buffer.from(nameKey('alice'))
    const fromPublisher = seen.filter(r => r.from === peers[1].node.peerId.toString())
    assert.ok(fromPublisher.some(r => r.type === 'PUT_VALUE' && r.key != null && key.equals(r.key)), 'the PUT of the name, from its publisher')
    assert.ok(fromPublisher.some(r => r.type === 'GET_VALUE' && r.key != null && key.equals(r.key)), 'the read-back, from its publisher')
    const before = seen.length
    await peers[2].directory.lookupName('alice')
    const lookups = seen.slice(before).filter(r => r.type === 'GET_VALUE' && r.key != null && key.equals(r.key))
    assert.ok(lookups.length > 0 && lookups.every(r => r.from === peers[2].node.peerId.toString()), 'a lookup is seen as coming from the node that looks up')
  })

  it('a client node sends no DHT request and enters no routing table', async () => {
    const server = peers[0].node
    const identified = new Promise<void>(resolve => {
      const onIdentify = (e: CustomEvent<{ peerId: { equals: (p: unknown) => boolean } }>): void => {
        if (e.detail.peerId.equals(client.peerId)) { server.removeEventListener('peer:identify', onIdentify as never); resolve() }
      }
      server.addEventListener('peer:identify', onIdentify as never)
    })
    await client.dial(server.getMultiaddrs()[0])
    await within(identified, 10_000, 'the server identifying the client')
    // traffic that would make a DHT client talk: another lookup through the network
    await peers[3].directory.lookupName('alice')
    assert.ok(routingTableSize(server.services.dht) > 0)
    const id = client.peerId.toString()
    assert.equal(seen.filter(r => r.from === id).length, 0, 'no DHT request from the client')
    const tableOf = (p: TestPeer): { find: (peer: unknown) => Promise<unknown> } =>
      (p.node.services.dht as unknown as { routingTable: { find: (peer: unknown) => Promise<unknown> } }).routingTable
    let holdersOfAServer = 0
    for (const p of net.peers) {
      assert.equal(await tableOf(p).find(client.peerId), undefined, 'the client is in no routing table')
      if (await tableOf(p).find(peers[1].node.peerId) !== undefined) holdersOfAServer++
    }
    assert.ok(holdersOfAServer > 0, 'the same check finds a DHT server in the tables')
    assert.equal(client.getMultiaddrs().length, 0, 'the client listens nowhere')
  })
})
