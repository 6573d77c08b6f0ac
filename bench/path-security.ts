/**
 * Path security against an operator of many relays (issue 12): a Monte Carlo over the real path code
 * (protocols/onion/paths.ts `chooseRelay`, `chooseMixes`, `drawByGroup`; node/guards.ts `GuardSet`)
 * beside main's uniform choice, measured in the same run on the same relay sets.
 *
 * Network: 20 honest relays, each in its own /16, plus `hostile` relays spread evenly over k /16s
 * (k = 1, 2, 5, 10, 20), and one row with the hostile relays over 20 /16s declaring one family. Roles
 * (node/roles.ts) come from the peer ids as on the real network (about half the relays of each side are
 * entry relays); one row gives every hostile relay the entry role, as an adversary who grinds peer ids
 * can (one try in two).
 *
 * A message's path is linkable when its first hop (the sender's entry relay) and its last hop (the
 * recipient's mailbox relay) are both hostile: together they see who sent to which mailbox.
 * - main: the entry relay uniform among entry-role relays, the mailbox uniform among the others, per path
 *   (main chose the entry relay afresh at every start and mailboxes uniformly: node/mailboxes.ts).
 * - rules, no guards: this branch's choice by /16 (the entry relay `chooseRelay` among entry-role relays,
 *   the mailbox `chooseRelay` excluding its /16, the mixes `chooseMixes`), a fresh entry relay per path.
 * - guards: the same rules, and the entry relay is the user's first guard (`GuardSet`), fixed for the user.
 * Per path: the share of `paths` paths with both ends hostile. Per user: the share of `users` users with
 * at least one linkable message within 100 and within 1,000 messages, each message to one of 10
 * contacts, each contact with 2 mailboxes chosen by its own rules (main: uniform; branch: by /16).
 */
import { randomInt } from 'node:crypto'
import { GuardSet } from '../node/guards.ts'
import { relayRole } from '../node/roles.ts'
import { chooseMixes, chooseRelay, drawByGroup, sameGroup } from '../protocols/onion/paths.ts'
import type { PathRelay } from '../protocols/onion/paths.ts'

export interface PathSecurityOptions {
  paths: number
  users: number
  hostile: number
  log: (line: string) => void
}

export interface PathSecurityRow {
  label: string
  k: number
  /** The adversary's share of distinct /16s, and of entry-role /16s. */
  share: number
  entryShare: number
  main: { bothEnds: number, linked100: number, linked1000: number }
  rules: { bothEnds: number, linked100: number, linked1000: number }
  guards: { bothEnds: number, linked100: number, linked1000: number }
}

const HONEST = 20
const CONTACTS = 10
const MAILBOXES = 2

function relay (name: string, subnet: string, family?: string): PathRelay {
  return { address: new Uint8Array(32), onionKey: new Uint8Array(32), peerId: name, subnets: [subnet], family }
}

/** A name whose role (node/roles.ts) is `role`: an adversary grinding peer ids. */
function nameWithRole (base: string, role: 'entry' | 'exit'): string {
  for (let i = 0; ; i++) if (relayRole(`${base}-${i}`) === role) return `${base}-${i}`
}

function network (hostile: number, k: number, opts: { family?: boolean, grind?: boolean, claim?: number }): { relays: PathRelay[], bad: Set<string> } {
  const relays: PathRelay[] = []
  for (let i = 0; i < HONEST; i++) relays.push(relay(`honest-${i}-${randomInt(1e9)}`, `ip4:10.${i + 1}`))
  const bad = new Set<string>()
  for (let i = 0; i < hostile; i++) {
    const base = `sybil-${i}-${randomInt(1e9)}`
    // `claim`: the relays name addresses in `claim` /16s they do not hold, and the client believes them
    // (no admission: protocols/onion/admission.ts samples a relay under the /16 others reached it at)
    const subnet = opts.claim != null ? `ip4:12.${i % opts.claim}` : `ip4:11.${i % k}`
    const r = relay(opts.grind === true ? nameWithRole(base, 'entry') : base, subnet, opts.family === true ? 'f'.repeat(64) : undefined)
    relays.push(r)
    bad.add(r.peerId)
  }
  return { relays, bad }
}

const isEntry = (r: PathRelay): boolean => relayRole(r.peerId) === 'entry'

/** main: entry relays uniform among entry-role ones; a mailbox uniform among the rest. */
function mainEntry (entries: PathRelay[]): PathRelay {
  return entries[randomInt(entries.length)]
}
function mainMailboxes (relays: PathRelay[]): PathRelay[] {
  const pool = [...relays]
  const out: PathRelay[] = []
  for (let i = 0; i < MAILBOXES; i++) out.push(pool.splice(randomInt(pool.length), 1)[0])
  return out
}

/** this branch: a mailbox by /16, the next in another /16 (node/mailboxes.ts). */
function ruleMailboxes (relays: PathRelay[]): PathRelay[] {
  const out: PathRelay[] = []
  for (let i = 0; i < MAILBOXES; i++) {
    const r = chooseRelay(relays, out)
    if (r != null) out.push(r)
  }
  return out
}
function ruleEntry (entries: PathRelay[]): PathRelay {
  return drawByGroup(entries) as PathRelay
}
/** A full path as the client builds it: the reply block's mixes, then the forward mixes. */
function rulePath (relays: PathRelay[], entry: PathRelay, final: PathRelay): void {
  const reply = chooseMixes(relays, [entry, final])
  chooseMixes(relays, [entry, final], 2, reply.mixes)
}

