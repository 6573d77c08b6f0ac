/**
 * Guards and path rules on a live loopback network (test/helpers/chat-network.ts: relays on 127.N.0.1,
 * each in its own /16, roles alternating): the user's entry relay is its first guard, every path it
 * builds obeys the /16 rule on the live descriptors and keeps forward and reply relays apart but for
 * the guard, the guards survive a restart (guards.json), and when the guard in use goes down the user
 * moves to its second guard, keeping the first in its list, marked down, to retry later, and its
 * requests are answered through the second guard.
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
const timing = { requestTimeoutMs: 20_000 }

describe('guards on a live network', { timeout: 300_000 }, () => {
  const net = new ChatNetwork()

  before(async () => {
    await net.bootstrap()
    await net.startRelays(8)
  })
  after(async () => { await net.teardown() })

  const guardsOf = (u: TestUser): ReturnType<typeof parseGuards> => parseGuards(readFileSync(join(u.dataDir, GUARDS_FILE), 'utf8'))

  it('the entry relay is the first guard; paths obey the rules on live descriptors; guards survive a restart; a guard down is replaced by the second', async () => {
    let alice = await net.user('alice', { timing })
    const aliceDir = alice.dataDir
    await net.user('bob', { timing })
    const guards = guardsOf(alice)
    assert.ok(guards.length >= 2, `two guards held (${guards.length})`)
    for (const g of guards) assert.equal(relayRole(g.peerId), 'entry')
    assert.equal(alice.chat.entry.relay?.peerId, guards[0].peerId, 'the entry relay is the first guard')

    // every path alice builds while sending, checked against the live descriptors' /16s
    const sent: SentRequest[] = []
    const send = alice.chat.onion.send.bind(alice.chat.onion)
    alice.chat.onion.send = (...args) => { const s = send(...args); sent.push(s); return s }
    const ids = [alice.chat.send('bob', 'one'), alice.chat.send('bob', 'two')].map(m => m.id)
    await waitFor(() => ids.every(id => eventsOf(alice, 'delivered').some(e => e.id === id)), 'both delivered', 120_000)
    const live = new Map(pathRelays(alice.chat.relayDirectory.list()).map(r => [r.peerId, r]))
    assert.ok(sent.length > 0)
    for (const s of sent) {
      const forward = [guards[0].peerId, ...s.path]
      const groups = forward.flatMap(p => { const r = live.get(p); assert.ok(r != null); return groupsOf(r) })
      assert.equal(new Set(groups).size, groups.length, `one relay per /16 on ${groups.join(' ')}`)
      assert.ok(groups.every(g => g.startsWith('ip4:127.')), 'the /16s are those of the descriptors\' addresses')
      if (s.replyPath != null) {
        assert.equal(s.replyPath.at(-1), guards[0].peerId, 'the reply block ends at the guard')
        assert.deepEqual(s.replyPath.slice(0, -1).filter(p => forward.includes(p)), [])
      }
    }
    assert.equal(eventsOf(alice, 'warning').filter(w => w.message.includes('/16')).length, 0, 'no rule relaxed on 8 relays in 8 /16s')

    // a restart: the same guard
    await net.stopUser(alice)
    alice = await net.user('alice', { dataDir: aliceDir, timing })
    assert.equal(alice.chat.entry.relay?.peerId, guards[0].peerId, 'the guard survived the restart')
    assert.deepEqual(guardsOf(alice).map(g => g.peerId).slice(0, 2), guards.slice(0, 2).map(g => g.peerId))

    // the guard goes down: the link is retried, then the second guard is used; the first stays listed
    const down = net.relays.find(r => r.relay.peerId === guards[0].peerId)
    assert.ok(down != null)
    await down.relay.stop()
    await waitFor(() => alice.chat.entry.relay?.peerId === guards[1].peerId, () => `the second guard in use (now ${alice.chat.entry.relay?.peerId})`, 60_000)
    const after = guardsOf(alice)
    assert.equal(after[0].peerId, guards[0].peerId, 'the down guard is kept')
    assert.ok(after[0].unreachableSince != null, 'and marked down')
    assert.ok(eventsOf(alice, 'warning').some(w => w.message.includes('next guard')))
    // an onion request and its answer through the second guard: a lookup of bob through two exits
    const seen = alice.chat.onion.stats.replies
    assert.equal((await alice.chat.whois('bob')).found, true)
    assert.ok(alice.chat.onion.stats.replies > seen, 'answers came back through reply blocks ending at the second guard')
  })
})
