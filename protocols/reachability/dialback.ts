/**
 * `/p2pchat/dialback/1.0.0`: may a node volunteer as a relay? It asks peers it is connected to (relays
 * and bootstrap nodes, which serve this protocol; users do not) to dial its addresses back. Spec:
 * protocols/reachability/SPEC.md. Why not `@libp2p/autonat`: it never dials private or documentation
 * ranges (10/8, 172.16/12, 192.168/16, 127/8, ...), so in a LAN, the lab and loopback tests it
 * confirms nothing; here the rule that keeps a helper from being used to dial third parties is that it
 * dials back only the IP address the request came from (or, for a request from loopback, a loopback
 * address: the same machine).
 *
 * Wire (one stream per request; all integers big-endian):
 *   request  = version 0x01 | count u8 (1..8) | count x (length u16 (1..256) | multiaddr bytes)
 *   response = version 0x01 | count u8 (= the request's) | count x status u8 | length u16 (0..256) | observed multiaddr bytes
 * The requester writes its request and closes its write side; the helper dials each address with a new
 * connection (libp2p `dial(..., { force: true })` to `<address>/p2p/<requester>`, so the Noise handshake
 * proves it reached the requester itself, not whoever holds the address), closes that connection,
 * writes the response and closes. Statuses: 0 reachable, 1 dial failed, 2 refused: not the address the
 * request came from, 3 refused: not an /ip4|/ip6 + /tcp (+ /ws) address, 4 refused: busy.
 * Limits: 8 addresses, 256 bytes each; a helper runs at most 4 requests at once (more are answered
 * busy) and gives each dial 10 s.
 */
import { logger } from '@libp2p/logger'
import type { Connection, Libp2p, PeerId, Stream } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import type { Multiaddr } from '@multiformats/multiaddr'
import { byteStream } from '@libp2p/utils'
import { fetchRelayList } from '../directory/relay-list.ts'

const log = logger('p2pchat:dialback')

export const DIALBACK_PROTOCOL = '/p2pchat/dialback/1.0.0'
export const DIALBACK_VERSION = 0x01
/** A relay listens on a few addresses (TCP, WebSockets, maybe IPv6): 8 covers them. */
export const MAX_DIALBACK_ADDRS = 8
/** A multiaddr of an IP, a port and /ws is under 40 bytes; 256 leaves room and bounds the request. */
export const MAX_ADDR_BYTES = 256
export const MAX_REQUEST_BYTES = 2 + MAX_DIALBACK_ADDRS * (2 + MAX_ADDR_BYTES)
/** A TCP connect plus a Noise handshake over a slow link, with retransmissions: 10 s. */
export const DIAL_TIMEOUT_MS = 10_000
/** A helper dials for at most this many requests at once: checks are rare (a relay starting), dials are not free. */
export const MAX_CONCURRENT_REQUESTS = 4
/**
 * A helper that answers busy for every address, or whose answer does not come (a reset stream, a
 * timeout), is asked again, at most this many times, after BUSY_PAUSE_MS x the attempt (plus up to as
 * much again at random): when a network starts, all its relays ask its bootstrap node at once, and it
 * serves 4 at a time.
 */
export const BUSY_RETRIES = 5
export const BUSY_PAUSE_MS = 500
/** A requester asks at most this many helpers. */
export const MAX_HELPERS = 8
/** Confirmations wanted from helpers in distinct /16s (IPv6: /32s), as Tor wants reachability seen from more than one place. */
export const REQUIRED_GROUPS = 2
const REQUEST_TIMEOUT_MS = MAX_DIALBACK_ADDRS * DIAL_TIMEOUT_MS + 5_000

export const STATUS = { reachable: 0, dialFailed: 1, notYourAddress: 2, badAddress: 3, busy: 4 } as const
export type DialbackStatus = 'reachable' | 'dial-failed' | 'not-your-address' | 'bad-address' | 'busy'
const STATUS_NAMES: DialbackStatus[] = ['reachable', 'dial-failed', 'not-your-address', 'bad-address', 'busy']

/** A request or response that does not follow the wire format (`reason` says how). */
export class DialbackFormatError extends Error {
  readonly reason: string
  constructor (reason: string) {
    super(`malformed dial-back message: ${reason}`)
    this.name = 'DialbackFormatError'
    this.reason = reason
  }
}

