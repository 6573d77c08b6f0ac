/**
 * The user's directory requests, sent through onions to exit relays (PROTOCOL-V2.md section 5): a DHT
 * node then only ever sees a relay asking, never the user. A lookup asks two exits (on different /16s
 * where the network has them, never the entry relay): disagreement is a warning, and "no such nick"
 * needs both to say so. Publishing goes through one exit, which does the pre-lookup, the put and the
 * read-back that tell a taken nick.
 *
 * Late answers (the OnionClient `late` option, as the mailbox DEPOSIT uses it): an exit's answer that
 * comes after the request timed out still counts. Publishing: a record stored late is published (a
 * later try is not needed), a late "taken" still fails the publication; a start asks `rounds` rounds
 * of exits before it calls the network unreachable (PublishTimeoutError), so a slow network (an exit's
 * put and read-back in the DHT take up to 45 s: exit.ts) makes a slow start, not a failed one. Lookups:
 * when no exit answered in time, their late answers are waited for one more request timeout (a user
 * waits on a lookup; the retry round asks again after that).
 */
import { logger } from '@libp2p/logger'
import { compareLookups, decodeAnswer as decodeExitAnswer, encodeLookup, encodePublish, OP_PUBLISH_NAME } from '../protocols/directory/exit.ts'
import { NameNotFoundError, NickTakenError, PublishError } from '../protocols/directory/index.ts'
import type { SignedRecord } from '../protocols/directory/index.ts'
import { bytesEqual } from '../protocols/directory/record.ts'
import { AnswerTimeoutError } from '../protocols/onion/client.ts'
import type { OnionClient } from '../protocols/onion/client.ts'
import { chooseRelay, drawForPosition } from '../protocols/onion/paths.ts'
import type { PathRelay } from '../protocols/onion/paths.ts'
import { SERVICE_DIRECTORY } from '../protocols/onion/service-body.ts'
import { DEFAULT_LATE_ANSWER_MS } from './mailboxes.ts'
import { relayRole } from './roles.ts'

export const DEFAULT_DIRECTORY_TIMEOUT_MS = 20_000
/** Exits asked per lookup. */
export const LOOKUP_EXITS = 2
/** Exits tried, one after the other, to publish a record: a slow or dead exit does not fail a start. */
export const PUBLISH_TRIES = 4
/**
 * Rounds of PUBLISH_TRIES exits a start asks before failing on silence: under load (the lab at 18
 * processes, the anonymity bench) every one of a round's four exits could answer after the timeout;
 * three rounds, with every earlier request's late answer still counted, span the exit's own publish
 * timeout (45 s) several times over at the product's request timeout.
 */
export const START_PUBLISH_ROUNDS = 3

export interface DirectoryClientInit {
  onion: OnionClient
  relays: () => PathRelay[]
  entryPeerId: () => string | undefined
  subnetOf?: (relay: PathRelay) => string | undefined
  timeoutMs?: number
  /**
   * How long after its timeout a publication's answer is still taken (its reply block kept; default
   * DEFAULT_LATE_ANSWER_MS, as for a DEPOSIT: the slowest mixing delays of a round trip). Lookups that
   * got no answer in time wait the request timeout again for a late one, no longer: a user is waiting.
   */
  lateAnswerMs?: number
  onWarning?: (message: string) => void
  now?: () => number
}

export class DirectoryUnavailableError extends Error {
  constructor (message: string) { super(message); this.name = 'DirectoryUnavailableError' }
}

/**
 * No exit answered a publication, in time or late, in every round asked: the network is slow or
 * unreachable (not a refusal: nothing said the nick is taken or the record bad).
 */
export class PublishTimeoutError extends PublishError {
  constructor (message: string) { super(message); this.name = 'PublishTimeoutError' }
}

/** How a publication ends, whenever its answer comes. */
type PublishOutcome = { stored: number } | { taken: true }

