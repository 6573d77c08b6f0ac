/**
 * The relay's side of admission (protocols/directory/ATTEST.md): what a relay attests about the other
 * relays it knows, for clients to admit them to paths (protocols/onion/admission.ts).
 *
 * For every relay with a live descriptor in its directory (not itself) a relay keeps:
 * - **first seen**: when it first stored a descriptor of it, persisted in `attested.json` in its data
 *   directory (mode 0600) so that a restart does not make every relay look new; entries of relays not
 *   heard of for FORGET_AFTER_MS are dropped;
 * - **reached**: the /16 of the first descriptor address it connected to (a new connection, `force`,
 *   to `<address>/p2p/<relay>`: the Noise handshake proves it is that relay), checked again only when
 *   the descriptor's addresses change (relays re-sign often; a check may open a connection),
 *   or every PROBE_INTERVALS announce intervals while none was reached; a new connection stays open; never the source address of a connection from it;
 * - **probed**: a loop probe came back: a Sphinx packet this relay builds through the other one, then a
 *   third relay in another /16, and back to itself (path [X, B, self], exponential delays in X's and B's
 *   slots, a drop-service body, a random 16-byte id), within PROBE_TIMEOUT_MS. To X it looks like a
 *   user's packet: it comes from a relay and goes on to another relay, after a delay. Without a third
 *   relay the path is [X, self]. It is repeated every PROBE_INTERVALS announce intervals; after
 *   PROBE_FAILURES lost probes in a row (each through another random B) the flag is cleared.
 *
 * Limits: at most MAX_CHECKS_PER_TICK address checks and MAX_PROBES_PER_TICK probes start per tick (one
 * tick per announce interval), each dial gives up after DIAL_TIMEOUT_MS; at most MAX_TRACKED relays are
 * tracked. `dirty` says the attestations changed: the relay re-signs its descriptor (node/relay-node.ts).
 */
import { randomBytes, randomInt } from 'node:crypto'
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { logger } from '@libp2p/logger'
import type { Libp2p } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { attestExtension, MAX_ATTESTED, relayTag } from '../protocols/directory/attest.ts'
import type { Attestation } from '../protocols/directory/attest.ts'
import type { RecordExtension } from '../protocols/directory/record.ts'
import { onionKeyFor } from '../protocols/onion/relay-directory.ts'
import type { KnownRelay } from '../protocols/onion/relay-directory.ts'
import { encodeServiceBody, SERVICE_DROP } from '../protocols/onion/service-body.ts'
import { createPacket } from '../protocols/onion/sphinx.ts'
import type { Hop } from '../protocols/onion/sphinx.ts'
import { hopDelays } from '../protocols/onion/delays.ts'
import { subnetOfAddr, subnetsOfAddrs } from '../protocols/directory/subnet.ts'

export const ATTESTED_FILE = 'attested.json'
/** A relay not heard of for this long is forgotten: two weeks, past any client's minimum age. */
export const FORGET_AFTER_MS = 14 * 24 * 3600_000
/** A probe not back in this time is lost: it crosses three relays and two mixing delays (a mean of PROBE_HOP_DELAY_MS each). */
export const PROBE_TIMEOUT_MS = 20_000
/**
 * The mean delay a probe asks of each relay it crosses: the `standard` privacy level's (node/privacy.ts),
 * the most common one, so a probe looks like a user's packet to the relay probed.
 */
export const PROBE_HOP_DELAY_MS = 500
/** Lost probes in a row before the PROBED flag is cleared: one lost packet is not a dead relay. */
export const PROBE_FAILURES = 3
/** Probes between two announcements: announcements come every 30 s, so one relay is probed every 10 min. */
export const PROBE_INTERVALS = 20
/** A TCP connect and a Noise handshake over a slow link. */
export const DIAL_TIMEOUT_MS = 10_000
/** Address checks started per tick: dials are not free, and a new network's relays all arrive at once. */
const MAX_CHECKS_PER_TICK = 2
/** Probes started per tick. */
const MAX_PROBES_PER_TICK = 4
/** Addresses of one descriptor tried. */
const MAX_ADDRS_TRIED = 4
/** Relays tracked: well above what one descriptor can name (48). */
const MAX_TRACKED = 1024