/** No connected peer answered a dial-back request: nobody could say whether this node is reachable. */
export class NoDialbackHelperError extends Error {
  override name = 'NoDialbackHelperError'
  constructor () { super('no connected relay or bootstrap node answered a dial-back request') }
}

export function encodeRequest (addrs: Uint8Array[]): Uint8Array {
  if (addrs.length < 1 || addrs.length > MAX_DIALBACK_ADDRS) throw new DialbackFormatError('count')
  const parts: Uint8Array[] = [Uint8Array.of(DIALBACK_VERSION, addrs.length)]
  for (const a of addrs) {
    if (a.length < 1 || a.length > MAX_ADDR_BYTES) throw new DialbackFormatError('address-length')
    parts.push(Uint8Array.of(a.length >> 8, a.length & 0xff), a)
  }
  return Buffer.concat(parts)
}

export function decodeRequest (b: Uint8Array): Uint8Array[] {
  if (b.length < 2 || b[0] !== DIALBACK_VERSION) throw new DialbackFormatError(b.length < 2 ? 'truncated' : 'version')
  const count = b[1]
  if (count < 1 || count > MAX_DIALBACK_ADDRS) throw new DialbackFormatError('count')
  const out: Uint8Array[] = []
  let o = 2
  for (let i = 0; i < count; i++) {
    if (o + 2 > b.length) throw new DialbackFormatError('truncated')
    const n = (b[o] << 8) | b[o + 1]
    if (n < 1 || n > MAX_ADDR_BYTES) throw new DialbackFormatError('address-length')
    if (o + 2 + n > b.length) throw new DialbackFormatError('truncated')
    out.push(new Uint8Array(b.subarray(o + 2, o + 2 + n)))
    o += 2 + n
  }
  if (o !== b.length) throw new DialbackFormatError('trailing-bytes')
  return out
}

export function encodeResponse (statuses: number[], observed: Uint8Array): Uint8Array {
  if (observed.length > MAX_ADDR_BYTES) throw new DialbackFormatError('address-length')
  return Buffer.concat([Uint8Array.of(DIALBACK_VERSION, statuses.length, ...statuses, observed.length >> 8, observed.length & 0xff), observed])
}

export function decodeResponse (b: Uint8Array, expected: number): { statuses: DialbackStatus[], observed: Uint8Array } {
  if (b.length < 2 || b[0] !== DIALBACK_VERSION) throw new DialbackFormatError(b.length < 2 ? 'truncated' : 'version')
  if (b[1] !== expected) throw new DialbackFormatError('count')
  const o = 2 + expected
  if (b.length < o + 2) throw new DialbackFormatError('truncated')
  const statuses = Array.from(b.subarray(2, o), s => {
    const name = STATUS_NAMES[s]
    if (name == null) throw new DialbackFormatError('status')
    return name
  })
  const n = (b[o] << 8) | b[o + 1]
  if (n > MAX_ADDR_BYTES) throw new DialbackFormatError('address-length')
  if (b.length !== o + 2 + n) throw new DialbackFormatError(b.length < o + 2 + n ? 'truncated' : 'trailing-bytes')
  return { statuses, observed: new Uint8Array(b.subarray(o + 2)) }
}

/** The IP address of a multiaddr (`/ip4/...` or `/ip6/...`), if it starts with one. */
export function ipOf (ma: Multiaddr): string | undefined {
  const c = ma.getComponents()[0]
  return c != null && (c.name === 'ip4' || c.name === 'ip6') ? c.value : undefined
}

/** 0 public, 1 private or link-local, 2 loopback, 3 no IP: the order addresses are checked in. */
function rankOf (ip: string | undefined): number {
  if (ip == null) return 3
  if (isLoopback(ip)) return 2
  if (/^(10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.|169\.254\.|100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\.)/.test(ip) || /^f[cd]|^fe80/i.test(ip)) return 1
  return 0
}

function isLoopback (ip: string): boolean {
  return ip.startsWith('127.') || ip === '::1'
}

/** The network group of a helper: its IPv4 /16 or IPv6 /32 (Tor's path rule counts /16s alike). */
export function groupOf (ma: Multiaddr): string {
  const ip = ipOf(ma)
  if (ip == null) return ma.toString()
  if (ip.includes(':')) return ip.split(':').slice(0, 2).join(':')
  return ip.split('.').slice(0, 2).join('.')
}

