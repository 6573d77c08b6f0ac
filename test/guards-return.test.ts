/**
 * Back to a primary guard that was down (guard-spec "Selecting guards for circuits": the first primary
 * guard that is reachable is used; node/guards.ts `better`, node/entry.ts `backToGuard`), with an
 * injected clock for guard-spec's retry schedule and the guard list persisted across a user restart.
 *
 * Units on real libp2p nodes on 127.0.0.1 (two relays serving `/onion-chat/2.0/client`, one user
 * listening nowhere): the user's guards are A then B (guards.json). A stops: the link moves to B and
 * A is kept, marked down. The user restarts: the file says A is down and tried a moment ago, so the
 * user links to B without dialling A. A still down when its retry falls due: one dial, the link stays
 * on B, A's next try waits for the schedule again. A back: not dialled before its next retry is due
 * (the check runs many times meanwhile), then the link moves to A, B's connection is hung up, A is
 * reachable again in guards.json, and no further move is tried. Main left the link on B for good.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { createP2PNode } from '../node/create.ts'
import type { P2PNode } from '../node/create.ts'
import { EntryRelay } from '../node/entry.ts'
import { GUARDS_FILE, GuardSet, parseGuards, retryIntervalMs } from '../node/guards.ts'
import { ClientLinkServer } from '../protocols/onion/client-link.ts'
import type { PathRelay } from '../protocols/onion/paths.ts'
import { LOOPBACK_ALLOW } from './helpers/network.ts'
import { waitFor, within } from './helpers/wait.ts'

const DAY = 24 * 3600_000

interface Relay { key: PrivateKey, peerId: string, node?: P2PNode, server?: ClientLinkServer }

async function startRelay (r: Relay): Promise<void> {
  r.node = await createP2PNode({ privateKey: r.key, listen: ['/ip4/127.0.0.1/tcp/0'], allow: LOOPBACK_ALLOW })
  r.server = new ClientLinkServer(r.node, { onSubmit: () => {} })
  await r.server.start()
}

async function stopRelay (r: Relay): Promise<void> {
  await r.server?.stop()
  await within(r.node?.stop() ?? Promise.resolve(), 10_000, 'a relay stops')
  r.node = undefined
  r.server = undefined
}

describe('back to a primary guard that was down', { timeout: 240_000 }, () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'p2pchat-guards-return-'))
  const relays: Relay[] = []
  let user: P2PNode
  let t = 1_000 * DAY
  const now = (): number => t
  const entries: EntryRelay[] = []

  before(async () => {
    for (let i = 0; i < 2; i++) {
      const key = await generateKeyPair('Ed25519')
      const r: Relay = { key, peerId: peerIdFromPrivateKey(key).toString() }
      await startRelay(r)
      relays.push(r)
    }
    user = await createP2PNode({ privateKey: await generateKeyPair('Ed25519'), listen: [], allow: LOOPBACK_ALLOW })
    // A first, B second: both primary guards, chosen a day ago
    const guards = relays.map(r => ({ peerId: r.peerId, chosenAt: t - DAY, expiresAt: t + 40 * DAY }))
    writeFileSync(join(dataDir, GUARDS_FILE), JSON.stringify({ v: 1, guards }) + '\n', { mode: 0o600 })
  })
  after(async () => {
    for (const e of entries) await e.stop()
    for (const r of relays) await stopRelay(r).catch(() => {})
    await within(Promise.resolve(user.stop()), 10_000, 'the user stops').catch(() => {})
    rmSync(dataDir, { recursive: true, force: true })
  })

  const pathRelay = (r: Relay, i: number): PathRelay => ({ address: new Uint8Array(32), onionKey: new Uint8Array(32), peerId: r.peerId, subnets: [`ip4:10.${i + 1}`] })
  const listed = (): PathRelay[] => relays.map(pathRelay)
  const guardsFile = (): ReturnType<typeof parseGuards> => parseGuards(readFileSync(join(dataDir, GUARDS_FILE), 'utf8'))
  const connections = (r: Relay): number => user.getConnections(peerIdFromPrivateKey(r.key)).length

  /** A user's entry link as chat-node builds it, on a guard list read from the data directory. */
  function entryRelay (): { entry: EntryRelay, guards: GuardSet, checks: () => number } {
    const guards = new GuardSet({ dataDir, now })
    let checks = 0
    const better = guards.better.bind(guards)
    guards.better = (...args) => { checks++; return better(...args) }
    const entry = new EntryRelay({
      node: user,
      relays: listed,
      allRelays: listed,
      addrsOf: id => relays.find(r => r.peerId === id)?.node?.getMultiaddrs().map(String) ?? [],
      onDeliver: () => {},
      guards,
      retries: 1,
      retryDelayMs: 20,
      guardCheckMs: 25,
      now
    })
    entries.push(entry)
    return { entry, guards, checks: () => checks }
  }

  it('a restart keeps the guard down on schedule; once it answers a due retry the link moves back to it', async () => {
    const [a, b] = relays
    let { entry, checks } = entryRelay()
    assert.equal((await entry.connect()).peerId, a.peerId, 'the first primary guard')

    // A stops: the link cannot be reopened, A is marked down and kept, the link goes to B
    await stopRelay(a)
    await waitFor(() => entry.relay?.peerId === b.peerId && entry.link != null, () => `on B (now ${entry.relay?.peerId ?? 'none'})`, 60_000)
    const downSince = guardsFile()[0].unreachableSince
    assert.equal(guardsFile()[0].peerId, a.peerId)
    assert.equal(downSince, t, 'A kept first in the list, marked down')

    // the user restarts: A is down in the file and was tried just now, so B is used without a dial to A
    await entry.stop()
    ;({ entry, checks } = entryRelay())
    t += 60_000
    assert.equal((await entry.connect()).peerId, b.peerId, 'after the restart: B, not the guard down')
    assert.equal(entry.stats.guardRetries, 0)

    // A's retry falls due while A is still down: one dial, which fails; the link stays on B
    t += retryIntervalMs(t - (downSince as number), true)
    await waitFor(() => entry.stats.guardRetries >= 1, 'the retry of A, due', 30_000)
    await waitFor(() => guardsFile()[0].lastTriedAt === t, 'the failed retry recorded', 30_000)
    assert.equal(entry.relay?.peerId, b.peerId)
    assert.equal(entry.stats.guardSwitches, 0)
    assert.equal(guardsFile()[0].unreachableSince, downSince, 'still down since the first failure')

    // A back (same key, new port): not dialled before its next retry, however often the check runs
    await startRelay(a)
    const seen = checks()
    await waitFor(() => checks() >= seen + 20, 'the check running while A is not due', 30_000)
    assert.equal(entry.stats.guardRetries, 1, 'no dial to A before its retry is due')
    assert.equal(entry.relay?.peerId, b.peerId)

    // the retry falls due: the link moves to A, B's connection is hung up, A reachable in the file
    t += retryIntervalMs(t - (downSince as number), true)
    await waitFor(() => entry.relay?.peerId === a.peerId && entry.link != null, () => `back on A (now ${entry.relay?.peerId ?? 'none'}, ${entry.stats.guardRetries} tries)`, 60_000)
    assert.equal(entry.stats.guardSwitches, 1)
    assert.equal(entry.stats.guardRetries, 2)
    assert.equal(guardsFile()[0].unreachableSince, undefined, 'A reachable again in guards.json')
    assert.deepEqual(guardsFile().map(g => g.peerId), [a.peerId, b.peerId], 'the list and its order kept')
    await waitFor(() => connections(b) === 0, 'B\'s connection hung up', 30_000)

    // on the first primary guard: the check stops (a timer of the check's period ticks 10 times while
    // it would have run as often), nothing more is dialled
    const stoppedAt = checks()
    t += DAY
    let ticks = 0
    const probe = setInterval(() => { ticks++ }, 25)
    try {
      await waitFor(() => ticks >= 10, 'ten periods of the check', 30_000)
    } finally {
      clearInterval(probe)
    }
    assert.ok(checks() <= stoppedAt + 1, `the check stopped once on the first primary guard (${checks() - stoppedAt} more)`)
    assert.equal(entry.stats.guardRetries, 2)
    assert.equal(entry.relay?.peerId, a.peerId)
  })
})