export class DirectoryClient {
  private readonly init: DirectoryClientInit
  private readonly log = logger('p2pchat:directory-client')
  readonly stats = { lookups: 0, disagreements: 0, publishes: 0, failures: 0, lateAnswers: 0 }
  private lastWarning = 0

  constructor (init: DirectoryClientInit) {
    this.init = init
  }

  /**
   * Exits for one operation: exit-role relays (roles.ts: never anyone's entry relay), distinct, on
   * distinct /16s while they last. Too few exits: other relays but our entry relay, with a warning.
   */
  private exits (count: number): PathRelay[] {
    const chosen: PathRelay[] = []
    const subnets = new Set<string>()
    const entry = this.init.entryPeerId()
    const all = this.init.relays()
    const notEntry = (r: PathRelay): boolean => r.peerId !== entry
    const others = all.filter(notEntry)
    const exitRole = others.filter(r => relayRole(r.peerId) === 'exit')
    if (exitRole.length < count && others.length > exitRole.length && Date.now() - this.lastWarning > 60_000) {
      this.lastWarning = Date.now()
      this.init.onWarning?.(`only ${exitRole.length} exit relays: directory requests also go to entry relays, one of which may be the entry relay of the user looked up (start more relays)`)
    }
    const isExit = (r: PathRelay): boolean => relayRole(r.peerId) === 'exit'
    for (let i = 0; i < count; i++) {
      const open = all.filter(r => !chosen.includes(r))
      const fresh = open.filter(r => !subnets.has(this.init.subnetOf?.(r) ?? `#${r.peerId}`))
      // an exit by /16, each /16's weight split over its relays' roles (paths.ts drawForPosition: a /16
      // with many relays is no more often an exit's /16 than one with one; our entry relay counts in
      // its /16's weight but is never drawn); then an exit in a /16 already used; only with too few
      // exits another relay (warned above)
      const freshOthers = fresh.filter(notEntry)
      const pick = drawForPosition(fresh, isExit, notEntry) ?? (exitRole.length >= count ? drawForPosition(open, isExit, notEntry) : undefined) ??
        chooseRelay(freshOthers.length > 0 ? freshOthers : open.filter(notEntry))
      if (pick == null) break
      chosen.push(pick)
      subnets.add(this.init.subnetOf?.(pick) ?? `#${pick.peerId}`)
    }
    return chosen
  }

  private get timeoutMs (): number { return this.init.timeoutMs ?? DEFAULT_DIRECTORY_TIMEOUT_MS }

  /** The answer bytes after the service byte, or undefined for an answer of another service. */
  private static unwrap (payload: Uint8Array): Uint8Array | undefined {
    return payload.length >= 1 && payload[0] === SERVICE_DIRECTORY ? payload.subarray(1) : undefined
  }

  /**
   * The exit's answer bytes (after the service byte); undefined when none came in time, with `timedOut`
   * when the request left and its answer may still come (else it failed: no entry relay, not sent).
   * `late`: the answer if it comes within `late.ms` after the timeout.
   */
  private async ask (exit: PathRelay, request: Uint8Array, onLate?: { ms: number, onAnswer: (bytes: Uint8Array) => void }): Promise<{ bytes?: Uint8Array, timedOut: boolean }> {
    const late = onLate == null
      ? undefined
      : {
          ms: onLate.ms,
          onAnswer: (payload: Uint8Array) => {
            this.stats.lateAnswers++
            const bytes = DirectoryClient.unwrap(payload)
            if (bytes != null) onLate.onAnswer(bytes)
          }
        }
    try {
      const payload = await this.init.onion.request(exit, SERVICE_DIRECTORY, request, { timeoutMs: this.timeoutMs, late })
      return { bytes: DirectoryClient.unwrap(payload), timedOut: false }
    } catch (err) {
      this.log('an exit did not answer: %s', (err as Error).message)
      return { timedOut: err instanceof AnswerTimeoutError }
    }
  }

