/**
 * Name lookup latency and hop count at several network sizes, each a fresh in-process loopback network
 * built with the test harness (test/helpers/network.ts: a bootstrap node and N-1 peers, all DHT servers).
 *
 * Per size: a few peers publish a name, then random other peers look names up with the query
 * Directory.lookupName runs (kad-dht get, verifyRecord on each value), observed through kad-dht's
 * query events:
 * - peers queried: distinct peers sent a GET_VALUE during the lookup;
 * - hops: the depth, in sequential round trips, of the first peer that answered with a valid record.
 *   Peers the querier asks from its own routing table are depth 1; a peer first named in the `closer`
 *   list of a depth-d peer's PEER_RESPONSE is depth d+1. A copy the querier holds itself (kad-dht
 *   stores each name on the 20 closest peers, so in small networks most peers hold it) is not counted:
 *   the hop count is that of the first remote holder.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { nameKey, verifyRecord } from '../protocols/directory/record.ts'
import { joinDht, routingTableSize } from '../node/create.ts'
import { TestNetwork } from '../test/helpers/network.ts'
import type { TestPeer } from '../test/helpers/network.ts'
import { summarize, within } from './lib/stats.ts'
import type { Summary } from './lib/stats.ts'

export interface LookupOptions {
  sizes: number[]
  /** lookups timed per size */
  lookups: number
  /** names published per size */
  names: number
  log: (line: string) => void
}

export interface LookupSize {
  nodes: number
  latencyMs: Summary
  hops: Summary
  peersQueried: Summary
  found: number
  buildSeconds: number
  routingTable: Summary
  /** nodes whose routing table was still empty when the lookups began (they cannot look anything up) */
  emptyTables: number
}

function random<T> (list: T[]): T { return list[Math.floor(Math.random() * list.length)] }

async function timedLookup (querier: TestPeer, nick: string): Promise<{ ms: number, hops: number, queried: number, found: boolean }> {
  const key = nameKey(nick)
  const self = querier.node.peerId.toString()
  const depth = new Map<string, number>()
  const queried = new Set<string>()
  let hops = -1
  const t0 = performance.now()
  try {
    for await (const e of querier.node.services.dht.get(key, { signal: AbortSignal.timeout(10_000) })) {
      if (e.name === 'SEND_QUERY' && e.messageName === 'GET_VALUE') {
        const to = e.to.toString()
        queried.add(to)
        if (!depth.has(to)) depth.set(to, 1)
      } else if (e.name === 'PEER_RESPONSE' && e.messageName === 'GET_VALUE') {
        const from = e.from.toString()
        const d = depth.get(from) ?? 1
        for (const p of e.closer) if (!depth.has(p.id.toString())) depth.set(p.id.toString(), d + 1)
        if (hops < 0 && e.record != null && from !== self) {
          try {
            verifyRecord(key, e.record.value, Date.now())
            hops = d
          } catch {}
        }
      }
    }
  } catch {}
  return { ms: performance.now() - t0, hops, queried: queried.size, found: hops >= 0 }
}

export async function lookupBench (opts: LookupOptions): Promise<LookupSize[]> {
  const out: LookupSize[] = []
  for (const size of opts.sizes) {
    const net = new TestNetwork()
    try {
      const t0 = performance.now()
      // TestNetwork.start(n) spawns everyone at once and allows 30 s; 100 nodes on two busy cores need
      // longer, so spawn in batches of 20 and wait up to 20 s, then go on (the build time is reported)
      await net.spawn({ bootstrap: true })
      const peers: TestPeer[] = []
      for (let i = 0; i < size - 1; i += 20) {
        peers.push(...await Promise.all(Array.from({ length: Math.min(20, size - 1 - i) }, async () => await net.spawn())))
      }
      // every routing table non-empty, then let kad-dht's own start-up queries spread peers beyond the bootstrap node
      const want = Math.min(size - 1, 8)
      const deadline = Date.now() + 20_000 // proceed with whatever tables there are: a late peer only looks up less well
      // a peer whose one bootstrap dial failed (a busy bootstrap node) dials again, as ChatNode.start does
      await Promise.all(peers.map(async p => await joinDht(p.node, net.bootstrapAddrs, { timeoutMs: Math.max(0, deadline - Date.now()) })))
      while (Date.now() < deadline && !net.peers.every(p => routingTableSize(p.node.services.dht) >= want)) await new Promise(resolve => setTimeout(resolve, 200))
      const buildSeconds = (performance.now() - t0) / 1000
      const owners = peers.slice(0, opts.names)
      const nicks = owners.map((_, i) => `name${size}x${i}`)
      await Promise.all(owners.map(async (p, i) => await p.directory.publishName(nicks[i]).catch(() => undefined)))
      opts.log(`  ${size} nodes: built in ${buildSeconds.toFixed(1)} s, ${opts.names} names published, ${opts.lookups} lookups`)
      const samples: Array<Awaited<ReturnType<typeof timedLookup>>> = []
      for (let i = 0; i < opts.lookups; i++) {
        const k = i % nicks.length
        const owner = owners[k].node.peerId.toString()
        const querier = random(net.peers.filter(p => p.node.peerId.toString() !== owner && !p.node.peerId.equals(peerIdFromString(net.peers[0].node.peerId.toString()))))
        samples.push(await timedLookup(querier, nicks[k]))
      }
      const ok = samples.filter(s => s.found)
      out.push({
        nodes: size,
        latencyMs: summarize(ok.map(s => s.ms)),
        hops: summarize(ok.map(s => s.hops)),
        peersQueried: summarize(ok.map(s => s.queried)),
        found: ok.length,
        buildSeconds,
        routingTable: summarize(net.peers.map(p => routingTableSize(p.node.services.dht))),
        emptyTables: net.peers.filter(p => routingTableSize(p.node.services.dht) === 0).length
      })
    } finally {
      await within(net.teardown(), 30_000)
    }
  }
  return out
}

if (import.meta.main) {
  const r = await lookupBench({ sizes: [10, 25], lookups: 6, names: 3, log: console.log })
  console.log(JSON.stringify(r, null, 1))
  process.exit(0)
}
