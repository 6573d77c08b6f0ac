/**
 * The user's guards (Tor's guard-spec, simplified for one client link; SPEC.md "Guards"): a small
 * persisted list of entry relays, the only relays a user ever connects to. The guard in use is the
 * first hop of every forward path and the last relay of every reply block (node/entry.ts), so a relay
 * the user did not choose weeks ago never sees the user's address and traffic.
 *
 * File `guards.json` in the data directory (mode 0600, written whole by a temporary file and a rename):
 *   { "v": 1, "guards": [ { "peerId", "chosenAt", "expiresAt", "confirmedAt"?, "unreachableSince"?,
 *                           "lastTriedAt"?, "unlistedSince"? }, ... ] }   (times in ms since the epoch)
 * `lastTriedAt` is the last failed try, or the success that ended a guard's time down; a link that
 * comes up on a guard already known reachable changes nothing and writes nothing, so a connection
 * writes the file at most once (its outcome), a reopened link to a reachable guard not at all.
 * A file that does not parse is set aside as `guards.json.bad` and the list starts empty (a warning),
 * never a crash.
 *
 * Rules (guard-spec sections "sampled guards", "primary guards", "retry schedule"):
 * - Sampling: a new guard is a live relay of the entry role (node/roles.ts) that shares no /16 or family
 *   with the guards already held and is not one of the user's mailbox relays, drawn by /16 with each
 *   /16's weight split over the roles of its relays (paths.ts `drawForPosition`: a /16 of entry relays
 *   weighs 1, a /16 of both roles 1/2), so a /16 of many relays is no more often a guard's /16 than a
 *   /16 of one (SPEC.md "Position weights"); at most MAX_SAMPLED_GUARDS are ever held at once, so an
 *   adversary who makes guards unreachable cannot walk the user through many relays until one of its
 *   own comes up.
 * - Primary guards: the first NUM_PRIMARY_GUARDS guards in the order they were chosen that are listed
 *   (a live descriptor) and not expired. The entry link uses the first reachable one, in that order.
 * - Down: a guard counts as unreachable only when a connection to it fails (entry.ts: a dial failed,
 *   or a dropped link could not be reopened), never because a packet was lost. It is retried on the
 *   guard-spec schedule, and only then the next guard in the list is used; it is not removed.
 * - Removal: a guard leaves the list when its lifetime is over (GUARD_LIFETIME_MS plus up to
 *   GUARD_LIFETIME_JITTER_MS, drawn when chosen: rotation after weeks), or when it has not been listed
 *   for REMOVE_UNLISTED_AFTER_MS.
 * - When every guard held is down (the user's network is down, say), all of them are tried again in
 *   order rather than new ones sampled beyond the cap. A new guard is sampled only among relays that
 *   relay health counts alive. When no guard answers and no live entry-role relay is left to sample,
 *   node/entry.ts links to another relay for now (with a warning) and moves back to a guard as soon as
 *   one is alive again.
 * - Moving back (guard-spec: the first reachable primary guard is used): while the link is on a guard
 *   ranked after a primary guard that was down, that guard is retried on its schedule (`better`) and,
 *   once a link to it comes up, the link moves to it (node/entry.ts; the mailboxes are registered
 *   again through it). The state that decides it (down since, last try) is in the file, so a restart
 *   neither forgets a guard that was down nor retries it sooner than the schedule.
 */
import { existsSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs'
import { randomInt } from 'node:crypto'
import { join } from 'node:path'
import { logger } from '@libp2p/logger'
import { drawForPosition, groupsOf } from '../protocols/onion/paths.ts'
import type { PathRelay } from '../protocols/onion/paths.ts'
import { relayRole } from './roles.ts'

export const GUARDS_FILE = 'guards.json'
const FORMAT_VERSION = 1

/** Only relays of the entry role are guards: an exit never runs a lookup of its own client's nick (roles.ts). */
const isEntryRole = (r: PathRelay): boolean => relayRole(r.peerId) === 'entry'

const DAY = 24 * 3600_000
const HOUR = 3600_000
/** guard-spec's NUM_PRIMARY_GUARDS is 3 with many relays; 2 keep a spare for a small network. */
export const NUM_PRIMARY_GUARDS = 2
/**
 * guard-spec caps the sampled set (MAX_SAMPLE_SIZE 60, 20 % of the network); our networks are small,
 * so a fixed 8: an adversary that makes guards fail reaches at most 8 draws by /16.
 */
export const MAX_SAMPLED_GUARDS = 8
/** Rotation after weeks: 6 weeks (guard-spec: 60 to 120 days for Tor's far larger network and churn). */
export const GUARD_LIFETIME_MS = 42 * DAY
/** Up to 2 more weeks, drawn per guard, so a user's guards do not all rotate on the same day. */
export const GUARD_LIFETIME_JITTER_MS = 14 * DAY
/** guard-spec's REMOVE_UNLISTED_GUARDS_AFTER: a guard without a live descriptor this long is dropped. */
export const REMOVE_UNLISTED_AFTER_MS = 20 * DAY

export interface GuardRecord {
  peerId: string
  chosenAt: number
  expiresAt: number
  /** The first time a link to it was up. */
  confirmedAt?: number
  /** Since when every connection attempt failed (absent: reachable or never tried). */
  unreachableSince?: number
  lastTriedAt?: number
  /** Since when no live descriptor of it is known. */
  unlistedSince?: number
}

/**
 * guard-spec's retry schedule: how long after the last try a guard down for `downForMs` is tried again.
 * Primary: 10 min for the first 6 h, 90 min up to 4 days, 4 h up to 7 days, then 9 h. Others: 1 h,
 * 4 h, 18 h, 36 h over the same spans.
 */
export function retryIntervalMs (downForMs: number, primary: boolean): number {
  const spans = [6 * HOUR, 4 * DAY, 7 * DAY]
  const steps = primary ? [10 * 60_000, 90 * 60_000, 4 * HOUR, 9 * HOUR] : [HOUR, 4 * HOUR, 18 * HOUR, 36 * HOUR]
  const i = spans.findIndex(s => downForMs < s)
  return steps[i === -1 ? 3 : i]
}

export class GuardFileError extends Error {
  constructor (message: string) { super(message); this.name = 'GuardFileError' }
}

export interface GuardSetInit {
  /** The data directory (the file is `guards.json` in it); absent: in memory only. */
  dataDir?: string
  now?: () => number
  onWarning?: (message: string) => void
}

export class GuardSet {
  private list: GuardRecord[] = []
  /** The file is read at the first use (so that its warning reaches listeners added after construction). */
  private loaded = false
  private readonly file: string | undefined
  private readonly now: () => number
  private readonly log = logger('p2pchat:guards')
  private readonly onWarning: ((message: string) => void) | undefined
  /** Writes of the file (each a temporary file, flushed, then renamed), counted for tests. */
  readonly stats = { saves: 0 }

  constructor (init: GuardSetInit = {}) {
    this.file = init.dataDir != null ? join(init.dataDir, GUARDS_FILE) : undefined
    this.now = init.now ?? Date.now
    this.onWarning = init.onWarning
  }

  /** The guards held, in the order they were chosen (copies). */
  get guards (): GuardRecord[] { this.load(); return this.list.map(g => ({ ...g })) }

  /** Peer ids of the primary guards among `live` relays (those listed and not expired). */
  primary (live: PathRelay[]): string[] {
    this.load()
    const listed = new Set(live.map(r => r.peerId))
    const now = this.now()
    return this.list.filter(g => listed.has(g.peerId) && g.expiresAt > now).slice(0, NUM_PRIMARY_GUARDS).map(g => g.peerId)
  }

  /**
   * The relays to try as the entry link, best first: guards expire and are dropped as the rules say,
   * new ones are sampled while fewer than NUM_PRIMARY_GUARDS usable guards are up (within the cap),
   * then reachable (or due for a retry) primary guards, then the other guards; when none is usable,
   * every listed guard. Empty only when no relay of the entry role is listed. `listed`: every relay
   * with a live descriptor (dead ones too: a guard that is down stays in its place); `avoid`: the
   * user's mailbox relays, sampled only when nothing else is left; `alive`: the relays a new guard may
   * be sampled from (relay health's live ones; default `listed`), so no relay already found dead is
   * ever sampled.
   */
  order (listed: PathRelay[], avoid: Iterable<string> = [], alive: PathRelay[] = listed): PathRelay[] {
    this.load()
    const now = this.now()
    let changed = this.maintain(listed, now)
    const byId = new Map(listed.map(r => [r.peerId, r]))
    const usable = (): GuardRecord[] => this.list.filter(g => byId.has(g.peerId) && g.expiresAt > now && this.due(g, now))
    while (usable().length < NUM_PRIMARY_GUARDS && this.list.length < MAX_SAMPLED_GUARDS) {
      const drawn = this.sample(alive.filter(r => byId.has(r.peerId)), new Set(avoid))
      if (drawn == null) break
      this.list.push({ peerId: drawn.peerId, chosenAt: now, expiresAt: now + GUARD_LIFETIME_MS + randomInt(GUARD_LIFETIME_JITTER_MS) })
      this.log('sampled a new guard (%d held)', this.list.length)
      changed = true
    }
    if (changed) this.save()
    const held = this.list.filter(g => byId.has(g.peerId) && g.expiresAt > now)
    const ready = held.filter(g => this.due(g, now))
    const chosen = ready.length > 0 ? ready : held
    return chosen.map(g => byId.get(g.peerId) as PathRelay)
  }

  /**
   * A link to this guard is up: it is reachable (and confirmed). Written only when that changes what
   * the file says (a guard newly confirmed or back from down): one write per connection at most, none
   * for a link reopened to a guard known reachable.
   */
  succeeded (peerId: string): void {
    const g = this.find(peerId)
    if (g == null) return
    const now = this.now()
    const changed = g.confirmedAt == null || g.unreachableSince != null
    g.confirmedAt ??= now
    delete g.unreachableSince
    g.lastTriedAt = now
    if (changed) this.save()
  }

  /**
   * Connecting to this guard failed (not a lost packet: a dial or a reopen): down since now, or still
   * down; the try is recorded (the retry schedule counts from it). One write per failed connection.
   */
  failed (peerId: string): void {
    const g = this.find(peerId)
    if (g == null) return
    const now = this.now()
    g.unreachableSince ??= now
    g.lastTriedAt = now
    this.save()
  }

  /**
   * A primary guard ranked before `current` that the link should move to now, or undefined (guard-spec
   * "Selecting guards for circuits": the first primary guard that is reachable or may be is used, and
   * a circuit on a lower-priority guard gives way once a higher-priority one works again). A candidate
   * is listed in `listed`, not expired, and reachable or, when it is down, due for a retry on the
   * schedule (`retryIntervalMs`): a guard that came back is found at its next retry at the latest, and a
   * guard still down is dialled no more often than the schedule says, whoever asks and however often.
   * A current relay that is no guard is ranked after every guard. Guards in `avoid` (the user's mailbox
   * relays) are candidates only while the current relay is one of them too (entry.ts puts them last).
   * `listed` ranks the guards (every relay with a live descriptor, as for `order`); `alive` narrows the
   * candidates (relay health's live ones: a guard found dead is dialled again only once heard again).
   */
  better (current: string, listed: PathRelay[], avoid: Iterable<string> = [], alive: PathRelay[] = listed): PathRelay | undefined {
    this.load()
    const now = this.now()
    const byId = new Map(listed.map(r => [r.peerId, r]))
    const aliveIds = new Set(alive.map(r => r.peerId))
    const avoided = new Set(avoid)
    const primary = this.list.filter(g => byId.has(g.peerId) && g.expiresAt > now).slice(0, NUM_PRIMARY_GUARDS)
    const at = primary.findIndex(g => g.peerId === current)
    const above = at === -1 ? primary : primary.slice(0, at)
    const pick = above.find(g => aliveIds.has(g.peerId) && this.due(g, now) && (!avoided.has(g.peerId) || avoided.has(current)))
    return pick == null ? undefined : byId.get(pick.peerId)
  }

  /** Is this relay one of the guards held? */
  has (peerId: string): boolean { return this.find(peerId) != null }

  private find (peerId: string): GuardRecord | undefined { this.load(); return this.list.find(g => g.peerId === peerId) }

  /** Reachable, never tried, or down but due for a retry on guard-spec's schedule. */
  private due (g: GuardRecord, now: number): boolean {
    if (g.unreachableSince == null) return true
    const primary = this.list.filter(x => x.expiresAt > now && x.unlistedSince == null).slice(0, NUM_PRIMARY_GUARDS).includes(g)
    return now - (g.lastTriedAt ?? 0) >= retryIntervalMs(now - g.unreachableSince, primary)
  }

  /** Drops expired guards and those unlisted too long; notes which are listed. True if anything changed. */
  private maintain (live: PathRelay[], now: number): boolean {
    const listed = new Set(live.map(r => r.peerId))
    let changed = false
    this.list = this.list.filter(g => {
      if (listed.has(g.peerId)) {
        if (g.unlistedSince != null) { delete g.unlistedSince; changed = true }
      } else if (g.unlistedSince == null) {
        g.unlistedSince = now
        changed = true
      }
      const keep = g.expiresAt > now && (g.unlistedSince == null || now - g.unlistedSince < REMOVE_UNLISTED_AFTER_MS)
      if (!keep) { changed = true; this.log('guard retired (%s)', g.expiresAt <= now ? 'lifetime over' : 'unlisted') }
      return keep
    })
    return changed
  }

  /**
   * A new guard: entry role, not held, sharing no /16 or family with the guards held, drawn by /16 with
   * the /16's weight split over the roles of its relays (paths.ts `drawForPosition`): every /16 of the
   * live relays counts, not only those that hold an entry-role relay.
   */
  private sample (live: PathRelay[], avoid: Set<string>): PathRelay | undefined {
    const held = new Set(this.list.map(g => g.peerId))
    const taken = new Set(live.filter(r => held.has(r.peerId)).flatMap(groupsOf))
    const open = live.filter(r => !held.has(r.peerId))
    const diverse = open.filter(r => !groupsOf(r).some(g => taken.has(g)))
    const notAvoided = (r: PathRelay): boolean => !avoid.has(r.peerId)
    return drawForPosition(diverse, isEntryRole, notAvoided) ?? drawForPosition(diverse, isEntryRole) ??
      drawForPosition(open, isEntryRole, notAvoided) ?? drawForPosition(open, isEntryRole)
  }

  private load (): void {
    if (this.loaded) return
    this.loaded = true
    if (this.file == null || !existsSync(this.file)) return
    try {
      this.list = parseGuards(readFileSync(this.file, 'utf8'))
    } catch (err) {
      this.onWarning?.(`the guard list could not be read (${(err as Error).message}): set aside as ${GUARDS_FILE}.bad; choosing new guards`)
      try { renameSync(this.file, this.file + '.bad') } catch { /* left in place: overwritten at the next save */ }
      this.list = []
    }
  }

  private save (): void {
    if (this.file == null) return
    const tmp = `${this.file}.${process.pid}.tmp`
    try {
      // flushed before the rename: a crash leaves the old file or the new one, never a torn one
      writeFileSync(tmp, JSON.stringify({ v: FORMAT_VERSION, guards: this.list }) + '\n', { mode: 0o600, flush: true })
      renameSync(tmp, this.file)
      this.stats.saves++
    } catch (err) {
      try { unlinkSync(tmp) } catch { /* nothing written */ }
      this.log.error('saving the guard list failed: %s', (err as Error).message)
      this.onWarning?.(`the guard list could not be saved (${(err as Error).message}): guards will be chosen anew at the next start`)
    }
  }
}

/** Parses guards.json; throws GuardFileError for anything but the format above. */
export function parseGuards (text: string): GuardRecord[] {
  let doc: unknown
  try { doc = JSON.parse(text) } catch { throw new GuardFileError('not JSON') }
  const d = doc as { v?: unknown, guards?: unknown }
  if (d == null || typeof d !== 'object' || d.v !== FORMAT_VERSION || !Array.isArray(d.guards)) throw new GuardFileError('not a guard list of version 1')
  if (d.guards.length > MAX_SAMPLED_GUARDS) throw new GuardFileError('too many guards')
  const time = (v: unknown): boolean => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
  const opt = (v: unknown): boolean => v === undefined || time(v)
  return d.guards.map((g: Record<string, unknown>) => {
    if (g == null || typeof g.peerId !== 'string' || !/^[1-9A-HJ-NP-Za-km-z]{20,100}$/.test(g.peerId) || !time(g.chosenAt) || !time(g.expiresAt) ||
      !opt(g.confirmedAt) || !opt(g.unreachableSince) || !opt(g.lastTriedAt) || !opt(g.unlistedSince)) throw new GuardFileError('a malformed guard entry')
    const out: GuardRecord = { peerId: g.peerId, chosenAt: g.chosenAt as number, expiresAt: g.expiresAt as number }
    for (const k of ['confirmedAt', 'unreachableSince', 'lastTriedAt', 'unlistedSince'] as const) if (g[k] !== undefined) out[k] = g[k] as number
    return out
  })
}