interface Tracked {
  tag: string
  firstSeen: number
  lastHeard: number
  reached?: string
  /** The descriptor addresses checked (joined): checked again only when they change, not at every re-signing. */
  checkedAddrs?: string
  checkedAt: number
  checking: boolean
  probed: boolean
  lastProbe: number
  failures: number
}

export interface RelayAttesterInit {
  node: Pick<Libp2p, 'dial' | 'getConnections'>
  dataDir: string
  selfPeerId: string
  /** This relay's transport key and current onion key: the probe's last hop. */
  self: () => { address: Uint8Array, onionKey: Uint8Array }
  /** Sends a packet this relay built to its first hop (OnionService.send). */
  send: (firstHop: Uint8Array, packet: Uint8Array) => void
  relays: () => KnownRelay[]
  announceIntervalMs: number
  now?: () => number
}

export class RelayAttester {
  private readonly init: RelayAttesterInit
  private readonly tracked = new Map<string, Tracked>()
  private readonly pending = new Map<string, { peerId: string, sentAt: number }>()
  private readonly log = logger('p2pchat:relay:attest')
  private readonly now: () => number
  private readonly probeIntervalMs: number
  private readonly delay = hopDelays(PROBE_HOP_DELAY_MS)
  private stopped = false
  /** The attestations changed since `extension()` was last taken. */
  dirty = false
  readonly stats = { probesSent: 0, probesBack: 0, probesLost: 0, reached: 0, unreachable: 0 }

  constructor (init: RelayAttesterInit) {
    this.init = init
    this.now = init.now ?? Date.now
    this.probeIntervalMs = PROBE_INTERVALS * init.announceIntervalMs
    this.load()
  }

  private get file (): string { return join(this.init.dataDir, ATTESTED_FILE) }

  private load (): void {
    if (!existsSync(this.file)) return
    try {
      const data = JSON.parse(readFileSync(this.file, 'utf8')) as { v?: unknown, firstSeen?: Record<string, unknown> }
      if (data.v !== 1 || data.firstSeen == null || typeof data.firstSeen !== 'object') throw new Error('not version 1')
      const now = this.now()
      for (const [peerId, entry] of Object.entries(data.firstSeen)) {
        if (!Array.isArray(entry)) continue
        const [tag, firstSeen] = entry as unknown[]
        // an entry that would not encode (attest.ts) is dropped: the relay is then new to us again
        if (typeof tag !== 'string' || !/^[0-9a-f]{32}$/.test(tag) || typeof firstSeen !== 'number' || !(firstSeen >= 0 && firstSeen <= now)) continue
        // heard of "now": a restart gives every relay FORGET_AFTER_MS to be heard again
        this.tracked.set(peerId, { tag, firstSeen, lastHeard: now, checking: false, checkedAt: 0, probed: false, lastProbe: 0, failures: 0 })
      }
    } catch (err) {
      // an unreadable file: every relay looks new to this relay, which only delays their admission
      this.log('ignored an unreadable %s: %s', ATTESTED_FILE, (err as Error).message)
    }
  }

  private save (): void {
    const firstSeen: Record<string, [string, number]> = {}
    for (const [peerId, t] of this.tracked) firstSeen[peerId] = [t.tag, t.firstSeen]
    const tmp = `${this.file}.${process.pid}.tmp`
    try {
      writeFileSync(tmp, JSON.stringify({ v: 1, firstSeen }) + '\n', { mode: 0o600 })
      renameSync(tmp, this.file)
    } catch (err) {
      this.log('saving %s failed: %s', ATTESTED_FILE, (err as Error).message)
    }
  }

