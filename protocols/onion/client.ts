/**
 * The onion side of a user (a client): it builds packets and reply blocks over the paths of
 * protocol version 2, hands every packet to its entry relay (PROTOCOL-V2.md section 2: SUBMIT), and
 * opens what the entry relay delivers (only replies through reply blocks this client made: a user is
 * never a hop of anyone's forward path).
 *
 * - `send(final, service, request)`: a forward packet mix -> mix -> `final` whose SERVICE layer carries
 *   `service | reply block | request`; with `onAnswer` the reply block is one of ours and the answer
 *   comes back through it. `request(...)` is the same as a promise with a timeout.
 * - `replyBlock(onReply)`: a block mix -> mix -> entry relay -> this client, to stock at a mailbox.
 * - `replyThrough(block, payload)`: answer through someone else's reply block; refused unless its first
 *   hop is a relay we know (so a stranger cannot make us reveal anything to a relay of its choosing;
 *   the packet still leaves through our entry relay, never by a connection of our own).
 * - `deliver(packet)`: a packet from the entry relay. Everything else than a reply through a live block
 *   of ours is a counted drop.
 *
 * Mixing (SPEC.md section 15): with `hopDelay`, every hop that forwards (the mixes of a forward path;
 * the mixes and the entry relay of a reply block) gets its own delay drawn from it, written into its
 * slot's delay extension; the final hop gets none. Without it (the `fast` level) no delay is written.
 * A slow reply block (`slowReply`, a DEPOSIT's answer) draws its mixes' delays from `slowReplyDelay`.
 *
 * Reply-block secrets live in memory only: a block ends at this run's client key and transport peer
 * id, so it is useless after a restart anyway. Each block opens one reply.
 *
 * Made ahead (issue 13, `prepareDelayMs`): a send's costly part is its X25519s (~50 us each: ~20 for a
 * request with a reply block over 3 + 4 hops). After a send to a final relay, the client makes the
 * next one to that relay in idle time, `prepareDelayMs` later: its paths drawn as send() draws them
 * (chooseMixes over the same relays, the same exclusions), its reply block made and its packet header
 * built (sphinx.ts preparePacket); a send then only wraps the body. At most MAX_PREPARED are kept
 * (the oldest wiped first). One is used only while the relays it was drawn from (peer ids, onion keys,
 * groups, families), the entry relay and the final relay's key are the same and it is under
 * MAX_PREPARED_AGE_MS old; otherwise it is wiped and the send builds a fresh one: a stale one is never
 * sent. Its block's secret joins the held blocks only when it is sent.
 */
import { logger } from '@libp2p/logger'
import { createSurb, discardPacket, finishPacket, generateOnionKey, onionPrivateKeyFromRaw, openReply, packetFromSurb, preparePacket, processPacket } from './sphinx.ts'
import type { Hop, OnionPrivateKey, PreparedPacket, SurbSecret } from './sphinx.ts'
import { SURB_SIZE } from './constants.ts'
import { chooseMixes, DEFAULT_MIXES } from './paths.ts'
import type { PathRelay } from './paths.ts'
import { encodeServiceBody } from './service-body.ts'

/** How long a reply block's secret waits for its reply by default: under a relay epoch (1 h). */
export const DEFAULT_REPLY_BLOCK_TTL_MS = 50 * 60_000
/** Secrets held at once; the oldest go first beyond this. */
export const MAX_REPLY_BLOCKS = 10_000
/** The same warning about short paths is repeated at most this often. */
const WARNING_INTERVAL_MS = 60_000
/** Sends made ahead kept at once (one per final relay and kind: a user writes to a few mailboxes, its own and its contacts'). */
export const MAX_PREPARED = 8
/** A send made ahead is used at most this long after it was made (the relay set is checked as well; this bounds the secrets' time in memory). */
export const MAX_PREPARED_AGE_MS = 10 * 60_000

/** The entry relay as the client sees it: who it is, and how to hand it a packet. */
export interface EntryLink {
  readonly relay: PathRelay
  /**
   * Queue `packet` for the relay `address` (SUBMIT); false when the link cannot take it. A link that
   * holds packets back (`defers`: cover traffic, node/cover.ts) calls `departed(true)` when the packet
   * really leaves, or `departed(false)` when it never will; for any other link a packet it took has
   * left.
   */
  submit: (address: Uint8Array, packet: Uint8Array, departed?: (ok: boolean) => void) => boolean
  /** True when `submit` may hold a packet back and reports its departure through `departed`. */
  readonly defers?: boolean
}

