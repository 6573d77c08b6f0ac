/**
 * A user's cover traffic wired to its entry link (issue 11, SPEC.md section 15): what node/chat-node.ts
 * constructs and hands the entry link and the onion client, so the chat facade holds no cover logic.
 *
 * - `link()` is the entry link as the onion client sees it: at a level with cover a real packet waits
 *   for the next cover tick, loop or drop, and goes in its place (node/cover.ts; its request's timeout starts when
 *   it leaves: `defers`/`departed`); cover packets themselves and every packet at `fast` go at once.
 * - Loop cover: a reply block of ours (mix, mix, entry relay, us) sent as a packet; its return marks
 *   every relay on the loop answered (`onLoopReturned`).
 * - Drop cover: mix, mix, a random live relay outside the guard's /16 and family (SERVICE_DROP,
 *   discarded and counted there), as a real request's exit or mailbox would be.
 * - Every packet handed to the entry link is counted (`packetsSubmitted`: cover, real and start-up).
 *
 * Limits: those of node/cover.ts (MAX_WAITING real packets wait; beyond, refused and counted). A send
 * that cannot be built (no entry link, too few relays) throws inside the tick and is counted there.
 */
import { randomBytes } from 'node:crypto'
import { NoEntryRelayError, SubmitFailedError } from '../protocols/onion/client.ts'
import type { EntryLink, OnionClient } from '../protocols/onion/client.ts'
import type { Uniform } from '../protocols/onion/delays.ts'
import { sameGroup } from '../protocols/onion/paths.ts'
import type { PathRelay } from '../protocols/onion/paths.ts'
import type { Clock } from '../protocols/onion/scheduler.ts'
import { SERVICE_DROP } from '../protocols/onion/service-body.ts'
import { packetFromSurb } from '../protocols/onion/sphinx.ts'
import { realClock } from '../protocols/onion/scheduler.ts'
import { AnswerCover, offsetDensity } from './answer-cover.ts'
import type { AnswerCoverStats, OffsetDensity } from './answer-cover.ts'
import { CoverTraffic } from './cover.ts'
import type { CoverInit, CoverStats, Lane } from './cover.ts'
import { coverTickWaitMs } from './privacy.ts'
import type { PrivacyLevel } from './privacy.ts'

/** The answers a request may expect (answer cover, node/answer-cover.ts). */
export type AnswerKind = 'stored' | 'receipt'

/**
 * Answer cover's densities at a level, from the moment a request's packet leaves (null where the level
 * has no answer cover). STORED: 2 mixes to the mailbox, then the DEPOSIT reply block's 2 mixes of
 * storedMixDelayMs and the entry relay. Receipt (a message's): 2 mixes and 3 hops of the recipient's
 * reply block to the recipient, the receipt delay, the recipient's wait for a cover tick, 2 mixes to our
 * mailbox and 3 hops of our reply block to us. A loop comes back after its 3 hops (`leadMs`).
 */
export function answerCoverFor (p: PrivacyLevel): { densities: Record<AnswerKind, OffsetDensity>, leadMs: number } | null {
  const theta = p.meanDelayMs
  if (p.answerCover !== true || p.loopPerMinute <= 0 || theta <= 0) return null
  const binMs = Math.max(1, Math.min(50, theta / 10))
  const hops = (n: number): number[] => new Array<number>(n).fill(theta)
  return {
    densities: {
      stored: offsetDensity([...hops(3), p.storedMixDelayMs, p.storedMixDelayMs], binMs),
      receipt: offsetDensity([...(p.receiptDelayMs > 0 ? [p.receiptDelayMs] : []), coverTickWaitMs(p), ...hops(10)], binMs)
    },
    leadMs: 3 * theta
  }
}

export interface ClientCoverInit {
  privacy: PrivacyLevel
  /** The entry link of the moment (undefined: not connected). */
  link: () => EntryLink | undefined
  /** The onion client (a thunk: it is built with this module's `link`). */
  onion: () => Pick<OnionClient, 'replyBlock' | 'send'>
  /** Live relays a drop-cover packet may end at (the entry relay is left out here). */
  relays: () => PathRelay[]
  /** Why no path can be built now, or undefined. */
  tooFewRelays: () => string | undefined
  /** A loop came back through these relays (peer ids). */
  onLoopReturned: (path: string[]) => void
  /** How long a loop's reply block waits for its return. */
  loopTimeoutMs: number
  uniform: Uniform
  clock?: Clock
  onTick?: CoverInit['onTick']
}

/** What `/status` shows of the cover traffic (null at `fast`); `answers`: answer cover's counters (null where off). */
export type ClientCoverStatus = CoverStats & { loopsReturned: number, waiting: number, answers: AnswerCoverStats | null }

export class ClientCover {
  private readonly init: ClientCoverInit
  /** Undefined at a level without cover rates (`fast`). */
  private readonly cover: CoverTraffic | undefined
  /** Loop cover packets that came back (each also proved its path works). */
  private loopsReturned = 0
  /** A cover packet's own send goes straight to the entry link, not into the cover queue. */
  private bypass = false
  private submitted = 0
  /** The lane of the packets submitted now (`tagged`; node/cover.ts). */
  private lane: Lane = 'next'
  /** Answer cover (undefined where the level has none), and the answers the packets submitted now expect. */
  private readonly answers: AnswerCover | undefined
  private expected: readonly AnswerKind[] = []