/** Only /ip4|ip6/<ip>/tcp/<port>, optionally /ws, optionally ending in /p2p/<the requester>. */
function dialable (ma: Multiaddr, requester: PeerId): Multiaddr | undefined {
  const parts = ma.getComponents()
  if (parts.at(-1)?.name === 'p2p') {
    if (parts.at(-1)?.value !== requester.toString()) return undefined
    parts.pop()
  }
  const names = parts.map(p => p.name).join('/')
  if (names !== 'ip4/tcp' && names !== 'ip6/tcp' && names !== 'ip4/tcp/ws' && names !== 'ip6/tcp/ws') return undefined
  return multiaddr(parts.map(p => `/${p.name}${p.value == null ? '' : `/${p.value}`}`).join(''))
}

type DialbackNode = Pick<Libp2p, 'handle' | 'unhandle' | 'dial'>

/** The helper's side: relays and bootstrap nodes register it with start(). */
export class DialbackService {
  private readonly node: DialbackNode
  private running = 0
  private started = false
  readonly stats = { requests: 0, busy: 0, malformed: 0, reachable: 0, dialFailed: 0, refused: 0 }

  constructor (node: DialbackNode) {
    this.node = node
  }

  async start (): Promise<void> {
    if (this.started) return
    await this.node.handle(DIALBACK_PROTOCOL, (stream, connection) => { this.serve(stream, connection).catch(() => {}) }, { maxInboundStreams: 4 })
    this.started = true
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    await this.node.unhandle(DIALBACK_PROTOCOL)
  }

  private async serve (stream: Stream, connection: Connection): Promise<void> {
    const signal = AbortSignal.timeout(REQUEST_TIMEOUT_MS)
    const reader = byteStream(stream, { maxBufferSize: MAX_REQUEST_BYTES })
    try {
      const chunks: Uint8Array[] = []
      let size = 0
      while (true) {
        const chunk = await reader.read({ signal })
        if (chunk == null) break
        size += chunk.byteLength
        if (size > MAX_REQUEST_BYTES) throw new DialbackFormatError('oversize')
        chunks.push(chunk.subarray())
      }
      let addrs: Uint8Array[]
      try {
        addrs = decodeRequest(Buffer.concat(chunks))
      } catch (err) {
        this.stats.malformed++
        throw err
      }
      this.stats.requests++
      const observed = connection.remoteAddr
      let statuses: number[]
      if (this.running >= MAX_CONCURRENT_REQUESTS) {
        this.stats.busy++
        statuses = addrs.map(() => STATUS.busy)
      } else {
        this.running++
        try {
          statuses = []
          for (const bytes of addrs) statuses.push(await this.check(bytes, connection.remotePeer, ipOf(observed), signal))
        } finally {
          this.running--
        }
      }
      const observedBytes = observed.bytes.length <= MAX_ADDR_BYTES ? observed.bytes : new Uint8Array(0)
      stream.send(encodeResponse(statuses, observedBytes))
      await stream.close({ signal })
    } catch (err) {
      log('a dial-back request failed: %s', (err as Error).message)
      stream.abort(err as Error)
    }
  }

  private async check (bytes: Uint8Array, requester: PeerId, observedIp: string | undefined, signal: AbortSignal): Promise<number> {
    let target: Multiaddr | undefined
    try { target = dialable(multiaddr(bytes), requester) } catch { target = undefined }
    if (target == null) { this.stats.refused++; return STATUS.badAddress }
    const ip = ipOf(target)
    if (ip == null || observedIp == null || !(ip === observedIp || (isLoopback(ip) && isLoopback(observedIp)))) {
      this.stats.refused++
      return STATUS.notYourAddress
    }
    try {
      const conn = await this.node.dial(target.encapsulate(`/p2p/${requester.toString()}`), { force: true, signal: AbortSignal.any([signal, AbortSignal.timeout(DIAL_TIMEOUT_MS)]) })
      await conn.close().catch(() => {})
      this.stats.reachable++
      return STATUS.reachable
    } catch (err) {
      log('dialling back failed: %s', (err as Error).message)
      this.stats.dialFailed++
      return STATUS.dialFailed
    }
  }
}

export interface AddressVerdict {
  addr: string
  /** network groups of the helpers that dialled it back */
  confirmedBy: string[]
  /** ... that tried and failed */
  failedBy: string[]
  /** ... that refused, and why */
  refused: Array<{ group: string, status: DialbackStatus }>
}

