/**
 * A bootstrap node: a stable identity (its data directory), fixed default ports (TCP 4001,
 * WebSockets 4002), DHT server mode. Newcomers dial it to join the DHT; it stores directory records
 * like any other DHT server and carries the relay directory's gossip.
 */
import { TopicValidatorResult } from '@libp2p/gossipsub'
import { createP2PNode, joinDht } from '../node/create.ts'
import type { P2PNode } from '../node/create.ts'
import type { Identity } from '../node/identity.ts'
import { RelayListService } from '../protocols/directory/relay-list.ts'
import { RELAY_TOPIC, RelayDirectory } from '../protocols/onion/relay-directory.ts'
import { DialbackService } from '../protocols/reachability/dialback.ts'

export const DEFAULT_BOOTSTRAP_LISTEN = ['/ip4/0.0.0.0/tcp/4001', '/ip4/0.0.0.0/tcp/4002/ws']

export interface BootstrapNodeOptions {
  identity: Identity
  listen?: string[]
  /** Other bootstrap nodes to join (a network may have several). */
  bootstrap?: string[]
  allow?: string[]
}

export interface BootstrapNode {
  node: P2PNode
  /** The relays it has heard of (gossip), which it hands to newcomers on /p2pchat/relay-list/1.0.0. */
  relays: RelayDirectory
  /** Full multiaddrs including /p2p/<peer id>, ready to paste into --bootstrap. */
  addrs: () => string[]
  stop: () => Promise<void>
}

export async function startBootstrapNode (opts: BootstrapNodeOptions): Promise<BootstrapNode> {
  const node = await createP2PNode({
    privateKey: opts.identity.privateKey,
    listen: opts.listen ?? DEFAULT_BOOTSTRAP_LISTEN,
    bootstrap: opts.bootstrap ?? [],
    dhtServer: true,
    allow: opts.allow
  })
  // newcomers ask for a first list of relays (users run no DHT): the relays heard on gossip
  const relays = new RelayDirectory()
  const pubsub = node.services.pubsub
  // a stale copy (relays re-sign as their attestations change: two versions may cross) is ignored, not
  // rejected: the honest peer that relayed it late is not penalised
  const verdicts = { accept: TopicValidatorResult.Accept, ignore: TopicValidatorResult.Ignore, reject: TopicValidatorResult.Reject } as const
  pubsub.topicValidators.set(RELAY_TOPIC, (_peer, msg) => verdicts[relays.gossipVerdict(msg.data)])
  pubsub.subscribe(RELAY_TOPIC)
  const relayList = new RelayListService(node, { descriptors: () => relays.list().map(r => r.record.bytes) })
  await relayList.start()
  // relays starting up ask it to dial them back before they announce themselves
  const dialback = new DialbackService(node)
  await dialback.start()
  // joining other bootstrap nodes (redialling them, then looking up its own id) must not hold up
  // this one: newcomers can use it at once
  const joining = new AbortController()
  if ((opts.bootstrap ?? []).length > 0) {
    joinDht(node, opts.bootstrap ?? [], { timeoutMs: 10 * 60_000, signal: joining.signal }).catch(() => {})
  }
  let stopped: Promise<void> | undefined
  return {
    node,
    relays,
    addrs: () => node.getMultiaddrs().map(a => a.toString()),
    stop: async () => {
      joining.abort()
      stopped ??= Promise.resolve(node.stop())
      await stopped
    }
  }
}
