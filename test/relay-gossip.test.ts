/**
 * Relay descriptors on gossipsub when many peers share one IP address, as every in-process node on
 * loopback does. Gossipsub's peer score docks peers of an IP shared by more than 10 of them; with the
 * default parameters a node with 15 such peers ignores their subscriptions and publishes to none of
 * them, so relay descriptors never arrived by gossip in the 20-node test network (node/create.ts).
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import { createP2PNode } from '../node/create.ts'
import type { P2PNode } from '../node/create.ts'
import { ephemeralIdentity } from '../node/identity.ts'
import { KIND_RELAY, signRecord } from '../protocols/directory/record.ts'
import { RELAY_TOPIC, RelayDirectory } from '../protocols/onion/index.ts'
import { LOOPBACK_ALLOW } from './helpers/network.ts'
import { waitFor, within } from './helpers/wait.ts'

/** More than the 14 same-IP peers at which the default score falls below gossipsub's graylist. */
const LEAVES = 15

describe('relay gossip among many loopback peers', () => {
  let hub: P2PNode
  const leaves: Array<{ node: P2PNode, relays: RelayDirectory }> = []

  before(async () => {
    const spawn = async (): Promise<P2PNode> => {
      const id = await ephemeralIdentity()
      return await createP2PNode({ privateKey: id.privateKey, listen: ['/ip4/127.0.0.1/tcp/0'], allow: LOOPBACK_ALLOW })
    }
    hub = await spawn()
    hub.services.pubsub.subscribe(RELAY_TOPIC)
    const hubAddr = hub.getMultiaddrs()[0]
    for (let i = 0; i < LEAVES; i++) {
      const node = await spawn()
      const relays = new RelayDirectory()
      // as RelayNode and ChatNode do (their gossip validators): a descriptor is accepted (and passed on) only if it verifies
      node.services.pubsub.topicValidators.set(RELAY_TOPIC, (_peer, msg) =>
        relays.add(msg.data) != null ? TopicValidatorResult.Accept : TopicValidatorResult.Reject)
      node.services.pubsub.subscribe(RELAY_TOPIC)
      leaves.push({ node, relays })
      await within(node.dial(hubAddr), 10_000, `leaf ${i} dialling the hub`)
    }
  })

  after(async () => {
    await Promise.all([hub, ...leaves.map(l => l.node)].map(async n => {
      if (n != null) await within((async () => { await n.stop() })(), 10_000, 'node stop').catch(() => {})
    }))
  })

  it('the hub tracks every leaf as a subscriber of the relay topic', async () => {
    const pubsub = hub.services.pubsub
    await waitFor(() => pubsub.getSubscribers(RELAY_TOPIC).length === LEAVES,
      () => `the hub to see ${LEAVES} subscribers (sees ${pubsub.getSubscribers(RELAY_TOPIC).length} of ${pubsub.getPeers().length} pubsub peers)`,
      15_000)
  })

  it('a relay descriptor published by the hub reaches every leaf by gossip', async () => {
    const id = await ephemeralIdentity()
    const now = Date.now()
    const rec = signRecord({
      kind: KIND_RELAY,
      nick: '',
      identityKey: id.identityKey,
      onionKeys: [{ epoch: 1, notBefore: now - 1000, notAfter: now + 3600_000, key: id.onionPublic }],
      addrs: [],
      sequence: 1n,
      expiry: now + 3600_000
    }, id.signer)
    const heard = (): number => leaves.filter(l => l.relays.list().some(r => r.record.peerId === rec.peerId)).length
    // publish until every leaf has it (one publish normally suffices; a leaf whose subscription is still
    // on its way would miss the first)
    await waitFor(async () => {
      if (heard() === LEAVES) return true
      await hub.services.pubsub.publish(RELAY_TOPIC, rec.bytes)
      return false
    }, () => `every leaf to hear the descriptor (${heard()} of ${LEAVES} did)`, 15_000, 250)
    assert.equal(heard(), LEAVES)
  })
})