export interface ReachabilityReport {
  /** the addresses confirmed from enough network groups: the only ones a relay announces */
  verified: string[]
  addrs: AddressVerdict[]
  /** helpers that answered, and their distinct network groups */
  helpers: number
  groups: number
  /** confirmations wanted per address: REQUIRED_GROUPS, or every group there is when fewer answered */
  required: number
  /** how the helpers saw this node (its public address behind a NAT) */
  observed: string[]
}

/**
 * Asks up to MAX_HELPERS connected peers (one per network group first) to dial `addrs` back. An address
 * is verified when helpers in `required` distinct groups reached it and more reached it than failed to;
 * `required` is `requiredGroups` (default 2), or the number of groups that answered when fewer did (a new
 * network's first relays know only its bootstrap node). Throws NoDialbackHelperError when no peer answers.
 */
export async function checkReachability (node: Pick<Libp2p, 'getConnections'>, addrs: Multiaddr[], options: { signal?: AbortSignal, requiredGroups?: number } = {}): Promise<ReachabilityReport> {
  // at most 8 go in a request: public addresses first, then private ranges, loopback last (a host with
  // many interfaces must not crowd out the address that matters)
  const candidates = addrs.filter(a => a.bytes.length <= MAX_ADDR_BYTES)
    .map((a, i) => ({ a, i, rank: rankOf(ipOf(a)) }))
    .sort((x, y) => x.rank - y.rank || x.i - y.i)
    .map(x => x.a)
    .slice(0, MAX_DIALBACK_ADDRS)
  if (candidates.length === 0) throw new DialbackFormatError('no address to check')
  const byPeer = new Map<string, Connection>()
  // a peer's outbound connection first: its address is the one we dialled (its listen address), where an
  // inbound one shows whatever source address its host picked (on loopback always 127.0.0.1)
  const open = node.getConnections().filter(c => c.status === 'open')
  for (const c of [...open.filter(c => c.direction === 'outbound'), ...open.filter(c => c.direction !== 'outbound')]) if (!byPeer.has(c.remotePeer.toString())) byPeer.set(c.remotePeer.toString(), c)
  // one helper per group first, then the rest
  const seenGroups = new Set<string>()
  const firsts: Connection[] = []
  const rest: Connection[] = []
  for (const c of byPeer.values()) {
    const g = groupOf(c.remoteAddr)
    if (seenGroups.has(g)) rest.push(c); else { seenGroups.add(g); firsts.push(c) }
  }
  const helpers = [...firsts, ...rest].slice(0, MAX_HELPERS)
  const request = encodeRequest(candidates.map(a => a.bytes))
  const signal = options.signal ?? AbortSignal.timeout(REQUEST_TIMEOUT_MS)
  const ask = async (conn: Connection): Promise<{ group: string, statuses: DialbackStatus[], observed: Uint8Array } | undefined> => {
    for (let attempt = 1; ; attempt++) {
      const answer = await askOnce(conn)
      if (attempt > BUSY_RETRIES || conn.status !== 'open' || (answer != null && !answer.statuses.every(st => st === 'busy'))) return answer
      const pause = BUSY_PAUSE_MS * attempt * (1 + Math.random())
      const aborted = await new Promise<boolean>(resolve => {
        const timer = setTimeout(() => { resolve(false) }, pause)
        signal.addEventListener('abort', () => { clearTimeout(timer); resolve(true) }, { once: true })
      })
      if (aborted) return answer
    }
  }
  const askOnce = async (conn: Connection): Promise<{ group: string, statuses: DialbackStatus[], observed: Uint8Array } | undefined> => {
    try {
      const stream = await conn.newStream(DIALBACK_PROTOCOL, { signal })
      stream.send(request)
      await stream.close({ signal })
      const reader = byteStream(stream, { maxBufferSize: 4 + MAX_DIALBACK_ADDRS + MAX_ADDR_BYTES })
      const chunks: Uint8Array[] = []
      while (true) {
        const chunk = await reader.read({ signal })
        if (chunk == null) break
        chunks.push(chunk.subarray())
      }
      return { group: groupOf(conn.remoteAddr), ...decodeResponse(Buffer.concat(chunks), candidates.length) }
    } catch (err) {
      log('dial-back request to a peer failed: %s', (err as Error).message)
      return undefined
    }
  }
  const answers = (await Promise.all(helpers.map(ask))).filter(a => a != null)
  if (answers.length === 0) throw new NoDialbackHelperError()
  const groups = new Set(answers.map(a => a.group))
  const required = Math.max(1, Math.min(options.requiredGroups ?? REQUIRED_GROUPS, groups.size))
  const verdicts: AddressVerdict[] = candidates.map((a, i) => {
    const confirmed = new Set<string>()
    const failed = new Set<string>()
    const refused: Array<{ group: string, status: DialbackStatus }> = []
    for (const ans of answers) {
      const s = ans.statuses[i]
      if (s === 'reachable') confirmed.add(ans.group)
      else if (s === 'dial-failed') failed.add(ans.group)
      else refused.push({ group: ans.group, status: s })
    }
    return { addr: a.toString(), confirmedBy: [...confirmed], failedBy: [...failed], refused }
  })
  const observed = [...new Set(answers.flatMap(a => {
    try { return a.observed.length > 0 ? [multiaddr(a.observed).toString()] : [] } catch { return [] }
  }))]
  return {
    verified: verdicts.filter(v => v.confirmedBy.length >= required && v.confirmedBy.length > v.failedBy.length).map(v => v.addr),
    addrs: verdicts,
    helpers: answers.length,
    groups: groups.size,
    required,
    observed
  }
}

