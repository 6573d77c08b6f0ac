/**
 * The libp2p node factory: TCP and WebSockets (both listening), Noise, Yamux, identify, ping,
 * kad-dht on the private protocol /p2pchat/kad/1.0.0 and gossipsub. Noise runs on libsodium
 * (node/noise-crypto.ts: the same wire, ~6x less CPU per 3 KiB message than the default crypto).
 *
 * Loopback and LAN networks need two DHT settings the defaults get wrong (see
 * shared/notes/libp2p-v3.md): `clientMode: false` where a node serves, and a peerInfoMapper that keeps
 * private addresses.
 */
import { createHash } from 'node:crypto'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { webSockets } from '@libp2p/websockets'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import type { GossipSub } from '@libp2p/gossipsub'
import type { RPC } from '@libp2p/gossipsub/message'
import type { Identify } from '@libp2p/identify'
import type { KadDHT, SingleKadDHT } from '@libp2p/kad-dht'
import type { Libp2p, PeerId, PrivateKey } from '@libp2p/interface'
import type { ConnectionMonitorInit } from 'libp2p'
import type { Ping } from '@libp2p/ping'
import type { Datastore } from 'interface-datastore'
import { UserError } from './errors.ts'
import { sodiumNoiseCrypto } from './noise-crypto.ts'

export const DHT_PROTOCOL = '/p2pchat/kad/1.0.0'

/**
 * The most a Yamux stream lets its peer send ahead of what it has read (yamux's own default grows to
 * 16 MiB). A busy relay reads more slowly than a sender writes, so everything in that window waits in
 * line: with 16 MiB per stream, a libp2p ping on the same connection waited behind seconds of packets,
 * the connection monitor timed it out and aborted the connection, and every packet in flight was lost.
 * 256 KiB (yamux's initial window, ~85 packets) bounds that wait to a fraction of a second on a
 * saturated relay and still carries ~2.5 MB/s per stream at 100 ms round trip.
 */
export const MAX_STREAM_WINDOW = 256 * 1024

/**
 * The smallest time libp2p's connection monitor gives a ping before it aborts the connection (its
 * own default: 5 s). The monitor pings every connection every 10 s and, by default, aborts a
 * connection whose ping is not answered within max(5 s, 1.2 x the recent average). On a loaded
 * relay or a loaded test machine a ping queues behind packets and event-loop work and took more than
 * 5 s (seen in loaded tests and labs): the connection was aborted with every packet in flight on it,
 * and a user lost its entry relay. A dead peer is still found: a closed socket at once, a silent one
 * within a ping interval plus this timeout (~30 s instead of ~15 s).
 */
export const PING_MIN_TIMEOUT_MS = 20_000
/** The longest the adaptive ping timeout may grow to after failures (libp2p's default, written out). */
export const PING_MAX_TIMEOUT_MS = 60_000

/** libp2p's connection monitor pings every connection this often (its default, written out). */
const PING_INTERVAL_MS = 10_000
/**
 * Ping streams one connection may have open at once, each way. The monitor opens a new ping every
 * interval whether or not the last one was answered, and @libp2p/ping allows one outbound and two
 * inbound ping streams per connection by default: a ping slower than the interval made the next one
 * fail with TooManyOutboundProtocolStreamsError, and the monitor aborted the connection for that
 * failure (found by test/connection-monitor.test.ts). Enough for pings as slow as the longest timeout.
 */
export const PING_STREAMS = Math.ceil(PING_MAX_TIMEOUT_MS / PING_INTERVAL_MS) + 1

/** The ping service of every node: room for the monitor's slow pings (PING_STREAMS). */
function pingService (): ReturnType<typeof ping> {
  return ping({ maxOutboundStreams: PING_STREAMS, maxInboundStreams: PING_STREAMS })
}

/** The connection monitor's settings for every node (see PING_MIN_TIMEOUT_MS); `pingIntervalMs` for tests. */
export function connectionMonitorInit (pingIntervalMs?: number): ConnectionMonitorInit {
  return {
    pingInterval: pingIntervalMs ?? PING_INTERVAL_MS,
    pingTimeout: { minTimeout: PING_MIN_TIMEOUT_MS, maxTimeout: PING_MAX_TIMEOUT_MS }
  }
}

/** Default listen addresses of a user or relay node: any free port on every interface, TCP and WebSockets. */
export const DEFAULT_LISTEN = ['/ip4/0.0.0.0/tcp/0', '/ip4/0.0.0.0/tcp/0/ws']