  /** One round: notes new relays, expires lost probes, starts address checks and probes. */
  tick (): void {
    if (this.stopped) return
    const now = this.now()
    let added = false
    const live = this.init.relays().filter(r => r.record.peerId !== this.init.selfPeerId)
    for (const r of live) {
      let t = this.tracked.get(r.record.peerId)
      if (t == null) {
        if (this.tracked.size >= MAX_TRACKED) continue
        t = { tag: relayTag(r.record.identityKey), firstSeen: now, lastHeard: now, checking: false, checkedAt: 0, probed: false, lastProbe: 0, failures: 0 }
        this.tracked.set(r.record.peerId, t)
        added = true
        this.dirty = true
      }
      t.lastHeard = Math.max(t.lastHeard, r.lastSeen)
    }
    for (const [peerId, t] of this.tracked) if (now - t.lastHeard > FORGET_AFTER_MS) { this.tracked.delete(peerId); added = true }
    if (added) this.save()
    for (const [id, p] of this.pending) {
      if (now - p.sentAt < PROBE_TIMEOUT_MS) continue
      this.pending.delete(id)
      this.stats.probesLost++
      const t = this.tracked.get(p.peerId)
      if (t != null && ++t.failures >= PROBE_FAILURES && t.probed) { t.probed = false; this.dirty = true }
    }
    let checks = 0
    let probes = 0
    for (const r of live) {
      const t = this.tracked.get(r.record.peerId)
      if (t == null) continue
      // again when its addresses change, or, while none was reached, every probe interval (a dial can
      // fail on a busy link)
      const due = t.checkedAddrs !== r.record.addrs.join(' ') || (t.reached == null && now - t.checkedAt >= this.probeIntervalMs)
      if (!t.checking && due && checks < MAX_CHECKS_PER_TICK) {
        checks++
        this.check(r, t).catch(() => {})
      }
      const waiting = [...this.pending.values()].some(p => p.peerId === r.record.peerId)
      if (!waiting && now - t.lastProbe >= (t.probed ? this.probeIntervalMs : this.init.announceIntervalMs) && probes < MAX_PROBES_PER_TICK) {
        if (this.probe(r, t, now)) probes++
      }
    }
  }