export interface OnionClientInit {
  /** This client's transport key (the address its entry relay delivers to). */
  self: Uint8Array
  /** The relays usable now (paths.ts `pathRelays`). */
  relays: () => PathRelay[]
  /** The current entry relay link, if connected. */
  entry: () => EntryLink | undefined
  mixes?: number
  /**
   * Draws one hop's delay in ms (delays.ts `hopDelays`: exponential of the privacy level's mean). Absent
   * or always 0: no delays (the `fast` level).
   */
  hopDelay?: () => number
  /**
   * Draws the delay of each MIX of a slow reply block (`slowReply`: a DEPOSIT's STORED, SPEC.md section
   * 15 "A DEPOSIT's answer is held longer"); its entry relay keeps `hopDelay`. Absent: `hopDelay`.
   */
  slowReplyDelay?: () => number
  onWarning?: (message: string) => void
  /** A request's outcome, with every relay on its forward path and reply block (node/relay-health.ts counts it). */
  onOutcome?: (relays: string[], answered: boolean) => void
  now?: () => number
  /**
   * Make the next send to a final relay ahead, this long after a send to it (ms; see the module
   * comment). Absent: nothing is made ahead (every send builds its packet then).
   */
  prepareDelayMs?: number
}

export class NoEntryRelayError extends Error {
  constructor (message = 'not connected to an entry relay') { super(message); this.name = 'NoEntryRelayError' }
}

export class UnknownFirstHopError extends Error {
  constructor (message = 'the reply block\'s first hop is not a relay we know: refused') { super(message); this.name = 'UnknownFirstHopError' }
}

export class SubmitFailedError extends Error {
  constructor (message = 'the entry relay link did not take the packet') { super(message); this.name = 'SubmitFailedError' }
}

export class AnswerTimeoutError extends Error {
  constructor (message = 'no answer through the reply block in time') { super(message); this.name = 'AnswerTimeoutError' }
}

export type ClientDrop = 'not-for-us' | 'not-a-reply' | 'unknown-block' | 'open-failed' | 'handler'

/** What a send asks back: nothing, an answer through a reply block, or one through a slow reply block. */
type SendKind = 'none' | 'answer' | 'slow'

interface HeldBlock { secret: SurbSecret, expires: number, onReply: (payload: Uint8Array) => void }

/** A reply block drawn and made, not yet held (its secret joins `blocks` when it is handed out). */
interface MadeBlock { surb: Uint8Array, id: Uint8Array, secret: SurbSecret, path: string[], short: number | undefined, relaxed: boolean }

/** The paths of one send, drawn and built: the reply block (if any) and the packet's header. */
interface Drawn {
  block: MadeBlock | undefined
  packet: PreparedPacket
  /** peer ids of the packet's hops */
  path: string[]
  short: number | undefined
  relaxed: boolean
}

/** A send made ahead, with what it was drawn from. */
interface Prepared { drawn: Drawn, relays: string, madeAt: number }

export interface SentRequest {
  /** Peer ids of the Sphinx hops, first first (the entry relay passes the packet on unchanged). */
  path: string[]
  /** The reply block's id, when an answer was asked for. */
  replyId?: Uint8Array
  /** Peer ids of the reply block's relays (mixes, then the entry relay), when an answer was asked for. */
  replyPath?: string[]
}