/**
 * Addresses gossipsub's peer score does not penalise for being shared. Its IP colocation term docks
 * every peer of an IP that more than 10 peers share by 5 x surplus^2. On one host every peer is
 * 127.0.0.1: from 11 peers none is ever grafted into a mesh (score < 0), from 14 a node no longer
 * publishes to them (< publishThreshold -50), and from 15 it drops their subscriptions and messages
 * as graylisted (< -80), so relay descriptors stopped arriving by gossip. Loopback peers run on this
 * machine by its owner's choice; the Sybil guard still applies to every other address.
 */
const LOOPBACK_IPS = new Set(['127.0.0.1', '::1'])

/**
 * Gossipsub's duplicate check before it verifies a message's signature: a hash of every field as
 * received. Without it each copy a node receives (from the publisher and from mesh peers) is
 * verified again before being recognised as already seen.
 */
function wireMessageId (msg: RPC.Message): string {
  const h = createHash('sha256')
  for (const field of [msg.from, msg.seqno, new TextEncoder().encode(msg.topic), msg.data, msg.signature, msg.key]) {
    const len = Buffer.alloc(4)
    len.writeUInt32BE(field?.length ?? 0xffffffff)
    h.update(len)
    if (field != null) h.update(field)
  }
  return h.digest('base64')
}

export type P2PServices = {
  identify: Identify
  ping: Ping
  dht: KadDHT
  pubsub: GossipSub
}

export type P2PNode = Libp2p<P2PServices>

export interface CreateNodeOptions {
  privateKey: PrivateKey
  listen?: string[]
  bootstrap?: string[]
  /** Serve the DHT (store records, answer queries). Default true: on loopback and LANs every node must. */
  dhtServer?: boolean
  /** Lift libp2p's per-host inbound connection rate limit for these multiaddr prefixes (tests on loopback). */
  allow?: string[]
  datastore?: Datastore
  /** Addresses to announce instead of the listen addresses (a relay behind a port forward: `--announce`). */
  announce?: string[]
  /** Yamux's largest stream window (default MAX_STREAM_WINDOW); benchmarks measure others. */
  maxStreamWindow?: number
  /** How often the connection monitor pings each connection (default libp2p's 10 s; tests). */
  pingIntervalMs?: number
}

/** Checks every multiaddr so that a typo is a clear error, not a libp2p stack trace. */
export function parseMultiaddrs (addrs: string[], what: string): string[] {
  for (const a of addrs) {
    try {
      multiaddr(a)
    } catch {
      throw new UserError(`bad ${what} multiaddr: ${a}`, 'BAD_MULTIADDR')
    }
  }
  return addrs
}

export function bootstrapPeersWithId (addrs: string[]): string[] {
  for (const a of addrs) {
    if (multiaddr(a).getComponents().find(c => c.name === 'p2p') == null) {
      throw new UserError(`bootstrap multiaddr has no /p2p/<peer id>: ${a}`, 'BAD_MULTIADDR')
    }
  }
  return addrs
}

export async function createP2PNode (opts: CreateNodeOptions): Promise<P2PNode> {
  // loaded here, not at the top: a user's process (createClientNode) runs no DHT and so does not pay
  // for kad-dht's code (~6 MiB of RSS, bench/idle.ts; issue 13), nor for the directory's DHT rules,
  // the datastore or the bootstrap discovery that only serving nodes use
  const [{ kadDHT, passthroughMapper }, { bootstrap }, { MemoryDatastore }, { directorySelectors, directoryValidators, GuardedDatastore }] = await Promise.all([
    import('@libp2p/kad-dht'), import('@libp2p/bootstrap'), import('datastore-core'), import('../protocols/directory/dht.ts')
  ])
  const listen = parseMultiaddrs(opts.listen ?? DEFAULT_LISTEN, 'listen')
  const bootstrapList = bootstrapPeersWithId(parseMultiaddrs(opts.bootstrap ?? [], 'bootstrap'))
  const peerDiscovery: Array<ReturnType<typeof bootstrap>> = []
  if (bootstrapList.length > 0) {
    peerDiscovery.push(bootstrap({ list: bootstrapList, timeout: 10 }))
  }
  const created = createLibp2p({
    privateKey: opts.privateKey,
    datastore: new GuardedDatastore(opts.datastore ?? new MemoryDatastore()),
    addresses: { listen, ...(opts.announce == null ? {} : { announce: parseMultiaddrs(opts.announce, 'announce') }) },
    transports: [tcp(), webSockets()],
    connectionEncrypters: [noise({ crypto: sodiumNoiseCrypto })],
    streamMuxers: [yamux({ streamOptions: { maxStreamWindowSize: opts.maxStreamWindow ?? MAX_STREAM_WINDOW } })],
    peerDiscovery,
    connectionManager: {
      allow: opts.allow ?? []
    },
    connectionMonitor: connectionMonitorInit(opts.pingIntervalMs),
    services: {
      identify: identify(),
      ping: pingService(),
      dht: kadDHT({
        protocol: DHT_PROTOCOL,
        clientMode: opts.dhtServer === false,
        // kad-dht holds every query until its first self-query, which it starts on a 1 s timer by
        // default: a fixed second of every start. At 0 the self-query waits only for the first
        // routing-table peer (the bootstrap node), so a newcomer's first lookups run as soon as it joins.
        initialQuerySelfInterval: 0,
        // and does not hold queries behind that self-query either: it asks for the ~20 peers closest to
        // this node, which on a small network means dialling everyone (1-1.5 s for a cold newcomer)
        // before its first lookup may start. A query walks towards its own key from whatever the table
        // holds (ChatNode.start waits for one peer first: joinDht), as Kademlia lookups do.
        allowQueryWithZeroPeers: true,
        peerInfoMapper: passthroughMapper,
        validators: directoryValidators,
        selectors: directorySelectors
      }),
      pubsub: gossipsub({
        allowPublishToZeroTopicPeers: true,
        ignoreDuplicatePublishError: true,
        scoreParams: { IPColocationFactorWhitelist: LOOPBACK_IPS },
        fastMsgIdFn: wireMessageId
      })
    }
  })
  try {
    return await created
  } catch (err) {
    throw listenError(err) ?? err
  }
}

