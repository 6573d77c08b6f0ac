/**
 * Instruments for the privacy tests (issue 10, "What it must show"): what every DHT server was asked
 * and by whom, whom every node connected to, what relays logged and emitted, what the exits answered
 * and what every DHT node stores. Each instrument only records; the tests judge.
 *
 * - DhtLog: every DHT request of every kind (FIND_NODE, GET_VALUE, PUT_VALUE, GET_PROVIDERS,
 *   ADD_PROVIDER, PING) a node serves, with its sender (node/create.ts observeDhtRequests).
 * - ConnectionLog: every connection a node holds: those open when watching starts, then every
 *   `connection:open` (remote peer, direction), and gossip messages by their signer (`from`).
 * - captureDebugLog: the lines of enabled debug namespaces (@libp2p/logger writes them to stderr).
 * - observeExit: every request a relay's directory exit runs, with its answer.
 * - storedRecords: every record a DHT node holds in its datastore.
 * - observeOnionRequests: which relay a user sent each onion request to, for which service.
 *
 * Some of these reach into objects libp2p does not expose in its types (the node's components, the
 * exit's and onion client's methods on their instances); each says so and fails loudly if the shape
 * changed, so a test can never pass by observing nothing.
 */
import { Libp2pRecord } from '@libp2p/record'
import { enable, disable } from '@libp2p/logger'
import type { Message } from '@libp2p/gossipsub'
import type { Connection, Libp2p } from '@libp2p/interface'
import type { Datastore } from 'interface-datastore'
import { observeDhtRequests } from '../../node/create.ts'
import type { ClientNode, DhtRequest, P2PNode } from '../../node/create.ts'
import type { RelayNode } from '../../node/relay-node.ts'
import type { OnionClient } from '../../protocols/onion/client.ts'
import type { PathRelay } from '../../protocols/onion/paths.ts'

/** Every DHT request the watched nodes serve, in arrival order. */
export class DhtLog {
  readonly requests: DhtRequest[] = []
  private readonly stops: Array<() => void> = []

  watch (node: P2PNode): void {
    this.stops.push(observeDhtRequests(node, r => this.requests.push(r)))
  }

  stop (): void {
    for (const s of this.stops.splice(0)) s()
  }
}

export interface ConnectionEntry {
  /** The watching node's peer id. */
  at: string
  remote: string
  direction: 'inbound' | 'outbound'
  /** 'open' when already open as watching started, 'event' for a connection:open seen afterwards. */
  seen: 'open' | 'event'
  remoteAddr: string
}

export interface GossipEntry {
  at: string
  /** The signer of the message (gossipsub StrictSign), or undefined for an unsigned one. */
  from: string | undefined
  topic: string
}

/** Who each watched node was connected to, and whose gossip it received. */
export class ConnectionLog {
  readonly connections: ConnectionEntry[] = []
  readonly gossip: GossipEntry[] = []
  private readonly stops: Array<() => void> = []

  watch (node: P2PNode | ClientNode): void {
    const at = node.peerId.toString()
    const add = (c: Connection, seen: ConnectionEntry['seen']): void => {
      this.connections.push({ at, remote: c.remotePeer.toString(), direction: c.direction, seen, remoteAddr: c.remoteAddr.toString() })
    }
    for (const c of node.getConnections()) add(c, 'open')
    const onOpen = (e: CustomEvent<Connection>): void => { add(e.detail, 'event') }
    const events: Libp2p = node
    events.addEventListener('connection:open', onOpen)
    this.stops.push(() => { events.removeEventListener('connection:open', onOpen) })
    const pubsub = node.services.pubsub
    const onMessage = (e: CustomEvent<Message>): void => {
      this.gossip.push({ at, from: e.detail.type === 'signed' ? e.detail.from.toString() : undefined, topic: e.detail.topic })
    }
    pubsub.addEventListener('message', onMessage)
    this.stops.push(() => { pubsub.removeEventListener('message', onMessage) })
  }

  /** The distinct remote peers of one watched node. */
  peersOf (at: string): Set<string> {
    return new Set(this.connections.filter(c => c.at === at).map(c => c.remote))
  }

  /** The watched nodes that were ever connected to `remote`. */
  holdersOf (remote: string): Set<string> {
    return new Set(this.connections.filter(c => c.remote === remote).map(c => c.at))
  }