  /**
   * Looks a nick up at two exits (EXIT.md "Comparing exits"). Throws NameNotFoundError only when every
   * exit says there is no such nick, DirectoryUnavailableError when no exit gave a usable answer. Exits
   * that disagree are a warning; then the record of `preferKey` (our pin) wins if one carries it.
   */
  async lookup (nick: string, preferKey?: Uint8Array): Promise<SignedRecord> {
    this.stats.lookups++
    const exits = this.exits(LOOKUP_EXITS)
    if (exits.length === 0) throw new DirectoryUnavailableError('no exit relay available')
    if (exits.length < LOOKUP_EXITS) this.init.onWarning?.('only one exit relay for a lookup: a lying exit would go unnoticed')
    const answers = await this.lookupAnswers(nick, exits)
    const verdict = compareLookups(nick, answers, (this.init.now ?? Date.now)())
    // the warnings name the nick: logs never hold nicks, so only their number is logged
    if (verdict.warnings.length > 0) this.log('a lookup: %d warnings from the exits', verdict.warnings.length)
    switch (verdict.verdict) {
      case 'found':
        if (!verdict.agreed) { this.stats.disagreements++; this.init.onWarning?.(`the exits did not all find "${nick}": ${verdict.warnings.join('; ')}`) }
        return verdict.record
      case 'not-found':
        throw new NameNotFoundError(nick)
      case 'disagree': {
        this.stats.disagreements++
        this.init.onWarning?.(`exits disagree about "${nick}" (${verdict.records.length} keys claim it): compare fingerprints out of band before trusting it`)
        return verdict.records.find(r => preferKey != null && bytesEqual(r.identityKey, preferKey)) ?? verdict.records[0]
      }
      case 'unknown':
        this.stats.failures++
        throw new DirectoryUnavailableError(`no exit answered the lookup (${verdict.warnings.join('; ')})`)
    }
  }

  /**
   * The exits' answers to a lookup, in exit order. When none came in time, the late ones are waited for
   * (up to the request timeout again) until they give a verdict: a found record, or every exit that
   * timed out answered; without any, every answer is undefined (the verdict is then 'unknown').
   */
  private async lookupAnswers (nick: string, exits: PathRelay[]): Promise<Array<Uint8Array | undefined>> {
    const answers: Array<Uint8Array | undefined> = exits.map(() => undefined)
    let waiting: Set<number> | undefined
    let wake: (() => void) | undefined
    // decided: every exit still awaited has answered, or a record is found
    const decided = (): boolean => [...(waiting ?? [])].every(i => answers[i] != null) || compareLookups(nick, answers, (this.init.now ?? Date.now)()).verdict === 'found'
    const inTime = await Promise.all(exits.map(async (e, i) => await this.ask(e, encodeLookup(nick), {
      ms: this.timeoutMs,
      onAnswer: (bytes) => {
        if (waiting == null || answers[i] != null) return
        answers[i] = bytes
        if (decided()) wake?.()
      }
    })))
    // no exit answered in time, some timed out (a slow network, or dead exits): their late answers still decide
    if (inTime.some(a => a.bytes != null) || !inTime.some(a => a.timedOut)) return inTime.map(a => a.bytes)
    waiting = new Set(inTime.flatMap((a, i) => a.timedOut ? [i] : []))
    await settledWithin(new Promise<void>(resolve => { wake = resolve }), this.timeoutMs)
    waiting = undefined
    return answers
  }