/** What to do about a listen address that failed, by the socket error's code. */
const LISTEN_ADVICE: Record<string, string> = {
  EADDRINUSE: 'is already in use (another p2pchat, or another program, holds that port): stop it, or choose another port with --listen (tcp/0 picks a free one)',
  EADDRNOTAVAIL: 'is not an address of this machine: choose one of its own addresses with --listen, or 0.0.0.0 for all of them',
  EACCES: 'needs privileges this user does not have (ports below 1024): choose a port of 1024 or more with --listen'
}

/**
 * libp2p refuses to start when a listen address fails, with one UnsupportedListenAddressesError whose
 * message lists each failed address and its socket error on a line of its own
 * (`  /ip4/127.0.0.1/tcp/4001: Error: listen EADDRINUSE: ...`). Turned into one line the user can act on.
 */
export function listenError (err: unknown): UserError | undefined {
  if ((err as Error)?.name !== 'UnsupportedListenAddressesError') return undefined
  const failures = [...String((err as Error).message).matchAll(/^\s*(\/\S+): .*?\b(E[A-Z]+)\b/gm)].map(m => ({ addr: m[1], code: m[2] }))
  if (failures.length === 0) {
    return new UserError('could not listen on the --listen addresses: p2pchat listens on TCP and WebSockets (/ip4/<address>/tcp/<port>, with /ws for WebSockets); check them, or use /ip4/0.0.0.0/tcp/0', 'LISTEN_FAILED')
  }
  const first = failures[0]
  const advice = LISTEN_ADVICE[first.code] ?? `failed (${first.code}): check --listen`
  const more = failures.length > 1 ? ` (and ${failures.length - 1} more address${failures.length > 2 ? 'es' : ''})` : ''
  return new UserError(`cannot listen on ${first.addr}${more}: it ${advice}`, first.code === 'EADDRINUSE' ? 'ADDRESS_IN_USE' : 'LISTEN_FAILED')
}

/** How many peers the node's DHT routing table holds (kad-dht's factory is typed as the general KadDHT). */
export function routingTableSize (dht: KadDHT): number {
  return isSingleKadDHT(dht) ? dht.routingTable.size : 0
}

function isSingleKadDHT (dht: KadDHT): dht is SingleKadDHT {
  return 'routingTable' in dht
}

/**
 * Waits until the DHT routing table holds a peer, dialling the bootstrap addresses again meanwhile:
 * @libp2p/bootstrap dials each address once, so a newcomer whose first dial was refused or timed out
 * (a busy bootstrap node, many newcomers at once) would otherwise never join, and kad-dht drops a
 * connected bootstrap peer whose first ping timed out. A round (dial, then add to the table) 
 * starts `redialMs` after the previous round settled, and each may take until the deadline (a
 * loaded bootstrap node can take seconds to finish a handshake; aborting it early only starts over).
 * Resolves true once joined, false when `timeoutMs` passes; throws if `signal` aborts.
 */
