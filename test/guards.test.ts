/**
 * Guards (node/guards.ts, SPEC.md "Guards"): sampled by /16 among entry-role relays, persisted in the
 * data directory (survive restarts), kept when down and retried on guard-spec's schedule (the next
 * guard is used meanwhile), rotated when their lifetime is over, dropped after 20 days unlisted, at most
 * 8 held. Times are driven by an injected clock; no timer runs.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { ephemeralIdentity } from '../node/identity.ts'
import { GUARD_LIFETIME_JITTER_MS, GUARD_LIFETIME_MS, GUARDS_FILE, GuardSet, MAX_SAMPLED_GUARDS, NUM_PRIMARY_GUARDS, parseGuards, REMOVE_UNLISTED_AFTER_MS, retryIntervalMs } from '../node/guards.ts'
import { relayRole } from '../node/roles.ts'
import { groupsOf } from '../protocols/onion/paths.ts'
import type { PathRelay } from '../protocols/onion/paths.ts'

const DAY = 24 * 3600_000
const dirs: string[] = []
after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }) })
function tempDir (): string { const d = mkdtempSync(join(tmpdir(), 'p2pchat-guards-')); dirs.push(d); return d }

/** `n` relays, each in its own /16 unless `subnet` is given. */
async function relays (n: number, subnet?: (i: number) => string): Promise<PathRelay[]> {
  const out: PathRelay[] = []
  for (let i = 0; i < n; i++) {
    const id = await ephemeralIdentity()
    out.push({ address: id.identityKey, onionKey: id.onionPublic, peerId: id.peerId.toString(), subnets: [subnet?.(i) ?? `ip4:10.${i + 1}`] })
  }
  return out
}