  /**
   * Publishes our signed name record through an exit (another one if the first fails, up to
   * PUBLISH_TRIES a round, `rounds` rounds; publishing the same record again is harmless). A late answer
   * to any earlier try counts: "stored" ends the publication, "taken" fails it. Throws NickTakenError,
   * PublishTimeoutError when no exit answered at all (in time or late) and requests timed out,
   * PublishError for the rest.
   * `onSlow(round)`: a round ended with no answer and another starts (after a request timeout when no
   * request of the round could leave).
   */
  async publish (record: Uint8Array, nick: string, opts: { rounds?: number, onSlow?: (round: number) => void } = {}): Promise<number> {
    this.stats.publishes++
    const rounds = Math.max(1, opts.rounds ?? 1)
    let last = 'no exit relay available'
    let answered = false
    let lastTimedOut = false
    let anyTimedOut = false
    let outcome: PublishOutcome | undefined
    let wake: (() => void) | undefined
    const settled = new Promise<void>(resolve => { wake = resolve })
    /** An answer's verdict: the outcome when it decides the publication, else why it did not. */
    const judge = (bytes: Uint8Array): string | undefined => {
      answered = true
      const d = decodeExitAnswer(bytes)
      if (!d.ok) return `undecodable answer (${d.reason})`
      const a = d.value
      if (a.op !== OP_PUBLISH_NAME) return 'an answer to another request'
      if (a.status === 'stored' || a.status === 'taken') {
        outcome ??= a.status === 'stored' ? { stored: a.stored } : { taken: true }
        wake?.()
        return undefined
      }
      return a.status === 'refused' ? `refused (${a.fault})` : a.status === 'error' ? `error (${a.reason})` : a.status
    }
    const late = {
      ms: this.init.lateAnswerMs ?? DEFAULT_LATE_ANSWER_MS,
      onAnswer: (bytes: Uint8Array): void => {
        if (outcome != null) return
        const why = judge(bytes)
        if (why != null) last = why
      }
    }
    const ended = (): number => {
      if (outcome == null) throw new Error('publication not ended')
      if ('taken' in outcome) throw new NickTakenError(nick, 'another key')
      return outcome.stored
    }
    let roundSent = true
    for (let round = 1; round <= rounds; round++) {
      if (round > 1) {
        opts.onSlow?.(round)
        // a round none of whose requests left (no entry link: it was lost under load, the lab at 18
        // processes) is not asked again at once: the entry relay gets a request timeout to come back
        if (!roundSent) await new Promise<void>(resolve => { setTimeout(resolve, this.timeoutMs).unref() })
      }
      roundSent = false
      const tries = [...this.exits(LOOKUP_EXITS), ...this.exits(LOOKUP_EXITS)].slice(0, PUBLISH_TRIES)
      for (const exit of tries) {
        const asked = await Promise.race([this.ask(exit, encodePublish(record), late), settled.then(() => ({ timedOut: false }))])
        if (outcome != null) return ended()
        lastTimedOut = asked.timedOut
        anyTimedOut ||= asked.timedOut
        roundSent ||= asked.timedOut || 'bytes' in asked
        const bytes = 'bytes' in asked ? asked.bytes : undefined
        if (bytes == null) { if (!answered) last = asked.timedOut ? 'no answer in time' : 'no request could leave (not connected to an entry relay)'; continue }
        const why = judge(bytes)
        if (outcome != null) return ended()
        if (why != null) last = why
      }
      if (tries.length === 0) break
    }
    // the last try's answer (or an earlier one's) may still come: one more request timeout for it
    if (lastTimedOut) {
      await settledWithin(settled, this.timeoutMs)
      if (outcome != null) return ended()
    }
    this.stats.failures++
    if (!answered && anyTimedOut) throw new PublishTimeoutError(`could not publish the name "${nick}": no exit answered in ${rounds} round${rounds === 1 ? '' : 's'} of ${PUBLISH_TRIES} (the network is slow or unreachable)`)
    throw new PublishError(`could not publish the name "${nick}": ${last}`)
  }
}

/**
 * Waits for `event` (it never rejects here: a wake-up) or `ms`, whichever comes first, and clears the
 * timer either way: the one more request timeout both lookups and publications give late answers.
 */
async function settledWithin (event: Promise<void>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined
  await Promise.race([event, new Promise<void>(resolve => { timer = setTimeout(resolve, ms) })])
  clearTimeout(timer)
}