function perPath (n: number, pick: () => [PathRelay, PathRelay], bad: Set<string>): number {
  let both = 0
  for (let i = 0; i < n; i++) {
    const [first, last] = pick()
    if (bad.has(first.peerId) && bad.has(last.peerId)) both++
  }
  return both / n
}

/** Share of users linked at least once within 100 and 1,000 messages. */
/**
 * The mailbox of a contact a message goes to: main takes any but the entry relay itself; the branch
 * also leaves those in the entry relay's /16 or family last (node/chat-node.ts depositOrder).
 */
function depositTo (boxes: PathRelay[], entry: PathRelay, rules: boolean): PathRelay {
  const fine = boxes.filter(b => b !== entry && !(rules && sameGroup(b, entry)))
  const pool = fine.length > 0 ? fine : boxes
  return pool[randomInt(pool.length)]
}

function perUser (users: number, user: () => { entry: () => PathRelay, contacts: PathRelay[][] }, bad: Set<string>, rules: boolean): { linked100: number, linked1000: number } {
  let l100 = 0
  let l1000 = 0
  for (let u = 0; u < users; u++) {
    const { entry, contacts } = user()
    let first = -1
    for (let m = 0; m < 1000 && first < 0; m++) {
      const boxes = contacts[randomInt(contacts.length)]
      const first_ = entry()
      const box = depositTo(boxes, first_, rules)
      if (bad.has(box.peerId) && bad.has(first_.peerId)) first = m
    }
    if (first >= 0 && first < 100) l100++
    if (first >= 0) l1000++
  }
  return { linked100: l100 / users, linked1000: l1000 / users }
}

export function pathSecurityBench (opts: PathSecurityOptions): PathSecurityRow[] {
  const configs: Array<{ label: string, k: number, family?: boolean, grind?: boolean, claim?: number }> = [
    ...[1, 2, 5, 10, 20].map(k => ({ label: `${opts.hostile} hostile relays in ${k} /16${k > 1 ? 's' : ''}`, k })),
    { label: `${opts.hostile} hostile relays in 20 /16s, one declared family`, k: 20, family: true },
    { label: `${opts.hostile} hostile relays in 1 /16, all of the entry role (ground peer ids)`, k: 1, grind: true },
    { label: `${opts.hostile} hostile relays in 20 /16s, all of the entry role (ground peer ids)`, k: 20, grind: true },
    { label: `${opts.hostile} hostile relays in 1 /16, claiming 20 /16s, believed (no admission; with it, the row of 1 /16)`, k: 1, claim: 20 }
  ]
  const rows: PathSecurityRow[] = []
  for (const c of configs) {
    opts.log(`path security: ${c.label}`)
    const { relays, bad } = network(opts.hostile, c.k, c)
    const entries = relays.filter(isEntry)
    const subnets = new Set(relays.map(r => r.subnets?.[0]))
    const badSubnets = new Set(relays.filter(r => bad.has(r.peerId)).map(r => r.subnets?.[0]))
    const entrySubnets = new Set(entries.map(r => r.subnets?.[0]))
    const badEntrySubnets = [...entrySubnets].filter(s => badSubnets.has(s)).length
    const main = {
      bothEnds: perPath(opts.paths, () => { const e = mainEntry(entries); return [e, depositTo(mainMailboxes(relays), e, false)] }, bad),
      ...perUser(opts.users, () => {
        const contacts = Array.from({ length: CONTACTS }, () => mainMailboxes(relays))
        return { entry: () => mainEntry(entries), contacts }
      }, bad, false)
    }
    const rules = {
      bothEnds: perPath(opts.paths, () => {
        const e = ruleEntry(entries)
        const f = depositTo(ruleMailboxes(relays), e, true)
        rulePath(relays, e, f)
        return [e, f]
      }, bad),
      ...perUser(opts.users, () => {
        const contacts = Array.from({ length: CONTACTS }, () => ruleMailboxes(relays))
        return { entry: () => ruleEntry(entries), contacts }
      }, bad, true)
    }
    // one guard set per simulated user: the entry relay is its first guard for all its messages
    let guardPaths = 0
    let guardBoth = 0
    const usersForPaths = Math.max(1, Math.floor(opts.paths / 10))
    for (let u = 0; u < usersForPaths; u++) {
      const guard = new GuardSet({ now: () => 0 }).order(relays)[0]
      for (let i = 0; i < 10; i++) {
        const f = depositTo(ruleMailboxes(relays), guard, true)
        rulePath(relays, guard, f)
        guardPaths++
        if (bad.has(guard.peerId) && bad.has(f.peerId)) guardBoth++
      }
    }
    const guarded = {
      bothEnds: guardBoth / guardPaths,
      ...perUser(opts.users, () => {
        const guard = new GuardSet({ now: () => 0 }).order(relays)[0]
        const contacts = Array.from({ length: CONTACTS }, () => ruleMailboxes(relays))
        return { entry: () => guard, contacts }
      }, bad, true)
    }
    rows.push({ label: c.label, k: c.k, share: badSubnets.size / subnets.size, entryShare: badEntrySubnets / entrySubnets.size, main, rules, guards: guarded })
  }
  return rows
}