  stop (): void {
    for (const s of this.stops.splice(0)) s()
  }
}

export interface DebugLine {
  namespace: string
  text: string
}

/**
 * Enables `namespaces` (debug syntax, e.g. 'p2pchat:*') and captures their lines instead of printing
 * them, until `stop()`, which also disables them again. @libp2p/logger (weald) formats a line as
 * `[ISO date ]namespace text` and writes it to process.stderr when stderr is not a terminal; other
 * stderr output passes through untouched.
 */
export function captureDebugLog (namespaces: string): { lines: DebugLine[], stop: () => void } {
  const lines: DebugLine[] = []
  const stderr = process.stderr
  const original = stderr.write
  const pattern = /^(?:\d{4}-\d\d-\d\dT\S+Z )?(p2pchat:\S+) ([\s\S]*)$/
  const write = function (this: typeof stderr, chunk: unknown, ...rest: unknown[]): boolean {
    const text = typeof chunk === 'string' ? chunk : Buffer.isBuffer(chunk) ? chunk.toString('utf8') : undefined
    const m = text != null ? pattern.exec(text.replace(/\n$/, '')) : null
    if (m != null) {
      lines.push({ namespace: m[1], text: m[2] })
      return true
    }
    return (original as (...a: unknown[]) => boolean).call(this, chunk, ...rest)
  }
  stderr.write = write as typeof stderr.write
  enable(namespaces)
  return {
    lines,
    stop: () => {
      disable()
      stderr.write = original
    }
  }
}

/**
 * Calls `fn` with every request the relay's directory exit runs and the answer it gives (the bytes
 * after the service header, exit.ts). Wraps `handle` on the relay's DirectoryExit instance: the
 * relay's dispatcher calls it by name.
 */
export function observeExit (relay: RelayNode, fn: (request: Uint8Array, answer: Uint8Array) => void): () => void {
  const exit = relay.exit
  const original = exit.handle
  exit.handle = async function (request, signal) {
    const answer = await original.call(this, request, signal)
    try { fn(request, answer) } catch {}
    return answer
  }
  return () => { exit.handle = original }
}

/**
 * Calls `fn` with the relay and service of every onion request a user sends (directory lookups and
 * publications, mailbox operations). Wraps `request` on the user's OnionClient instance.
 */
export function observeOnionRequests (onion: OnionClient, fn: (final: PathRelay, service: number) => void): () => void {
  const original = onion.request
  onion.request = async function (final, service, request, opts) {
    try { fn(final, service) } catch {}
    return await original.call(this, final, service, request, opts)
  }
  return () => { onion.request = original }
}

/**
 * Every DHT record a node holds: key and value, read from the datastore kad-dht writes to
 * (`/dht/record/...`). libp2p keeps that datastore in its components, which its types do not expose.
 */
export async function storedRecords (node: P2PNode): Promise<Array<{ key: Uint8Array, value: Uint8Array }>> {
  const datastore = (node as unknown as { components?: { datastore?: Datastore } }).components?.datastore
  if (datastore == null || typeof datastore.query !== 'function') throw new Error('this libp2p node exposes no datastore to read')
  const out: Array<{ key: Uint8Array, value: Uint8Array }> = []
  for await (const { value } of datastore.query({ prefix: '/dht/record' })) {
    const rec = Libp2pRecord.deserialize(value)
    out.push({ key: rec.key, value: rec.value })
  }
  return out
}

/** Does `haystack` contain `needle` as a contiguous byte run? */
export function containsBytes (haystack: Uint8Array, needle: Uint8Array): boolean {
  if (needle.length === 0) return true
  return Buffer.from(haystack.buffer, haystack.byteOffset, haystack.byteLength).indexOf(Buffer.from(needle.buffer, needle.byteOffset, needle.byteLength)) >= 0
}

/** Does `text` name `nick` as a word of its own (nick characters are [a-z0-9_-]; base58 ids never split around one)? */
export function namesNick (text: string, nick: string): boolean {
  return new RegExp(`(?<![A-Za-z0-9_-])${nick.replace(/[-]/g, '\\-')}(?![A-Za-z0-9_-])`).test(text)
}
