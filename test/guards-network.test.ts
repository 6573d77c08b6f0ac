/**
 * Guards and path rules on a live loopback network (test/helpers/chat-network.ts: relays on 127.N.0.1,
 * each in its own /16, roles alternating): the user's entry relay is its first guard, every path it
 * builds obeys the /16 rule on the live descriptors and keeps forward and reply relays apart but for
 * the guard, the guards survive a restart (guards.json), and when the guard in use goes down the user
 * moves to another of its guards, keeping the first in its list, marked down, to retry later.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { GUARDS_FILE, parseGuards } from '../node/guards.ts'
import { relayRole } from '../node/roles.ts'
import { groupsOf, pathRelays } from '../protocols/onion/paths.ts'
import type { SentRequest } from '../protocols/onion/client.ts'
import { ChatNetwork, eventsOf } from './helpers/chat-network.ts'
import type { TestUser } from './helpers/chat-network.ts'
import { waitFor } from './helpers/wait.ts'

/** Onion requests wait longer than the harness's 5 s: a loaded machine runs 8 relays in this process. */
const timing = { requestTimeoutMs: 30_000 }

describe('guards on a live network', { timeout: 300_000 }, () => {
  const net = new ChatNetwork()

  before(async () => {
    await net.bootstrap()
    await net.startRelays(8)
  })
  after(async () => { await net.teardown() })

  const guardsOf = (u: TestUser): ReturnType<typeof parseGuards> => parseGuards(readFileSync(join(u.dataDir, GUARDS_FILE), 'utf8'))

  it('the entry relay is the first guard; paths obey the rules on live descriptors; guards survive a restart; a guard down is kept and another guard used', async () => {
    let alice = await net.user('alice', { timing })
    const aliceDir = alice.dataDir
    await net.user('bob', { timing })
    const guards = guardsOf(alice)
    assert.ok(guards.length >= 2, `two guards held (${guards.length})`)
    for (const g of guards) assert.equal(relayRole(g.peerId), 'entry')
    // the first guard, unless a dial to it failed on this loaded machine (then it is marked down)
    const inUse = guards.find(g => g.unreachableSince == null)
    assert.ok(inUse != null)
    assert.equal(alice.chat.entry.relay?.peerId, inUse.peerId, 'the entry relay is the first reachable guard')

    // every path alice builds while sending (a lookup of bob, deposits), checked against the live
    // descriptors' /16s: one relay per /16, or a warning said the rules were relaxed (a loaded machine
    // can delay announcements past the freshness window, leaving too few relays), never silently
    const sent: SentRequest[] = []
    const send = alice.chat.onion.send.bind(alice.chat.onion)
    alice.chat.onion.send = (...args) => { const s = send(...args); sent.push(s); return s }
    alice.chat.send('bob', 'one')
    await waitFor(() => sent.length >= 3, () => `three requests sent (${sent.length})`, 120_000)
    const live = new Map(pathRelays(alice.chat.relayDirectory.list()).map(r => [r.peerId, r]))
    const relaxedWarning = (): boolean => eventsOf(alice, 'warning').some(w => /distinct \/16s|too few relays/.test(w.message))
    for (const s of sent) {
      const forward = [inUse.peerId, ...s.path]
      const groups = forward.flatMap(p => { const r = live.get(p); assert.ok(r != null); return groupsOf(r) })
      assert.ok(groups.every(g => g.startsWith('ip4:127.')), 'the /16s are those of the descriptors\' addresses')
      assert.ok(new Set(groups).size === groups.length || relaxedWarning(), `one relay per /16 on ${groups.join(' ')}, or a warning`)
      if (s.replyPath != null) {
        assert.equal(s.replyPath.at(-1), inUse.peerId, 'the reply block ends at the guard')
        assert.ok(s.replyPath.slice(0, -1).every(p => !forward.includes(p)) || relaxedWarning(), 'no relay of the reply block on the forward path')
      }
    }
    alice.chat.onion.send = send

    // a restart: the same guard
    await net.stopUser(alice)
    alice = await net.user('alice', { dataDir: aliceDir, timing })
    assert.equal(alice.chat.entry.relay?.peerId, inUse.peerId, 'the guard survived the restart')
    assert.deepEqual(guardsOf(alice).map(g => g.peerId).slice(0, 2), guards.slice(0, 2).map(g => g.peerId))

    // the guard goes down: the link is retried, then another guard is used (the second, unless a dial
    // to it failed too); the first stays in the list, marked down, to be retried on schedule
    const down = net.relays.find(r => r.relay.peerId === inUse.peerId)
    assert.ok(down != null)
    await down.relay.stop()
    await waitFor(() => alice.chat.entry.relay != null && alice.chat.entry.relay.peerId !== inUse.peerId,
      () => `another guard in use (now ${alice.chat.entry.relay?.peerId})`, 120_000)
    const after = guardsOf(alice)
    assert.ok(after.some(g => g.peerId === alice.chat.entry.relay?.peerId), 'the new entry relay is one of the guards')
    assert.equal(relayRole(alice.chat.entry.relay?.peerId ?? ''), 'entry')
    const kept = after.find(g => g.peerId === inUse.peerId)
    assert.ok(kept != null, 'the down guard is kept')
    assert.equal(after.indexOf(kept), guards.indexOf(inUse), 'in its place')
    assert.ok(kept.unreachableSince != null, 'and marked down')
    assert.ok(eventsOf(alice, 'warning').some(w => w.message.includes('next guard')))
  })
})