describe('guards', () => {
  it('samples entry-role relays in distinct /16s, and the same guards come back after a restart', async () => {
    const live = await relays(30)
    const dataDir = tempDir()
    const now = 1_000 * DAY
    const first = new GuardSet({ dataDir, now: () => now })
    const order = first.order(live)
    assert.equal(order.length, NUM_PRIMARY_GUARDS)
    for (const g of order) assert.equal(relayRole(g.peerId), 'entry')
    assert.notDeepEqual(groupsOf(order[0]), groupsOf(order[1]))
    const held = first.guards
    assert.ok(held.every(g => g.chosenAt === now && g.expiresAt >= now + GUARD_LIFETIME_MS && g.expiresAt < now + GUARD_LIFETIME_MS + GUARD_LIFETIME_JITTER_MS))
    first.succeeded(order[0].peerId)
    assert.equal(statSync(join(dataDir, GUARDS_FILE)).mode & 0o777, 0o600)
    // a restart: a new GuardSet on the same directory, a relay list in another order
    const again = new GuardSet({ dataDir, now: () => now + DAY })
    assert.deepEqual(again.order([...live].reverse()).map(r => r.peerId), order.map(r => r.peerId))
    assert.equal(again.guards[0].confirmedAt, now)
    for (let i = 0; i < 100; i++) assert.equal(again.order(live)[0].peerId, order[0].peerId, 'the same guard every time')
  })

  it('samples the user\'s mailbox relays only when nothing else is left, and never two in one /16 while others exist', async () => {
    const live = await relays(40, i => `ip4:10.${i % 4}`)
    const entries = live.filter(r => relayRole(r.peerId) === 'entry')
    const g = new GuardSet({ now: () => 0 })
    const avoid = entries.slice(0, 3).map(r => r.peerId)
    const order = g.order(live, avoid)
    assert.ok(order.every(r => !avoid.includes(r.peerId)))
    assert.notEqual(order[0].subnets?.[0], order[1].subnets?.[0])
  })

  it('a guard that cannot be reached is kept and retried on schedule; the next guard is used meanwhile', async () => {
    const live = await relays(30)
    let now = 1_000 * DAY
    const g = new GuardSet({ now: () => now })
    const [a, b] = g.order(live)
    g.failed(a.peerId)
    const order = g.order(live)
    assert.equal(order[0].peerId, b.peerId, 'the second primary guard is used')
    assert.equal(order.length, NUM_PRIMARY_GUARDS, 'a third guard was sampled so two are usable')
    assert.ok(g.has(a.peerId), 'the down guard is not removed')
    assert.ok(!order.some(r => r.peerId === a.peerId))
    now += retryIntervalMs(0, true) - 1
    assert.ok(!g.order(live).some(r => r.peerId === a.peerId), 'not yet due')
    now += 1
    assert.equal(g.order(live)[0].peerId, a.peerId, 'due for a retry after 10 minutes: first again')
    g.succeeded(a.peerId)
    assert.equal(g.guards.find(x => x.peerId === a.peerId)?.unreachableSince, undefined)
    assert.equal(g.guards.length, 3)
  })

  it('a primary guard ranked before the one in use is better once it is due: not before, not a mailbox relay, not one heard dead', async () => {
    const live = await relays(30)
    let now = 1_000 * DAY
    const g = new GuardSet({ now: () => now })
    const [a, b] = g.order(live)
    assert.equal(g.better(a.peerId, live), undefined, 'on the first primary guard: nothing better')
    g.failed(a.peerId)
    const third = g.order(live).find(r => r.peerId !== b.peerId) as PathRelay // sampled so two are usable
    assert.equal(g.better(b.peerId, live), undefined, 'A down and just tried: not yet')
    now += retryIntervalMs(0, true)
    assert.equal(g.better(b.peerId, live)?.peerId, a.peerId, 'A due for a retry: better than B')
    assert.equal(g.better(third.peerId, live)?.peerId, a.peerId, 'and than a guard that is not primary')
    assert.equal(g.better(b.peerId, live, [a.peerId]), undefined, 'A holds a mailbox: not better than B, which does not')
    assert.equal(g.better(b.peerId, live, [a.peerId, b.peerId])?.peerId, a.peerId, 'unless B holds one too')
    assert.equal(g.better(b.peerId, live, [], live.filter(r => r !== a)), undefined, 'A not heard alive: not dialled')
    assert.equal(g.better('not-a-guard', live)?.peerId, a.peerId, 'a fallback relay ranks after every guard')
    g.failed(a.peerId) // the retry failed: the schedule counts from it
    assert.equal(g.better(b.peerId, live), undefined)
    now += retryIntervalMs(now - (g.guards[0].unreachableSince as number), true)
    g.succeeded(a.peerId)
    assert.equal(g.better(b.peerId, live)?.peerId, a.peerId, 'reachable again: better than B')
  })

  it('guard-spec\'s retry schedule', () => {
    assert.equal(retryIntervalMs(0, true), 10 * 60_000)
    assert.equal(retryIntervalMs(7 * 3600_000, true), 90 * 60_000)
    assert.equal(retryIntervalMs(5 * DAY, true), 4 * 3600_000)
    assert.equal(retryIntervalMs(8 * DAY, true), 9 * 3600_000)
    assert.equal(retryIntervalMs(0, false), 3600_000)
    assert.equal(retryIntervalMs(8 * DAY, false), 36 * 3600_000)
  })

  it('at most 8 guards are ever held: when all are down, they are tried again rather than new ones', async () => {
    const live = await relays(60)
    const g = new GuardSet({ now: () => 5 })
    for (let i = 0; i < 20; i++) for (const r of g.order(live)) g.failed(r.peerId)
    assert.equal(g.guards.length, MAX_SAMPLED_GUARDS)
    const order = g.order(live)
    assert.equal(order.length, MAX_SAMPLED_GUARDS, 'every guard held, in order')
    assert.deepEqual(order.map(r => r.peerId), g.guards.map(x => x.peerId))
  })

  it('rotates after its lifetime; drops a guard unlisted for 20 days, keeps one unlisted for less', async () => {
    const live = await relays(30)
    let now = 0
    const g = new GuardSet({ now: () => now })
    const [a, b] = g.order(live)
    const withoutA = live.filter(r => r !== a)
    now = 19 * DAY
    assert.ok(!g.order(withoutA).some(r => r.peerId === a.peerId))
    assert.ok(g.has(a.peerId), 'unlisted for 19 days: kept')
    assert.equal(g.order(live)[0].peerId, a.peerId, 'listed again: first again')
    g.order(withoutA)
    now = 40 * DAY
    g.order(withoutA)
    assert.ok(!g.has(a.peerId), 'unlisted for over 20 days: dropped')
    assert.ok(40 * DAY - 19 * DAY > REMOVE_UNLISTED_AFTER_MS)
    now = GUARD_LIFETIME_MS + GUARD_LIFETIME_JITTER_MS
    const rotated = g.order(live)
    // b's lifetime is over: its entry is retired. The same relay may be drawn again as a new guard (a
    // fresh sample of the live relays), but then with a new lifetime from now, never the old entry.
    const again = g.guards.find(x => x.peerId === b.peerId)
    assert.ok(again == null || again.chosenAt === now, 'lifetime over: rotated')
    assert.ok(rotated.every(r => r.peerId !== b.peerId || again?.chosenAt === now))
    assert.equal(rotated.length, NUM_PRIMARY_GUARDS)
  })

  it('a malformed guard file is set aside with a warning, never a crash', async () => {
    const dataDir = tempDir()
    writeFileSync(join(dataDir, GUARDS_FILE), '{"v":1,"guards":[{"peerId":"x"}]}', { mode: 0o600 })
    const warnings: string[] = []
    const g = new GuardSet({ dataDir, onWarning: (m) => warnings.push(m) })
    assert.equal(g.order(await relays(20)).length, NUM_PRIMARY_GUARDS)
    assert.equal(warnings.length, 1)
    assert.match(warnings[0], /could not be read/)
    assert.ok(existsSync(join(dataDir, GUARDS_FILE + '.bad')))
    assert.equal(parseGuards(readFileSync(join(dataDir, GUARDS_FILE), 'utf8')).length, g.guards.length)
    for (const bad of ['', 'null', '[]', '{"v":2,"guards":[]}', '{"v":1,"guards":[{"peerId":"12D3KooWAbcdefghijkmnopqrstuvwxyz","chosenAt":-1,"expiresAt":5}]}']) {
      assert.throws(() => parseGuards(bad), { name: 'GuardFileError' })
    }
  })

  it('the file is written once per connection at most (its outcome), none for a link reopened to a reachable guard; 0600, no temporary file left', async () => {
    const live = await relays(20)
    const dataDir = tempDir()
    let now = 1_000 * DAY
    const g = new GuardSet({ dataDir, now: () => now })
    const [a, b] = g.order(live)
    const sampled = g.stats.saves
    assert.equal(sampled, 1, 'the guards sampled: one write')
    g.succeeded(a.peerId)
    assert.equal(g.stats.saves, sampled + 1, 'first link up: confirmed, one write')
    for (let i = 0; i < 5; i++) { now += 1_000; g.order(live); g.succeeded(a.peerId) }
    assert.equal(g.stats.saves, sampled + 1, 'links reopened to a reachable guard: nothing written')
    g.failed(b.peerId)
    assert.equal(g.stats.saves, sampled + 2, 'a failed connection: one write')
    now += retryIntervalMs(0, true)
    g.succeeded(b.peerId)
    assert.equal(g.stats.saves, sampled + 3, 'back from down: one write')
    assert.equal(statSync(join(dataDir, GUARDS_FILE)).mode & 0o777, 0o600)
    assert.deepEqual(readdirSync(dataDir), [GUARDS_FILE], 'written by a temporary file and a rename: nothing else left')
    const saved = parseGuards(readFileSync(join(dataDir, GUARDS_FILE), 'utf8'))
    assert.equal(saved.find(x => x.peerId === b.peerId)?.unreachableSince, undefined)
    assert.ok(saved.every(x => x.confirmedAt != null))
  })

  it('a relay found dead is never sampled; with every guard down and no live entry-role relay left, the down guards are all there is', async () => {
    const live = await relays(30)
    const entries = live.filter(r => relayRole(r.peerId) === 'entry')
    const exits = live.filter(r => relayRole(r.peerId) === 'exit')
    assert.ok(entries.length >= 2 && exits.length >= 2)
    const g = new GuardSet({ now: () => 7 })
    // the network of the relay-loss test: one relay of the entry role, the others exits
    const [only] = g.order([entries[0], ...exits])
    assert.equal(only.peerId, entries[0].peerId)
    assert.equal(g.guards.length, 1)
    g.failed(only.peerId)
    // it died: relay health leaves it out of `alive`; another entry-role relay listed but dead is not sampled either
    const order = g.order([entries[0], entries[1], ...exits], [], exits)
    assert.deepEqual(order.map(r => r.peerId), [entries[0].peerId], 'only the down guard: tried again, nothing dead sampled')
    assert.equal(g.guards.length, 1)
    // the other entry-role relay counts alive: sampled as the next guard, tried first (the first is down)
    assert.equal(g.order([entries[0], entries[1], ...exits], [], [entries[1], ...exits])[0].peerId, entries[1].peerId)
  })
})