function hex (b: Uint8Array): string { return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex') }

/**
 * Everything a path draw depends on, as one string: the entry relay and the set of usable relays (in
 * any order: a draw picks by group at random, so the order of the list changes no probability).
 */
function drawnFrom (entry: PathRelay, relays: PathRelay[]): string {
  const one = (r: PathRelay): string => `${r.peerId}:${hex(r.onionKey)}:${r.subnets?.join(',') ?? ''}:${r.family ?? ''}`
  return `${one(entry)};${relays.map(one).sort().join(';')}`
}

export class OnionClient {
  private readonly init: OnionClientInit
  private readonly clientKey: { publicKey: Uint8Array, key: OnionPrivateKey }
  private readonly blocks = new Map<string, HeldBlock>()
  private readonly now: () => number
  private readonly log = logger('p2pchat:onion:client')
  private lastWarning = 0
  /** Sends made ahead, by final relay and kind (see prepareKey), oldest first. */
  private readonly prepared = new Map<string, Prepared>()
  /** Timers making sends ahead, by the same key. */
  private readonly preparing = new Map<string, ReturnType<typeof setTimeout>>()
  private closed = false
  readonly stats = {
    sent: 0,
    replies: 0,
    dropped: {} as Partial<Record<ClientDrop, number>>,
    /** sends that used one made ahead, sends that built theirs then, and ones made ahead found stale and wiped */
    prepared: { used: 0, built: 0, stale: 0 }
  }

  constructor (init: OnionClientInit) {
    this.init = init
    this.now = init.now ?? Date.now
    const k = generateOnionKey()
    this.clientKey = { publicKey: k.publicKey, key: onionPrivateKeyFromRaw(k.privateKey) }
  }

  private drop (reason: ClientDrop): void {
    this.stats.dropped[reason] = (this.stats.dropped[reason] ?? 0) + 1
    this.log('dropped a delivered packet: %s', reason)
  }

  private warnShort (what: string, got: number): void {
    const now = this.now()
    if (now - this.lastWarning < WARNING_INTERVAL_MS) return
    this.lastWarning = now
    this.init.onWarning?.(`too few relays: ${what} has ${got} of ${this.init.mixes ?? DEFAULT_MIXES} mixes; the relays on it learn more than they should (start more relays)`)
  }

  private warnRelaxed (what: string): void {
    const now = this.now()
    if (now - this.lastWarning < WARNING_INTERVAL_MS) return
    this.lastWarning = now
    this.init.onWarning?.(`too few relays in distinct /16s or families: ${what} has two relays of one /16 or family, who may be one operator seeing more of it (start relays on other networks)`)
  }

  /** One hop's delay (ms) from the configured drawer; 0 without one. */
  private delay (): number {
    return this.init.hopDelay?.() ?? 0
  }

  /** One mix's delay on a slow reply block (ms): `slowReplyDelay`, else a hop's. */
  private slowDelay (): number {
    return this.init.slowReplyDelay?.() ?? this.delay()
  }

  private link (): EntryLink {
    const entry = this.init.entry()
    if (entry == null) throw new NoEntryRelayError()
    return entry
  }

  /** Reply blocks waiting for their reply now. */
  get pendingBlocks (): number { return this.blocks.size }

  /**
   * A reply block mix -> mix -> entry relay -> this client. `onReply` gets the opened payload of its
   * one reply. Throws NoEntryRelayError.
   */
  replyBlock (onReply: (payload: Uint8Array) => void, ttlMs = DEFAULT_REPLY_BLOCK_TTL_MS, exclude: Array<string | PathRelay> = []): { surb: Uint8Array, id: Uint8Array, path: string[] } {
    const entry = this.link()
    const made = this.makeBlock(entry, this.init.relays(), exclude)
    this.warnFor('a reply block', made.short, made.relaxed)
    this.hold(made.id, { secret: made.secret, expires: this.now() + ttlMs, onReply })
    return { surb: made.surb, id: made.id, path: made.path }
  }

  /**
   * Draws and builds a reply block mix -> mix -> entry relay -> this client (see replyBlock); holds
   * nothing. `slow`: its mixes' delays come from `slowReplyDelay`.
   */
  private makeBlock (entry: EntryLink, relays: PathRelay[], exclude: Array<string | PathRelay>, slow = false): MadeBlock {
    // the relay that will answer through the block (`exclude`) is not a mix on it: it would see the
    // answer twice and learn where on the path it sits
    const { mixes, short, relaxed } = chooseMixes(relays, [entry.relay, ...exclude], this.init.mixes ?? DEFAULT_MIXES)
    // every hop but the last (this client) holds the packet for its own delay; the entry relay too
    // (at its hop's delay even on a slow block: what it hands the user then is what it always sees)
    const path: Hop[] = [
      ...mixes.map(m => ({ address: m.address, onionKey: m.onionKey, delayMs: slow ? this.slowDelay() : this.delay() })),
      { address: entry.relay.address, onionKey: entry.relay.onionKey, delayMs: this.delay() },
      { address: this.init.self, onionKey: this.clientKey.publicKey, client: true }
    ]
    // our own key for the last hop: the same block, 3 fewer X25519 on a 4-hop block (sphinx.ts createSurb)
    const made = createSurb(path, undefined, this.clientKey.key)
    return { surb: made.surb, id: made.id, secret: made.secret, path: [...mixes.map(m => m.peerId), entry.relay.peerId], short: short ? mixes.length : undefined, relaxed }
  }

  private warnFor (what: string, short: number | undefined, relaxed: boolean): void {
    if (short !== undefined) this.warnShort(what, short)
    else if (relaxed) this.warnRelaxed(what)
  }

  private hold (id: Uint8Array, block: HeldBlock): void {
    if (this.blocks.size >= MAX_REPLY_BLOCKS) {
      const oldest = this.blocks.keys().next().value
      if (oldest != null) this.blocks.delete(oldest)
    }
    this.blocks.set(hex(id), block)
  }

  /**
   * Sends `request` to `final`'s `service` over mix -> mix -> final, leaving through the entry relay.
   * With `onAnswer`, one of our reply blocks rides along and the answer comes back through it;
   * `slowReply`: a slow one (its mixes' delays from `slowReplyDelay`).
   * Throws NoEntryRelayError, SubmitFailedError, the body's size errors.
   */
  send (final: PathRelay, service: number, request: Uint8Array, opts: { onAnswer?: (answer: Uint8Array) => void, ttlMs?: number, departed?: (ok: boolean) => void, slowReply?: boolean } = {}): SentRequest {
    const entry = this.link()
    const kind: SendKind = opts.onAnswer == null ? 'none' : opts.slowReply === true ? 'slow' : 'answer'
    const relays = this.init.relays()
    const drawn = this.takePrepared(entry, relays, final, kind) ?? this.draw(entry, relays, final, kind)
    if (drawn.block != null) this.warnFor('a reply block', drawn.block.short, drawn.block.relaxed)
    this.warnFor('a path', drawn.short, drawn.relaxed)
    const block = drawn.block
    if (block != null && opts.onAnswer != null) this.hold(block.id, { secret: block.secret, expires: this.now() + (opts.ttlMs ?? DEFAULT_REPLY_BLOCK_TTL_MS), onReply: opts.onAnswer })
    let packet: Uint8Array
    let firstHop: Uint8Array
    try {
      const body = encodeServiceBody({ service, replyBlock: block?.surb, request })
      ;({ firstHop, packet } = finishPacket(drawn.packet, body))
    } catch (err) {
      discardPacket(drawn.packet)
      if (block != null) this.blocks.delete(hex(block.id))
      throw err
    }
    this.prepareLater(final, kind)
    if (!entry.submit(firstHop, packet, opts.departed)) {
      if (block != null) this.blocks.delete(hex(block.id))
      throw new SubmitFailedError()
    }
    if (entry.defers !== true) opts.departed?.(true)
    this.stats.sent++
    return { path: drawn.path, replyId: block?.id, replyPath: block?.path }
  }

  /** Draws both paths of a send to `final` and builds its reply block (if asked) and its header (every X25519 of the send). */
  private draw (entry: EntryLink, relays: PathRelay[], final: PathRelay, kind: SendKind): Drawn {
    const block = kind !== 'none' ? this.makeBlock(entry, relays, [final], kind === 'slow') : undefined
    // paths.ts: the forward mixes share no relay and no /16 or family with the guard, the final relay
    // or the reply block's mixes (its last hop is the guard: the one relay both paths have); with too
    // few relays a block's mix is reused, with a warning, before a mix is left out
    const blockMixes = block?.path.slice(0, -1) ?? []
    const { mixes, short, relaxed } = chooseMixes(relays, [entry.relay, final], this.init.mixes ?? DEFAULT_MIXES, blockMixes)
    const hops = [...mixes, final]
    // the mixes hold it for their delays; the final relay forwards nothing, so it gets none
    const packet = preparePacket(hops.map((h, i) => ({ address: h.address, onionKey: h.onionKey, delayMs: i < hops.length - 1 ? this.delay() : undefined })))
    return { block, packet, path: hops.map(h => h.peerId), short: short ? mixes.length : undefined, relaxed }
  }

  private prepareKey (final: PathRelay, kind: SendKind): string {
    return `${final.peerId}:${hex(final.onionKey)}:${kind}`
  }

  /** The send made ahead for `final`, if it is still good (see the module comment); a stale one is wiped. */
  private takePrepared (entry: EntryLink, relays: PathRelay[], final: PathRelay, kind: SendKind): Drawn | undefined {
    if (this.init.prepareDelayMs === undefined) return undefined
    const key = this.prepareKey(final, kind)
    const held = this.prepared.get(key)
    if (held == null) { this.stats.prepared.built++; return undefined }
    this.prepared.delete(key)
    if (this.now() - held.madeAt > MAX_PREPARED_AGE_MS || held.relays !== drawnFrom(entry.relay, relays)) {
      this.wipe(held)
      this.stats.prepared.stale++
      this.stats.prepared.built++
      return undefined
    }
    this.stats.prepared.used++
    return held.drawn
  }

  private wipe (held: Prepared): void {
    discardPacket(held.drawn.packet)
    held.drawn.block?.secret.hopPayloadKeys.forEach(k => k.fill(0))
    held.drawn.block?.secret.payloadKey.fill(0)
  }

  /** Makes the next send to `final` ahead, `prepareDelayMs` from now (once per final and kind at a time). */
  private prepareLater (final: PathRelay, kind: SendKind): void {
    const delayMs = this.init.prepareDelayMs
    if (delayMs === undefined || this.closed) return
    const key = this.prepareKey(final, kind)
    if (this.preparing.has(key) || this.prepared.has(key)) return
    const timer = setTimeout(() => {
      this.preparing.delete(key)
      if (this.closed || this.prepared.has(key)) return
      const entry = this.init.entry()
      if (entry == null) return
      try {
        const relays = this.init.relays()
        // only for a final relay that is still usable, with the same key
        if (!relays.some(r => r.peerId === final.peerId && Buffer.compare(r.onionKey, final.onionKey) === 0)) return
        const drawn = this.draw(entry, relays, final, kind)
        if (this.prepared.size >= MAX_PREPARED) {
          const oldest = this.prepared.keys().next().value
          if (oldest !== undefined) {
            const gone = this.prepared.get(oldest)
            this.prepared.delete(oldest)
            if (gone != null) this.wipe(gone)
          }
        }
        this.prepared.set(key, { drawn, relays: drawnFrom(entry.relay, relays), madeAt: this.now() })
      } catch (err) {
        this.log('making a send ahead failed: %s', (err as Error).name)
      }
    }, delayMs)
    timer.unref?.()
    this.preparing.set(key, timer)
  }

  /** Sends made ahead now (tests, status). */
  get preparedCount (): number { return this.prepared.size }

  /** Stops making sends ahead and wipes those made. Idempotent. */
  close (): void {
    this.closed = true
    for (const t of this.preparing.values()) clearTimeout(t)
    this.preparing.clear()
    for (const held of this.prepared.values()) this.wipe(held)
    this.prepared.clear()
  }

  /**
   * `send` with an answer: resolves with it, rejects with AnswerTimeoutError `timeoutMs` after the packet
   * left (a link holding packets for cover traffic may keep it a while first: that wait is not the
   * network's), or with SubmitFailedError when the link gives up on it.
   *
   * `late`: after the timeout the reply block is kept `late.ms` longer and an answer that still comes
   * through it goes to `late.onAnswer` (its path then counts as answered). A request that changed
   * something at the far end (a DEPOSIT committed) is then known to have done so, although slowly:
   * without it, a network slower than the timeout drops every answer and the caller repeats a request
   * that had worked.
   *
   * `onSent`: called once the packet is built, with every relay on its forward path and reply block
   * (peer ids), so that the caller can send again at once when one of them is found dead.
   *
   * `slowReply`: the answer comes back through a slow reply block (see send); `timeoutMs` must allow for it.
   */
  async request (final: PathRelay, service: number, request: Uint8Array, opts: { timeoutMs: number, signal?: AbortSignal, late?: { ms: number, onAnswer: (answer: Uint8Array) => void }, onSent?: (relays: string[]) => void, slowReply?: boolean }): Promise<Uint8Array> {
    return await new Promise<Uint8Array>((resolve, reject) => {
      let sent: SentRequest | undefined
      let timer: ReturnType<typeof setTimeout> | undefined
      let done = false
      const finish = (keepBlock = false): void => {
        done = true
        clearTimeout(timer)
        opts.signal?.removeEventListener('abort', onAbort)
        if (sent?.replyId != null && !keepBlock) this.blocks.delete(hex(sent.replyId))
      }
      const outcome = (answered: boolean): void => { if (sent != null) this.init.onOutcome?.([...sent.path, ...(sent.replyPath ?? [])], answered) }
      const onAbort = (): void => { finish(); reject(opts.signal?.reason ?? new Error('aborted')) }
      const timedOut = (): void => {
        const late = opts.late
        const held = late != null && sent?.replyId != null ? this.blocks.get(hex(sent.replyId)) : undefined
        finish(held != null)
        outcome(false)
        if (held != null && late != null) {
          held.expires = this.now() + late.ms
          held.onReply = (answer) => { outcome(true); late.onAnswer(answer) }
        }
        reject(new AnswerTimeoutError())
      }
      const departed = (ok: boolean): void => {
        if (done) return
        if (!ok) { finish(); reject(new SubmitFailedError('the packet never left: the entry link gave up on it')); return }
        // the reply block waits `timeoutMs` from now (it may have waited for its cover tick)
        const held = sent?.replyId != null ? this.blocks.get(hex(sent.replyId)) : undefined
        if (held != null) held.expires = this.now() + opts.timeoutMs
        timer = setTimeout(timedOut, opts.timeoutMs)
      }
      opts.signal?.addEventListener('abort', onAbort, { once: true })
      try {
        // the block is forgotten by finish() whatever happens; until its packet leaves it must not age out
        sent = this.send(final, service, request, { onAnswer: (answer) => { finish(); outcome(true); resolve(answer) }, ttlMs: Math.max(opts.timeoutMs, DEFAULT_REPLY_BLOCK_TTL_MS), departed, slowReply: opts.slowReply })
        opts.onSent?.([...sent.path, ...(sent.replyPath ?? [])])
      } catch (err) {
        finish()
        reject(err as Error)
      }
    })
  }

  /**
   * Answers through someone else's reply block, leaving through our entry relay. Throws
   * UnknownFirstHopError when the block's first hop is not a relay we know, NoEntryRelayError,
   * SubmitFailedError, and packetFromSurb's errors for a malformed block.
   */
  replyThrough (surb: Uint8Array, payload: Uint8Array): void {
    if (surb.length !== SURB_SIZE) throw new RangeError(`a reply block is ${SURB_SIZE} bytes`)
    const firstHop = surb.subarray(0, 32)
    const known = this.init.relays().some(r => Buffer.compare(r.address, firstHop) === 0)
    if (!known) throw new UnknownFirstHopError()
    const entry = this.link()
    const { packet } = packetFromSurb(surb, payload)
    if (!entry.submit(firstHop.slice(), packet)) throw new SubmitFailedError()
    this.stats.sent++
  }

  /** A packet the entry relay handed over. Never throws. */
  deliver (packet: Uint8Array): void {
    const res = processPacket(packet, this.clientKey.key)
    if (!res.ok) { this.drop('not-for-us'); return }
    if (res.type !== 'final' || res.command !== 'reply') { this.drop('not-a-reply'); return }
    const key = hex(res.id)
    const held = this.blocks.get(key)
    if (held == null || held.expires < this.now()) { this.blocks.delete(key); this.drop('unknown-block'); return }
    this.blocks.delete(key)
    const opened = openReply(res.payload, held.secret)
    if (!opened.ok) { this.drop('open-failed'); return }
    this.stats.replies++
    try {
      held.onReply(opened.payload)
    } catch (err) {
      this.drop('handler')
      this.log.error('a reply handler threw: %s', (err as Error).message)
    }
  }

  /** Forgets reply blocks whose time is up. */
  expire (): number {
    const now = this.now()
    let n = 0
    for (const [id, b] of this.blocks) if (b.expires < now) { this.blocks.delete(id); n++ }
    return n
  }
}
