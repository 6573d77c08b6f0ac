/**
 * `/p2pchat/relay-list/1.0.0`: a user's first list of relays, asked once of a bootstrap node or a relay
 * directly (PROTOCOL-V2.md section 2: it reveals nothing about whom the user talks to).
 *
 * Wire: the client opens a stream and closes its write side without sending anything. The server
 * writes one answer and closes:
 *   answer = count u16 (0..64) | count * (length u16 (1..2048) | signed relay descriptor, record v2)
 * so an answer is at most 2 + 64 * (2 + 2048) = 131,202 bytes; a client reads no more than that.
 * The server picks at most 64 descriptors from its callback (its live relay directory), spread by
 * network: /16s (IPv6 /32s) in random order, one descriptor of each per round, at most
 * MAX_PER_SUBNET of any one (an operator with a thousand relays in one /16 fills 4 places of a
 * newcomer's first list, not 64). The client verifies every descriptor (record.ts `verifyRecord` under `/p2pchat/relay/<its peer id>`) and
 * keeps only those that verify, counting the others by fault; a malformed answer is a named error.
 */
import { logger } from '@libp2p/logger'
import type { Libp2p, PeerId, Stream } from '@libp2p/interface'
import { byteStream } from '@libp2p/utils'
import { decodeRecord, KIND_RELAY, MAX_RECORD_SIZE, RecordError, relayKey, verifyRecord } from './record.ts'
import type { SignedRecord } from './record.ts'
import { spreadByGroup, subnetsOfAddrs } from './subnet.ts'

const log = logger('p2pchat:directory:relay-list')

export const RELAY_LIST_PROTOCOL = '/p2pchat/relay-list/1.0.0'
/** PROTOCOL-V2.md section 2: enough relays to build paths and pick an entry relay, one answer's worth. */
export const MAX_RELAY_LIST = 64
/** The largest answer: count + 64 descriptors of the largest record size. */
export const MAX_RELAY_LIST_BYTES = 2 + MAX_RELAY_LIST * (2 + MAX_RECORD_SIZE)
/** How long a client waits for the whole answer by default. */
export const DEFAULT_RELAY_LIST_TIMEOUT_MS = 10_000
/**
 * Descriptors of one /16 (IPv6 /32) in one answer: a few, so that a small network whose relays share a
 * subnet still fills a list, and a large operator in one /16 cannot crowd out the rest (issue 12).
 */
export const MAX_PER_SUBNET = 4
/** A bootstrap node answers many newcomers, but one connection needs at most a couple of lists at once. */
const MAX_INBOUND_STREAMS = 2
/** How long the server spends writing one answer before it gives up on a slow reader. */
const SERVE_TIMEOUT_MS = 10_000

/** The server's answer could not be read (`reason`: oversize, truncated, trailing-bytes, record-length, count). */
export class RelayListError extends Error {
  readonly reason: string
  constructor (reason: string, message?: string) {
    super(message ?? `malformed relay list: ${reason}`)
    this.name = 'RelayListError'
    this.reason = reason
  }
}

/** Encodes a relay list; throws RelayListError for more than 64 descriptors or one of a bad size. */
export function encodeRelayList (descriptors: Uint8Array[]): Uint8Array {
  if (descriptors.length > MAX_RELAY_LIST) throw new RelayListError('count', `at most ${MAX_RELAY_LIST} descriptors, not ${descriptors.length}`)
  let size = 2
  for (const d of descriptors) {
    if (d.length < 1 || d.length > MAX_RECORD_SIZE) throw new RelayListError('record-length')
    size += 2 + d.length
  }
  const out = new Uint8Array(size)
  out[0] = descriptors.length >> 8
  out[1] = descriptors.length & 0xff
  let o = 2
  for (const d of descriptors) {
    out[o++] = d.length >> 8
    out[o++] = d.length & 0xff
    out.set(d, o); o += d.length
  }
  return out
}

/** Splits a relay list into descriptor bytes (copies); never throws. */
export function decodeRelayList (bytes: Uint8Array): { ok: true, descriptors: Uint8Array[] } | { ok: false, reason: string } {
  if (bytes.length > MAX_RELAY_LIST_BYTES) return { ok: false, reason: 'oversize' }
  if (bytes.length < 2) return { ok: false, reason: 'truncated' }
  const count = (bytes[0] << 8) | bytes[1]
  if (count > MAX_RELAY_LIST) return { ok: false, reason: 'count' }
  const descriptors: Uint8Array[] = []
  let o = 2
  for (let i = 0; i < count; i++) {
    if (o + 2 > bytes.length) return { ok: false, reason: 'truncated' }
    const n = (bytes[o] << 8) | bytes[o + 1]
    if (n < 1 || n > MAX_RECORD_SIZE) return { ok: false, reason: 'record-length' }
    if (o + 2 + n > bytes.length) return { ok: false, reason: 'truncated' }
    descriptors.push(new Uint8Array(bytes.subarray(o + 2, o + 2 + n)))
    o += 2 + n
  }
  if (o !== bytes.length) return { ok: false, reason: 'trailing-bytes' }
  return { ok: true, descriptors }
}

type RelayListNode = Pick<Libp2p, 'handle' | 'unhandle' | 'dialProtocol'>

export interface RelayListInit {
  /** Signed relay descriptors this node knows (its own included, for a relay). */
  descriptors: () => Uint8Array[]
}

