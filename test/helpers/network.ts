/**
 * An in-process network on loopback: one bootstrap node and N peers that know only the bootstrap
 * address. Every node is stopped by `teardown()` (with a timeout), which tests register as they build.
 */
import { Libp2pRecord } from '@libp2p/record'
import { MemoryDatastore } from 'datastore-core'
import { createP2PNode, joinDht, routingTableSize } from '../../node/create.ts'
import type { P2PNode } from '../../node/create.ts'
import { ephemeralIdentity } from '../../node/identity.ts'
import type { EphemeralIdentity } from '../../node/identity.ts'
import { Directory } from '../../protocols/directory/index.ts'
import type { DirectoryInit } from '../../protocols/directory/index.ts'
import { waitFor, within } from './wait.ts'

export const LOOPBACK_ALLOW = ['/ip4/127.0.0.1/ipcidr/8']

export interface TestPeer {
  node: P2PNode
  identity: EphemeralIdentity
  directory: Directory
  /** The datastore under the node's record guard: what this node really stores. */
  datastore: MemoryDatastore
}

/** The value this peer stores for a DHT key, read from its datastore (undefined when none). */
export async function storedValue (peer: TestPeer, key: Uint8Array): Promise<Uint8Array | undefined> {
  for await (const { value } of peer.datastore.query({ prefix: '/dht/record' })) {
    const rec = Libp2pRecord.deserialize(value)
    if (Buffer.compare(rec.key, key) === 0) return rec.value
  }
  return undefined
}

export class TestNetwork {
  readonly peers: TestPeer[] = []
  bootstrapAddrs: string[] = []

  async spawn (opts: { bootstrap?: boolean, directory?: Partial<DirectoryInit> } = {}): Promise<TestPeer> {
    const identity = await ephemeralIdentity()
    const datastore = new MemoryDatastore()
    const node = await createP2PNode({
      datastore,
      privateKey: identity.privateKey,
      listen: ['/ip4/127.0.0.1/tcp/0'],
      bootstrap: opts.bootstrap === true ? [] : this.bootstrapAddrs,
      allow: LOOPBACK_ALLOW
    })
    const directory = new Directory({ peerId: node.peerId, dht: node.services.dht, contentRouting: node.contentRouting }, {
      signer: identity.signer,
      onionKey: identity.onionPublic,
      addrs: () => node.getMultiaddrs().map(a => a.toString()),
      ...opts.directory
    })
    const peer = { node, identity, directory, datastore }
    this.peers.push(peer)
    if (opts.bootstrap === true) this.bootstrapAddrs = node.getMultiaddrs().map(a => a.toString())
    return peer
  }

  /**
   * A bootstrap node and `n` peers, each knowing at least min(n, 8) others in its DHT routing table.
   * Non-empty tables are not enough: a name published while the tables still hold only the bootstrap
   * node reaches just the few peers the bootstrap knows, and later claims to it win everywhere else.
   */
  async start (n: number, opts: { directory?: Partial<DirectoryInit> } = {}): Promise<TestPeer[]> {
    await this.spawn({ bootstrap: true, ...opts })
    const peers = await Promise.all(Array.from({ length: n }, async () => await this.spawn(opts)))
    await Promise.all(peers.map(async p => await joinDht(p.node, this.bootstrapAddrs, { timeoutMs: 30_000 })))
    const want = Math.min(n, 8)
    await waitFor(() => this.peers.every(p => routingTableSize(p.node.services.dht) >= want), `every routing table to hold ${want} peers`, 30_000)
    return peers
  }

  async teardown (): Promise<void> {
    await Promise.all(this.peers.map(async p => {
      p.directory.stop()
      await within(Promise.resolve(p.node.stop()), 10_000, 'node stop').catch(() => {})
    }))
    this.peers.length = 0
  }
}