  /** Dials the relay at its descriptor addresses; the first reached gives its /16. */
  private async check (r: KnownRelay, t: Tracked): Promise<void> {
    t.checking = true
    const addrs = r.record.addrs.join(' ')
    let reached: string | undefined
    const strip = (a: string): string => a.replace(/\/p2p\/[^/]+$/, '')
    const tried = r.record.addrs.slice(0, MAX_ADDRS_TRIED)
    // a connection this relay already dialled to it at one of those addresses proves as much as a new
    // one (Noise-authenticated, at an address it dialled); never an inbound one (its source address)
    for (const c of this.init.node.getConnections()) {
      if (c.remotePeer.toString() !== r.record.peerId || c.direction !== 'outbound' || c.status !== 'open') continue
      const remote = strip(c.remoteAddr.toString())
      const match = tried.find(a => strip(a) === remote)
      if (match != null && subnetOfAddr(match) != null) { reached = subnetOfAddr(match); break }
    }
    try {
      for (const addr of reached != null ? [] : tried) {
        const group = subnetOfAddr(addr)
        if (group == null || this.stopped) continue
        try {
          const base = strip(addr)
          // kept open, not closed: either side may already have opened a stream on it (libp2p does not
          // order a peer's connections), and closing it would lose what that stream carried; the next
          // check then finds it as an outbound connection at that address
          await this.init.node.dial(multiaddr(`${base}/p2p/${r.record.peerId}`), { force: true, signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) })
          reached = group
          break
        } catch (err) {
          this.log('could not reach a relay at a descriptor address: %s', (err as Error).message)
        }
      }
    } finally {
      t.checking = false
    }
    if (reached != null) this.stats.reached++; else this.stats.unreachable++
    t.checkedAddrs = addrs
    t.checkedAt = this.now()
    if (t.reached !== reached) { t.reached = reached; this.dirty = true }
  }

  /** Sends a loop probe through the relay; false when it cannot be built (no onion key valid now). */
  private probe (r: KnownRelay, t: Tracked, now: number): boolean {
    const key = onionKeyFor(r.record, now)
    if (key == null) return false
    const self = this.init.self()
    const id = randomBytes(16)
    // a third relay, outside X's /16 and ours, so that X forwards it to another relay as on a user's path
    const avoid = new Set([...subnetsOfAddrs(r.record.addrs)])
    const thirds = this.init.relays().filter(o => o.record.peerId !== r.record.peerId && o.record.peerId !== this.init.selfPeerId &&
      onionKeyFor(o.record, now) != null && !subnetsOfAddrs(o.record.addrs).some(g => avoid.has(g)))
    // one whose own probe came back where there is one: a lost probe then points at X, not at B
    const good = thirds.filter(o => this.tracked.get(o.record.peerId)?.probed === true)
    const pool = good.length > 0 ? good : thirds
    const third = pool.length > 0 ? pool[randomInt(pool.length)] : undefined
    const hops: Hop[] = [{ address: r.record.identityKey, onionKey: key.key, delayMs: this.delay() }]
    if (third != null) hops.push({ address: third.record.identityKey, onionKey: (onionKeyFor(third.record, now) as { key: Uint8Array }).key, delayMs: this.delay() })
    hops.push({ address: self.address, onionKey: self.onionKey })
    try {
      const { firstHop, packet } = createPacket(hops,
        encodeServiceBody({ service: SERVICE_DROP, replyBlock: undefined, request: new Uint8Array(0) }),
        { id })
      this.pending.set(Buffer.from(id).toString('hex'), { peerId: r.record.peerId, sentAt: now })
      t.lastProbe = now
      this.stats.probesSent++
      this.init.send(firstHop, packet)
      return true
    } catch (err) {
      this.log('building a loop probe failed: %s', (err as Error).message)
      return false
    }
  }

  /**
   * A packet delivered to this relay with the final id `id`: true when it was one of its probes (the
   * caller then drops it instead of handing it to the services).
   */
  delivered (id: Uint8Array): boolean {
    const key = Buffer.from(id).toString('hex')
    const p = this.pending.get(key)
    if (p == null) return false
    this.pending.delete(key)
    this.stats.probesBack++
    const t = this.tracked.get(p.peerId)
    if (t != null) {
      t.failures = 0
      if (!t.probed) { t.probed = true; this.dirty = true }
    }
    return true
  }

  /**
   * The attestation field for this relay's descriptor: the live relays it tracks, oldest first, at most
   * MAX_ATTESTED >> attempt (fewer on each attempt the record is too large); COMPLETE when all fit.
   */
  extension (attempt = 0): RecordExtension {
    const live = new Set(this.init.relays().map(r => r.record.peerId))
    const entries: Attestation[] = [...this.tracked.entries()]
      .filter(([peerId]) => live.has(peerId))
      .sort((a, b) => a[1].firstSeen - b[1].firstSeen)
      .map(([, t]) => ({ tag: t.tag, firstSeen: t.firstSeen, probed: t.probed, ...(t.reached != null ? { reached: t.reached } : {}) }))
    const max = MAX_ATTESTED >> attempt
    this.dirty = false
    return attestExtension({ complete: entries.length <= max, entries: entries.slice(0, max) })
  }

  /** What this relay attests now, by peer id (tests, /status). */
  view (): Map<string, { firstSeen: number, probed: boolean, reached?: string }> {
    return new Map([...this.tracked].map(([peerId, t]) => [peerId, { firstSeen: t.firstSeen, probed: t.probed, ...(t.reached != null ? { reached: t.reached } : {}) }]))
  }

  stop (): void {
    this.stopped = true
    this.pending.clear()
  }
}