export async function joinDht (node: P2PNode, bootstrapAddrs: string[], opts: { timeoutMs: number, redialMs?: number, signal?: AbortSignal }): Promise<boolean> {
  const deadline = Date.now() + opts.timeoutMs
  const redialMs = opts.redialMs ?? 2_000
  let nextRound = Date.now() + redialMs
  let round: Promise<unknown> | undefined
  while (routingTableSize(node.services.dht) === 0) {
    if (Date.now() > deadline) return false
    opts.signal?.throwIfAborted()
    if (round == null && Date.now() >= nextRound) {
      const signal = AbortSignal.timeout(Math.max(1, deadline - Date.now()))
      const dht = node.services.dht
      round = Promise.allSettled(bootstrapAddrs.map(async addr => {
        const conn = await node.dial(multiaddr(addr), { signal })
        // kad-dht pings a new contact before it enters the table and drops it if the ping times out,
        // then never tries again while the connection stays open: ask it again
        // (RoutingTable.add is public on kad-dht's class, not on its exported interface)
        const table = isSingleKadDHT(dht) ? dht.routingTable as unknown as { add?: (peer: PeerId, o: { signal: AbortSignal }) => Promise<void> } : undefined
        if (typeof table?.add === 'function') await table.add(conn.remotePeer, { signal })
      })).then(() => { round = undefined; nextRound = Date.now() + redialMs })
    }
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  lookUpSelf(node)
  return true
}

/**
 * kad-dht's own first self-query runs at start, before the table holds anyone (queries are not held
 * back for it: allowQueryWithZeroPeers), so it finds nobody and the next one is minutes away. Once
 * joined, look up this node's own id in the background: the peers met on the way fill the table.
 */
function lookUpSelf (node: P2PNode): void {
  void (async () => {
    for await (const _event of node.services.dht.getClosestPeers(node.peerId.toMultihash().bytes, { signal: AbortSignal.timeout(30_000) })) {
      // the routing table learns from the responses; nothing to do with the events here
    }
  })().catch(() => {})
}

export type ClientServices = {
  identify: Identify
  ping: Ping
  pubsub: GossipSub
}

/** A user's node in protocol version 2: it dials out only and runs no DHT (PROTOCOL-V2.md section 2). */
export type ClientNode = Libp2p<ClientServices>

/**
 * A client node: TCP and WebSockets to dial with, no listen address unless given, and no DHT service at
 * all, so it never sends a DHT request from its peer id (and nobody adds it to a routing table: it does
 * not speak the DHT protocol). Gossipsub stays: relay descriptors reach it through its entry relay.
 * The private key is the transport key: a user passes a fresh one for every run.
 */
export async function createClientNode (opts: { privateKey: PrivateKey, listen?: string[], allow?: string[], pingIntervalMs?: number }): Promise<ClientNode> {
  const listen = parseMultiaddrs(opts.listen ?? [], 'listen')
  return await createLibp2p({
    privateKey: opts.privateKey,
    addresses: { listen },
    transports: [tcp(), webSockets()],
    connectionEncrypters: [noise({ crypto: sodiumNoiseCrypto })],
    streamMuxers: [yamux({ streamOptions: { maxStreamWindowSize: MAX_STREAM_WINDOW } })],
    connectionManager: { allow: opts.allow ?? [] },
    connectionMonitor: connectionMonitorInit(opts.pingIntervalMs),
    services: {
      identify: identify(),
      ping: pingService(),
      pubsub: gossipsub({
        allowPublishToZeroTopicPeers: true,
        ignoreDuplicatePublishError: true,
        scoreParams: { IPColocationFactorWhitelist: LOOPBACK_IPS },
        fastMsgIdFn: wireMessageId
      })
    }
  })
}

/** One DHT request as the serving node saw it: who sent it, which RPC, and the key it names (if any). */
export interface DhtRequest {
  /** The serving node. */
  at: string
  /** The peer id the request came from. */
  from: string
  type: string
  key: Uint8Array | undefined
}

/**
 * Calls `observer` for every DHT request this node serves, of every kind (FIND_NODE, GET_VALUE,
 * PUT_VALUE, GET_PROVIDERS, ADD_PROVIDER, PING), before kad-dht handles it. For the privacy tests (who
 * asked for what) and for operators' metrics. kad-dht routes every inbound message through its RPC
 * object's handleMessage; this wraps that method on the node's own instance. Returns a function that
 * removes the observer.
 */
export function observeDhtRequests (node: P2PNode, observer: (request: DhtRequest) => void): () => void {
  const dht = node.services.dht as unknown as { rpc?: { handleMessage: (peer: PeerId, msg: { type: string, key?: Uint8Array }) => Promise<unknown> } }
  const rpc = dht.rpc
  if (rpc == null || typeof rpc.handleMessage !== 'function') throw new Error('this kad-dht has no RPC object to observe')
  const original = rpc.handleMessage
  const at = node.peerId.toString()
  rpc.handleMessage = async function (peer, msg) {
    try { observer({ at, from: peer.toString(), type: String(msg.type), key: msg.key }) } catch {}
    return await original.call(this, peer, msg)
  }
  return () => { rpc.handleMessage = original }
}
