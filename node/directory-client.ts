/**
 * The user's directory requests, sent through onions to exit relays (PROTOCOL-V2.md section 5): a DHT
 * node then only ever sees a relay asking, never the user. A lookup asks two exits (on different /16s
 * where the network has them, never the entry relay): disagreement is a warning, and "no such nick"
 * needs both to say so. Publishing goes through one exit, which does the pre-lookup, the put and the
 * read-back that tell a taken nick.
 */
import { logger } from '@libp2p/logger'
import { decodeExitAnswer, encodeLookup, encodePublish } from '../protocols/directory/exit.ts'
import { NameNotFoundError, NickTakenError, PublishError } from '../protocols/directory/index.ts'
import type { SignedRecord } from '../protocols/directory/index.ts'
import { bytesEqual, nameKey, verifyRecord } from '../protocols/directory/record.ts'
import type { OnionClient } from '../protocols/onion/client.ts'
import { chooseRelay } from '../protocols/onion/paths.ts'
import type { PathRelay } from '../protocols/onion/paths.ts'
import { SERVICE_DIRECTORY } from '../protocols/onion/service-body.ts'

export const DEFAULT_DIRECTORY_TIMEOUT_MS = 20_000
/** Exits asked per lookup. */
export const LOOKUP_EXITS = 2

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

type LookupOutcome = { found: SignedRecord } | { notFound: true } | { failed: string }

export class DirectoryClient {
  private readonly init: DirectoryClientInit
  private readonly log = logger('p2pchat:directory-client')
  readonly stats = { lookups: 0, disagreements: 0, publishes: 0, failures: 0 }

  constructor (init: DirectoryClientInit) {
    this.init = init
  }

  /** Exits for one operation: distinct, not the entry relay, on distinct /16s while they last. */
  private exits (count: number): PathRelay[] {
    const chosen: PathRelay[] = []
    const subnets = new Set<string>()
    const entry = this.init.entryPeerId()
    const all = this.init.relays().filter(r => r.peerId !== entry)
    for (let i = 0; i < count; i++) {
      const fresh = all.filter(r => !chosen.includes(r) && !subnets.has(this.init.subnetOf?.(r) ?? `#${r.peerId}`))
      const pick = chooseRelay(fresh.length > 0 ? fresh : all.filter(r => !chosen.includes(r)))
      if (pick == null) break
      chosen.push(pick)
      subnets.add(this.init.subnetOf?.(pick) ?? `#${pick.peerId}`)
    }
    return chosen
  }

  private async ask (exit: PathRelay, request: Uint8Array): Promise<ReturnType<typeof decodeExitAnswer>> {
    const payload = await this.init.onion.request(exit, SERVICE_DIRECTORY, request, { timeoutMs: this.init.timeoutMs ?? DEFAULT_DIRECTORY_TIMEOUT_MS })
    if (payload.length < 1 || payload[0] !== SERVICE_DIRECTORY) throw new DirectoryUnavailableError('an exit answered for another service')
    return decodeExitAnswer(payload.subarray(1))
  }

  private async lookupAt (exit: PathRelay, nick: string): Promise<LookupOutcome> {
    try {
      const answer = await this.ask(exit, encodeLookup(nick))
      if (!answer.ok) return { failed: `undecodable answer (${answer.reason})` }
      const a = answer.answer
      if (a.op !== 'lookup') return { failed: 'an answer to another request' }
      if (a.status === 'not-found') return { notFound: true }
      if (a.status !== 'found' || a.record == null) return { failed: a.status }
      // the exit is not trusted: the record must verify here, under the key of the nick asked for
      return { found: verifyRecord(nameKey(nick), a.record, (this.init.now ?? Date.now)()) }
    } catch (err) {
      return { failed: (err as Error).message }
    }
  }

  /**
   * Looks a nick up at two exits. Throws NameNotFoundError when every exit that answered says there is
   * no such nick (and at least one answered), DirectoryUnavailableError when none answered.
   */
  async lookup (nick: string): Promise<SignedRecord> {
    this.stats.lookups++
    const exits = this.exits(LOOKUP_EXITS)
    if (exits.length === 0) throw new DirectoryUnavailableError('no exit relay available')
    if (exits.length < LOOKUP_EXITS) this.init.onWarning?.('only one exit relay for a lookup: a lying exit would go unnoticed')
    const outcomes = await Promise.all(exits.map(async e => await this.lookupAt(e, nick)))
    const found = outcomes.flatMap(o => 'found' in o ? [o.found] : [])
    const notFound = outcomes.filter(o => 'notFound' in o).length
    if (found.length === 0) {
      if (notFound > 0) throw new NameNotFoundError(nick)
      this.stats.failures++
      throw new DirectoryUnavailableError(`no exit answered the lookup (${outcomes.map(o => 'failed' in o ? o.failed : '').join('; ')})`)
    }
    const keys = new Set(found.map(r => Buffer.from(r.identityKey).toString('hex')))
    if (keys.size > 1 || notFound > 0) {
      this.stats.disagreements++
      this.init.onWarning?.(`exits disagree about "${nick}": compare fingerprints out of band before trusting it`)
    }
    // same key from every exit: the newest record; different keys: the first exit's (the warning stands)
    const sameKey = found.filter(r => bytesEqual(r.identityKey, found[0].identityKey))
    return sameKey.reduce((a, b) => b.sequence > a.sequence ? b : a)
  }

  /** Publishes our signed name record through one exit. Throws NickTakenError, PublishError. */
  async publish (record: Uint8Array, nick: string): Promise<number> {
    this.stats.publishes++
    const tried = new Set<string>()
    let last = 'no exit relay available'
    for (let attempt = 0; attempt < 2; attempt++) {
      const exit = this.exits(LOOKUP_EXITS).find(e => !tried.has(e.peerId))
      if (exit == null) break
      tried.add(exit.peerId)
      try {
        const answer = await this.ask(exit, encodePublish(record))
        if (!answer.ok) { last = `undecodable answer (${answer.reason})`; continue }
        const a = answer.answer
        if (a.op !== 'publish') { last = 'an answer to another request'; continue }
        if (a.status === 'stored') return a.stored ?? 0
        if (a.status === 'taken') throw new NickTakenError(nick, 'another key')
        last = a.status
      } catch (err) {
        if (err instanceof NickTakenError) throw err
        last = (err as Error).message
        this.log('publishing through an exit failed: %s', last)
      }
    }
    this.stats.failures++
    throw new PublishError(`could not publish the name "${nick}": ${last}`)
  }
}
