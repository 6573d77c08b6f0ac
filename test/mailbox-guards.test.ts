/**
 * A network with no relay of the exit role (node/roles.ts): mailboxes then go on relays of the entry
 * role, with a warning (node/mailboxes.ts `pickRelay`), and never on one of the user's guards while
 * another relay is left. The lab's churn (2026-12-03) lost 8 to 10 messages a run when one did: alice's
 * second mailbox sat on her second guard; her first guard went down, her link moved to the second, and
 * a mailbox on the entry relay is neither registered nor fetched (it would show that relay both ends),
 * so every message bob deposited there waited out the run, answered "stored".
 *
 * On the in-process network (test/helpers/chat-network.ts): four relays of the entry role on their own
 * /16s. Each user holds two guards (node/guards.ts) and two mailboxes: with the rule, the mailboxes are
 * exactly the two relays that are not its guards. Without it (any relay but the entry relay) a user's
 * mailboxes miss its second guard one time in three, so three users pass by chance once in 27 runs.
 * Then the lab's sequence: alice's first guard stopped while she is away, she starts again on her
 * second guard, and every message bob sends her is shown.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { peerIdFromString } from '@libp2p/peer-id'
import { GUARDS_FILE, parseGuards } from '../node/guards.ts'
import { relayRole } from '../node/roles.ts'
import { transportKeyOf } from '../protocols/onion/client-link.ts'
import { ChatNetwork, eventsOf, writeTransportKeyWithRole } from './helpers/chat-network.ts'
import type { TestUser } from './helpers/chat-network.ts'
import { waitFor } from './helpers/wait.ts'

/** Onion requests wait longer than the harness's 5 s: a loaded machine runs the relays in this process. */
const timing = { requestTimeoutMs: 30_000 }

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

describe('mailboxes on a network of entry-role relays', { timeout: 300_000 }, () => {
  const net = new ChatNetwork()

  before(async () => {
    await net.bootstrap()
    for (let i = 0; i < 4; i++) {
      const dataDir = join(net.root, `entry-${i}`)
      await writeTransportKeyWithRole(dataDir, 'entry')
      await net.relay({ dataDir })
    }
    await net.waitForRelayGossip()
    assert.ok(net.relays.every(r => relayRole(r.relay.peerId) === 'entry'))
  })
  after(async () => { await net.teardown() })

  const guardsOf = (u: TestUser): string[] => parseGuards(readFileSync(join(u.dataDir, GUARDS_FILE), 'utf8')).map(g => g.peerId)
  /** The peer ids of the relays holding `u`'s mailboxes in use, from the relay directory. */
  const mailboxRelays = (u: TestUser): string[] => {
    const byAddress = new Map(net.relays.map(r => [hex(transportKeyOf(peerIdFromString(r.relay.peerId)) ?? new Uint8Array()), r.relay.peerId]))
    return u.chat.mailboxes.addresses().map(m => byAddress.get(hex(m.relay)) ?? '?')
  }

  it('no mailbox on a guard: each user\'s two mailboxes are the two relays that are not its guards; a restart on the second guard fetches them', async () => {
    const users: TestUser[] = []
    for (const nick of ['alice', 'bob', 'carol']) users.push(await net.user(nick, { timing }))
    for (const u of users) {
      const guards = guardsOf(u)
      assert.equal(guards.length, 2, 'two guards held')
      const boxes = mailboxRelays(u)
      assert.equal(boxes.length, 2)
      const others = net.relays.map(r => r.relay.peerId).filter(p => !guards.includes(p))
      assert.deepEqual([...boxes].sort(), [...others].sort(), 'the mailboxes are on the two relays that are not guards')
      assert.ok(eventsOf(u, 'warning').some(w => /too few exit relays/.test(w.message)), 'the fallback to entry-role relays is said')
      assert.ok(!eventsOf(u, 'warning').some(w => /goes on one of your guards/.test(w.message)))
    }

    // the lab's sequence: alice away, her first guard (her entry relay) stopped; she starts again on the
    // second guard, with both her mailboxes on other relays, so both are registered and fetched
    let alice = users[0]
    const bob = users[1]
    const aliceDir = alice.dataDir
    // contacts first, as in the lab: bob has alice's record, so what he sends later needs no lookup
    bob.chat.send('alice', 'hello')
    await waitFor(() => eventsOf(alice, 'message').some(m => m.text === 'hello'), () => 'hello shown to alice', 120_000)
    const [first, second] = guardsOf(alice)
    assert.equal(alice.chat.entry.relay?.peerId, first)
    await net.stopUser(alice)
    const firstRelay = net.relays.find(r => r.relay.peerId === first)
    assert.ok(firstRelay != null)
    await firstRelay.relay.stop()
    net.relays.splice(net.relays.indexOf(firstRelay), 1)
    const texts = ['while away 1', 'while away 2']
    for (const t of texts) bob.chat.send('alice', t)
    await waitFor(() => eventsOf(bob, 'stored').length >= texts.length, () => `bob's ${texts.length} messages stored (${eventsOf(bob, 'stored').length}; bob's last events: ${JSON.stringify(bob.events.slice(-6))})`, 120_000)
    alice = await net.user('alice', { dataDir: aliceDir, timing })
    assert.equal(alice.chat.entry.relay?.peerId, second, 'the link is on the second guard')
    assert.equal(alice.chat.mailboxes.addresses().length, 2, 'both mailboxes registered: neither is on the entry relay')
    texts.push('after the restart')
    bob.chat.send('alice', 'after the restart')
    await waitFor(() => texts.every(t => eventsOf(alice, 'message').some(m => m.text === t)),
      () => `all ${texts.length} shown to alice (got ${eventsOf(alice, 'message').map(m => m.text).join(', ')})`, 120_000)
  })
})