/** The server side: register on a bootstrap node or a relay with start(), remove with stop(). */
export class RelayListService {
  private readonly node: RelayListNode
  private readonly init: RelayListInit
  private started = false
  readonly stats = { served: 0, failed: 0 }

  constructor (node: RelayListNode, init: RelayListInit) {
    this.node = node
    this.init = init
  }

  async start (): Promise<void> {
    if (this.started) return
    await this.node.handle(RELAY_LIST_PROTOCOL, (stream) => { this.serve(stream).catch(() => {}) }, { maxInboundStreams: MAX_INBOUND_STREAMS })
    this.started = true
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    await this.node.unhandle(RELAY_LIST_PROTOCOL)
  }

  /**
   * Up to 64 descriptors from the callback, each of a size the format carries: by /16 (the first IP
   * address a descriptor lists), groups and members
   * in random order, one per group per round, at most MAX_PER_SUBNET per group.
   */
  choose (): Uint8Array[] {
    let undecodable = 0
    // bytes that do not decode have no /16: each its own group (the client refuses them, by fault)
    const groupOf = (d: Uint8Array): string => {
      try { return subnetsOfAddrs(decodeRecord(d).addrs)[0] } catch { return `undecodable:${undecodable++}` }
    }
    return spreadByGroup(this.init.descriptors().filter(d => d.length >= 1 && d.length <= MAX_RECORD_SIZE), groupOf, MAX_RELAY_LIST, MAX_PER_SUBNET)
  }

  private async serve (stream: Stream): Promise<void> {
    const signal = AbortSignal.timeout(SERVE_TIMEOUT_MS)
    try {
      // one bounded write (at most MAX_RELAY_LIST_BYTES): send() may report a full buffer, but it has
      // taken the bytes, and close() resolves once they are written (or fails at the signal)
      stream.send(encodeRelayList(this.choose()))
      await stream.close({ signal })
      this.stats.served++
    } catch (err) {
      this.stats.failed++
      log('serving a relay list failed: %s', (err as Error).message)
      stream.abort(err as Error)
    }
  }
}

export interface RelayListResult {
  /** The descriptors that verified (live, signed by the relay their key names). */
  relays: SignedRecord[]
  /** Descriptors refused, by fault ('kind' for a name record, 'duplicate' for a relay listed twice). */
  rejected: Record<string, number>
}

/**
 * Asks `peer` for its relay list and returns the descriptors that verify. Throws RelayListError for a
 * malformed answer (`truncated`, `count`, `record-length`, `trailing-bytes`, `oversize`), and whatever
 * dialling throws (the signal's abort included).
 *
 * The answer is read by its own framing (count, then each length), then the end of the stream: the
 * stream's async iterator cannot be used here, because a server this fast has written and closed
 * before dialProtocol returns, and an iterator attached after the remote's close never ends.
 * byteStream keeps what arrived early and checks the remote's close by state, not by event.
 */
export async function fetchRelayList (node: Pick<Libp2p, 'dialProtocol'>, peer: PeerId, signal: AbortSignal = AbortSignal.timeout(DEFAULT_RELAY_LIST_TIMEOUT_MS), now = Date.now()): Promise<RelayListResult> {
  const stream = await node.dialProtocol(peer, RELAY_LIST_PROTOCOL, { signal })
  const reader = byteStream(stream, { maxBufferSize: MAX_RELAY_LIST_BYTES })
  const read = async (n: number): Promise<Uint8Array> => (await reader.read({ bytes: n, signal })).subarray()
  const u16 = async (): Promise<number> => { const b = await read(2); return (b[0] << 8) | b[1] }
  const descriptors: Uint8Array[] = []
  try {
    const count = await u16()
    if (count > MAX_RELAY_LIST) throw new RelayListError('count')
    for (let i = 0; i < count; i++) {
      const n = await u16()
      if (n < 1 || n > MAX_RECORD_SIZE) throw new RelayListError('record-length')
      descriptors.push(new Uint8Array(await read(n)))
    }
    if (await reader.read({ signal }) != null) throw new RelayListError('trailing-bytes')
    await stream.close({ signal })
  } catch (err) {
    stream.abort(err as Error)
    const name = (err as Error).name
    if (name === 'UnexpectedEOFError') throw new RelayListError('truncated')
    if (name === 'StreamBufferError') throw new RelayListError('oversize', `a relay list over ${MAX_RELAY_LIST_BYTES} bytes`)
    throw err
  }
  const relays: SignedRecord[] = []
  const rejected: Record<string, number> = {}
  const seen = new Set<string>()
  for (const bytes of descriptors) {
    let fault: string
    try {
      const claimed = decodeRecord(bytes)
      if (claimed.kind !== KIND_RELAY) throw new RecordError('kind')
      const rec = verifyRecord(relayKey(claimed.peerId), bytes, now)
      if (!seen.has(rec.peerId)) {
        seen.add(rec.peerId)
        relays.push(rec)
        continue
      }
      fault = 'duplicate'
    } catch (err) {
      if (!(err instanceof RecordError)) throw err
      fault = err.fault
    }
    rejected[fault] = (rejected[fault] ?? 0) + 1
  }
  if (Object.keys(rejected).length > 0) log('relay list from %p: %d verified, refused %o', peer, relays.length, rejected)
  return { relays, rejected }
}
