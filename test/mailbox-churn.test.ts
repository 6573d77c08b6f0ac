/**
 * Issue 15, the churn lab's lost messages, on the in-process network: a user away while one of her
 * mailbox relays is killed, starting again on her data directory while it is still down, then the relay
 * restarted on its own (same keys, same mailbox.db, no reply blocks). The sender keeps her earlier record
 * (his record cache) and goes on depositing into both mailboxes. Every message answered stored is shown
 * to her exactly once. Fails on main: the mailbox whose relay was dead at her start was never fetched
 * again in that run (test/mailbox-client.test.ts pins this and the stale-REGISTER cause on units).
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { ChatNode } from '../node/chat-node.ts'
import { peerIdOfTransportKey } from '../node/relay-node.ts'
import { ChatNetwork, eventsOf, TEST_CHAT_TIMING } from './helpers/chat-network.ts'
import type { TestRelay } from './helpers/chat-network.ts'
import { LOOPBACK_ALLOW } from './helpers/network.ts'
import { waitFor, within } from './helpers/wait.ts'

const MESSAGES = 6

describe('a user restarted while a mailbox relay of hers is down', { timeout: 300_000 }, () => {
  const net = new ChatNetwork()

  before(async () => {
    await net.bootstrap()
    await net.startRelays(5)
  })
  after(async () => { await net.teardown() })

  it('every message stored in either mailbox, before and after both restarts, is shown once', async () => {
    let alice = await net.user('alice')
    const aliceDir = alice.dataDir
    const bob = await net.user('bob')
    const record = await bob.chat.directory.lookup('alice')
    assert.equal(record.mailboxes.length, 2)
    const boxRelay = net.relays.find(r => r.relay.peerId === peerIdOfTransportKey(record.mailboxes[0].relay))
    assert.ok(boxRelay != null)

    // she goes away; bob writes; one of her mailbox relays is killed
    await net.stopUser(alice)
    const ids: string[] = []
    // stored (✓), or delivered (✓✓) when her receipt came first: once she is back, her receipt may
    // overtake a STORED answer that is slow on a loaded machine (a delivered message is not stored again)
    const settled = (id: string): boolean => eventsOf(bob, 'stored').some(e => e.id === id) || eventsOf(bob, 'delivered').some(e => e.id === id)
    const sendAll = async (from: number): Promise<void> => {
      const batch = Array.from({ length: MESSAGES }, (_, i) => bob.chat.send('alice', `churn ${from + i}`).id)
      ids.push(...batch)
      await waitFor(() => batch.every(settled),
        () => `bob's ${MESSAGES} stored or delivered (got ${batch.filter(settled).length})`, 60_000)
    }
    await sendAll(0)
    await within(boxRelay.relay.stop(), 10_000, 'relay stop')
    net.relays.splice(net.relays.indexOf(boxRelay), 1)

    // she starts again while it is down, and finds it dead before registering her mailboxes (as when a
    // dial to it fails, or its gossip falls silent on a loaded machine): the first relay list carries
    // its descriptor still, so without this her client would try it and retry it later anyway
    const chat = await ChatNode.create({ dataDir: aliceDir, nick: 'alice', bootstrap: net.boot?.addrs() ?? [], allow: LOOPBACK_ALLOW, acceptAnyone: true, privacy: 'fast', timing: TEST_CHAT_TIMING })
    alice = { chat, events: [], dataDir: aliceDir }
    const events = alice.events
    chat.on(e => {
      events.push(e)
      if (e.type === 'status' && e.stage === 'entry') chat.health.dialFailed(boxRelay.relay.peerId)
    })
    net.users.push(alice)
    await chat.start()
    assert.ok(!chat.mailboxes.addresses().some(m => Buffer.compare(m.mailboxId, record.mailboxes[0].id) === 0), 'the mailbox on the dead relay waits')
    // replaced (two others are in use): no longer named in her record, but drained once its relay is back
    assert.ok(chat.mailboxes.draining().some(m => Buffer.compare(m.mailboxId, record.mailboxes[0].id) === 0), 'the mailbox on the dead relay is draining')
    assert.equal(chat.mailboxes.addresses().length, 2)
    // it comes back on its data directory
    const back: TestRelay = await net.relay({ dataDir: boxRelay.dataDir })
    assert.equal(back.relay.peerId, boxRelay.relay.peerId)
    // bob, holding her earlier record, writes again (into either mailbox)
    await sendAll(MESSAGES)

    await waitFor(() => ids.every(id => eventsOf(alice, 'message').some(m => m.id === id)),
      () => `all ${ids.length} shown (got ${ids.filter(id => eventsOf(alice, 'message').some(m => m.id === id)).length}; mailboxes in use ${alice.chat.mailboxes.addresses().length})`, 120_000)
    for (const id of ids) assert.equal(eventsOf(alice, 'message').filter(m => m.id === id).length, 1, 'shown once')
  })
})
