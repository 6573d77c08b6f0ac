/**
 * The user's directory requests, sent through onions to exit relays (PROTOCOL-V2.md section 5): a DHT
 * node then only ever sees a relay asking, never the user. A lookup asks two exits (on different /16s
 * where the network has them, never the entry relay): disagreement is a warning, and "no such nick"
 * needs both to say so. Publishing goes through one exit, which does the pre-lookup, the put and the
 * read-back that tell a taken nick.
 */
import { logger } from '@libp2p/logger'
import { compareLookups, decodeAnswer as decodeExitAnswer, encodeLookup, encodePublish, OP_PUBLISH_NAME } from '../protocols/directory/exit.ts'
import { NameNotFoundError, NickTakenError, PublishError } from '../protocols/directory/index.ts'
import type { SignedRecord } from '../protocols/directory/index.ts'
import { bytesEqual } from '../protocols/directory/record.ts'
import type { OnionClient } from '../protocols/onion/client.ts'
import { chooseRelay, drawForPosition } from '../protocols/onion/paths.ts'
import type { PathRelay } from '../protocols/onion/paths.ts'
import { SERVICE_DIRECTORY } from '../protocols/onion/service-body.ts'
import { relayRole } from './roles.ts'

export const DEFAULT_DIRECTORY_TIMEOUT_MS = 20_000
/** Exits asked per lookup. */
export const LOOKUP_EXITS = 2
/** Exits tried, one after the other, to publish a record: a slow or dead exit does not fail a start. */
export const PUBLISH_TRIES = 4

export interface DirectoryClientInit {
  onion: OnionClient
  relays: () => PathRelay[]
  entryPeerId: () => string | undefined
  subnetOf?: (relay: PathRelay) => string | undefined
  timeoutMs?: number
  onWarning?: (message: string) => void
  now?: () => number
}

export class DirectoryUnavailableError extends Error {
  constructor (message: string) { super(message); this.name = 'DirectoryUnavailableError' }
}

export class DirectoryClient {
  private readonly init: DirectoryClientInit
  private readonly log = logger('p2pchat:directory-client')
  readonly stats = { lookups: 0, disagreements: 0, publishes: 0, failures: 0 }
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

  /** The exit's answer bytes (after the service byte); undefined when none came in time. */
  private async ask (exit: PathRelay, request: Uint8Array): Promise<Uint8Array | undefined> {
    try {
      const payload = await this.init.onion.request(exit, SERVICE_DIRECTORY, request, { timeoutMs: this.init.timeoutMs ?? DEFAULT_DIRECTORY_TIMEOUT_MS })
      return payload.length >= 1 && payload[0] === SERVICE_DIRECTORY ? payload.subarray(1) : undefined
    } catch (err) {
      this.log('an exit did not answer: %s', (err as Error).message)
      return undefined
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
    const answers = await Promise.all(exits.map(async e => await this.ask(e, encodeLookup(nick))))
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
   * Publishes our signed name record through an exit (another one if the first fails, up to
   * PUBLISH_TRIES; publishing the same record again is harmless). Throws NickTakenError, PublishError.
   */
  async publish (record: Uint8Array, nick: string): Promise<number> {
    this.stats.publishes++
    let last = 'no exit relay available'
    const tries = [...this.exits(LOOKUP_EXITS), ...this.exits(LOOKUP_EXITS)].slice(0, PUBLISH_TRIES)
    for (const exit of tries) {
      const bytes = await this.ask(exit, encodePublish(record))
      if (bytes == null) { last = 'no answer in time'; continue }
      const d = decodeExitAnswer(bytes)
      if (!d.ok) { last = `undecodable answer (${d.reason})`; continue }
      const a = d.value
      if (a.op !== OP_PUBLISH_NAME) { last = 'an answer to another request'; continue }
      if (a.status === 'stored') return a.stored
      if (a.status === 'taken') throw new NickTakenError(nick, 'another key')
      last = a.status === 'refused' ? `refused (${a.fault})` : a.status === 'error' ? `error (${a.reason})` : a.status
    }
    this.stats.failures++
    throw new PublishError(`could not publish the name "${nick}": ${last}`)
  }
}