/**
 * Network groups a starting relay tries to have among its helpers before it asks: 3, so that the
 * majority rule (more groups confirm than fail) is a vote of several networks, not one or two.
 */
export const TARGET_GROUPS = 3
/**
 * While fewer than REQUIRED_GROUPS groups are connected, helpers are looked for again, at most this
 * many rounds, RECRUIT_PAUSE_MS apart (10 s in all): relays of a network that start together (a new
 * network, the lab, a data centre after a power cut) join their bootstrap node within seconds of each
 * other, and none is in a relay list yet, since a relay announces itself only after its check. A
 * network's very first relay waits these 10 s once, then goes on with its bootstrap node's word.
 */
export const RECRUIT_ROUNDS = 5
export const RECRUIT_PAUSE_MS = 2_500
/** One source of candidates (a relay list, a DHT query) gets this long per round. */
const RECRUIT_SOURCE_TIMEOUT_MS = 10_000

/** A peer that might serve dial-back: an id and the addresses it was seen at. */
export interface HelperCandidate { peerId: string, addrs: string[] }

export interface RecruitOptions {
  /**
   * More candidates besides the connected peers' relay lists: RelayNode passes the DHT servers closest
   * to its own id (users are never DHT servers, so these are relays, announced or still checking, and
   * bootstrap nodes: every one serves dial-back). Relays starting together find each other here.
   */
  candidates?: (signal: AbortSignal) => AsyncIterable<HelperCandidate>
  rounds?: number
  pauseMs?: number
}

export interface RecruitResult {
  /** connections opened to helpers in new groups */
  opened: number
  /** distinct groups among the open connections afterwards */
  groups: number
  rounds: number
}

/**
 * Connects to peers in network groups this node has no connection to yet, so that the check hears from
 * several /16s: a relay starting up is connected to its bootstrap nodes and a few DHT peers. Candidates:
 * the relay lists of two connected peers (verified descriptors) and `options.candidates` (the DHT). Dials
 * one candidate per new group, up to MAX_HELPERS - 1 in all, until TARGET_GROUPS groups are connected,
 * each with a new connection unless the group got connected meanwhile (a connection the candidate opened
 * to this node shows the candidate's source address, not its group); while fewer than REQUIRED_GROUPS
 * are, it looks again (RECRUIT_ROUNDS rounds, RECRUIT_PAUSE_MS apart).
 * Failures are skipped: the check then has fewer helpers, and says so.
 */