  constructor (init: ClientCoverInit) {
    this.init = init
    const p = init.privacy
    const a = answerCoverFor(p)
    const answers = this.answers = a != null && p.dropPerMinute > 0 ? new AnswerCover({ loopPerMinute: p.loopPerMinute, ...a }) : undefined
    this.cover = p.loopPerMinute + p.dropPerMinute > 0
      ? new CoverTraffic({
        loopPerMinute: p.loopPerMinute,
        dropPerMinute: p.dropPerMinute,
        backlog: p.backlog,
        ...(answers != null ? { waiveLoop: (now: number) => answers.waive(now, init.uniform()) } : {}),
        sendLoop: () => { this.sendLoop() },
        sendDrop: () => { this.sendDrop() },
        uniform: init.uniform,
        clock: init.clock,
        onTick: init.onTick
      })
      : undefined
  }

  /** True when real packets wait for cover ticks (every level but `fast`). */
  get active (): boolean { return this.cover != null }

  /** Starts both cover streams (after the start's own burst: it goes at once). */
  start (): void { this.cover?.start() }

  /** Stops cover; real packets still waiting are abandoned (their requests fail now). */
  stop (): void { this.cover?.stop() }

  /**
   * Runs `fn` with every packet it submits tagged (synchronously: OnionClient.send and request submit
   * before their first await); a tag left out keeps what an enclosing call set:
   * - `lane: 'first'`: it leaves before queued upkeep and receipts (node/cover.ts). For what the user
   *   waits for: a message's DEPOSIT and the lookups before it.
   * - `answers`: the kinds of answer it expects; when it leaves, answer cover (where the level has it)
   *   waives loops around their expected arrival. For a DEPOSIT (its STORED; a message's first deposit:
   *   its receipt too).
   */
  tagged<T> (tags: { lane?: Lane, answers?: readonly AnswerKind[] }, fn: () => T): T {
    const { lane, expected } = this
    if (tags.lane !== undefined) this.lane = tags.lane
    if (tags.answers !== undefined) this.expected = tags.answers
    try { return fn() } finally { this.lane = lane; this.expected = expected }
  }

  /** Packets this node handed its entry link since it was created (cover, real, start-up alike). */
  get packetsSubmitted (): number { return this.submitted }

  /** The cover counters for `/status`, or null at `fast`. */
  status (): ClientCoverStatus | null {
    return this.cover == null ? null : { ...structuredClone(this.cover.stats), loopsReturned: this.loopsReturned, waiting: this.cover.queued, answers: this.answers == null ? null : structuredClone(this.answers.stats) }
  }

  /**
   * The entry link as the onion client sees it: at a level with cover, a packet it takes waits for the
   * next cover tick, loop or drop (and its request's timeout starts when it leaves); cover packets themselves
   * and every packet at `fast` go at once.
   */
  link (): EntryLink | undefined {
    const link = this.init.link()
    const cover = this.cover
    if (link == null) return undefined
    const counted: EntryLink = { relay: link.relay, submit: (address, packet) => this.counted(link, address, packet) }
    if (cover == null || this.bypass) return counted
    return {
      relay: link.relay,
      defers: true,
      submit: (address, packet, departed) => {
        const kinds = this.expected
        return cover.send(() => {
          // the link of the moment the tick fires (it may have been reopened meanwhile)
          const now = this.init.link()
          const ok = now != null && this.counted(now, address, packet)
          if (ok && this.answers != null) for (const k of kinds) this.answers.expect(k, (this.init.clock ?? realClock).now())
          departed?.(ok)
          if (!ok) throw now == null ? new NoEntryRelayError() : new SubmitFailedError()
        }, () => { departed?.(false) }, this.lane)
      }
    }
  }

  private counted (link: EntryLink, address: Uint8Array, packet: Uint8Array): boolean {
    const ok = link.submit(address, packet)
    if (ok) this.submitted++
    return ok
  }

  /** One loop cover packet: a reply block of ours (mix, mix, entry relay, us) used as a packet at once. */
  private sendLoop (): void {
    if (this.init.tooFewRelays() != null) throw new NoEntryRelayError('too few relays for cover')
    const link = this.init.link()
    if (link == null) throw new NoEntryRelayError()
    this.bypass = true
    try {
      const block = this.init.onion().replyBlock(() => {
        // it came back: every relay on the loop works
        this.loopsReturned++
        this.init.onLoopReturned(block.path)
      }, this.init.loopTimeoutMs)
      const { packet } = packetFromSurb(block.surb, randomBytes(16))
      if (!this.counted(link, block.surb.slice(0, 32), packet)) throw new SubmitFailedError()
    } finally {
      this.bypass = false
    }
  }

  /** One drop cover packet: mix, mix, a random relay's drop service (discarded and counted there). */
  private sendDrop (): void {
    if (this.init.tooFewRelays() != null) throw new NoEntryRelayError('too few relays for cover')
    const entry = this.init.link()?.relay
    const usable = this.init.relays().filter(r => r.peerId !== entry?.peerId)
    // a final relay outside the guard's /16 and family, as a real request's exit or mailbox would be
    const apart = entry == null ? usable : usable.filter(r => !sameGroup(r, entry))
    const pool = apart.length > 0 ? apart : usable
    if (pool.length === 0) throw new NoEntryRelayError('no relay for drop cover')
    const final = pool[Math.floor(this.init.uniform() * pool.length)]
    this.bypass = true
    try {
      this.init.onion().send(final, SERVICE_DROP, new Uint8Array(0))
    } finally {
      this.bypass = false
    }
  }
}