export async function recruitHelpers (node: Pick<Libp2p, 'getConnections' | 'dialProtocol' | 'dial' | 'peerId'>, signal: AbortSignal, options: RecruitOptions = {}): Promise<RecruitResult> {
  const self = node.peerId.toString()
  const rounds = options.rounds ?? RECRUIT_ROUNDS
  const openGroups = (): Set<string> => new Set(node.getConnections().filter(c => c.status === 'open').map(c => groupOf(c.remoteAddr)))
  let opened = 0
  let round = 0
  const tried = new Set<string>()
  while (round < rounds && openGroups().size < TARGET_GROUPS && opened < MAX_HELPERS - 1) {
    if (round > 0) {
      if (openGroups().size >= REQUIRED_GROUPS) break
      const pause = options.pauseMs ?? RECRUIT_PAUSE_MS
      const aborted = await new Promise<boolean>(resolve => {
        if (signal.aborted) { resolve(true); return }
        const timer = setTimeout(() => { signal.removeEventListener('abort', onAbort); resolve(false) }, pause)
        const onAbort = (): void => { clearTimeout(timer); resolve(true) }
        signal.addEventListener('abort', onAbort, { once: true })
      })
      if (aborted) break
    }
    round++
    const groups = openGroups()
    // peers we hold an outbound connection to count in its group already; a peer that only dialled us
    // (a relay recruiting us, a DHT lookup) is dialled at its listed address, to count in that group
    const outbound = new Set(node.getConnections().filter(c => c.direction === 'outbound').map(c => c.remotePeer.toString()))
    const found: HelperCandidate[] = []
    const sourceSignal = (): AbortSignal => AbortSignal.any([signal, AbortSignal.timeout(RECRUIT_SOURCE_TIMEOUT_MS)])
    const lists = [...new Set(node.getConnections().map(c => c.remotePeer))].slice(0, 2).map(async peer => {
      try {
        const { relays } = await fetchRelayList(node, peer, sourceSignal())
        for (const r of relays) found.push({ peerId: r.peerId, addrs: r.addrs })
      } catch (err) {
        log('no relay list for recruiting helpers: %s', (err as Error).message)
      }
    })
    const dht = (async () => {
      if (options.candidates == null) return
      try {
        for await (const c of options.candidates(sourceSignal())) found.push(c)
      } catch (err) {
        log('no DHT peers for recruiting helpers: %s', (err as Error).message)
      }
    })()
    await Promise.all([...lists, dht])
    const targets: Array<{ ma: Multiaddr, group: string }> = []
    // a loopback address of a peer is this machine, not the peer, unless this node's own peers are on loopback (tests)
    const onLoopback = node.getConnections().every(c => isLoopback(ipOf(c.remoteAddr) ?? ''))
    for (const r of found) {
      if (r.peerId === self || outbound.has(r.peerId) || tried.has(r.peerId) || opened + targets.length >= MAX_HELPERS - 1) continue
      const addrs = r.addrs.flatMap(a => { try { return [multiaddr(a)] } catch { return [] } })
        .map((ma, i) => ({ ma, i, rank: rankOf(ipOf(ma)) }))
        .sort((x, y) => x.rank - y.rank || x.i - y.i)
      for (const { ma, rank } of addrs) {
        // a plain TCP address (what a relay listens on), public ones first
        if (rank === 3 || (rank === 2 && !onLoopback) || ma.getComponents().some(c => c.name === 'ws') || !ma.getComponents().some(c => c.name === 'tcp')) continue
        const g = groupOf(ma)
        if (groups.has(g)) continue
        groups.add(g)
        tried.add(r.peerId)
        targets.push({ ma: ma.getComponents().some(c => c.name === 'p2p') ? ma : ma.encapsulate(`/p2p/${r.peerId}`), group: g })
        break
      }
    }
    const results = await Promise.all(targets.map(async ({ ma, group }) => {
      // this node's own DHT lookups of this round may have connected to the group already
      if (openGroups().has(group)) return 0
      try {
        // a new connection (force), whatever this node held when the round began: while the round's
        // queries ran, the peer may have dialled this node (relays starting together look each other up
        // and recruit each other), and a dial without force returns that inbound connection, whose
        // address is the peer's source address (on loopback 127.0.0.1, the bootstrap node's /16), not
        // the group dialled; the peer, now tried, would never be dialled again
        await node.dial(ma, { force: true, signal: AbortSignal.any([signal, AbortSignal.timeout(DIAL_TIMEOUT_MS)]) })
        return 1
      } catch (err) {
        log('dialling a relay to help the check failed: %s', (err as Error).message)
        return 0
      }
    }))
    opened += results.reduce<number>((a, b) => a + b, 0)
  }
  return { opened, groups: openGroups().size, rounds: round }
}
