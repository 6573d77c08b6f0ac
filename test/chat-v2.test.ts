/**
 * Protocol v2 end to end in one process: bootstrap, relays, two users that are clients only. A message
 * goes into a mailbox of the recipient (stored, one tick), is pushed through a stocked reply block, and
 * the signed receipt comes back through a mailbox of the sender (delivered, two ticks).
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { ChatNetwork, eventsOf } from './helpers/chat-network.ts'
import type { TestUser } from './helpers/chat-network.ts'
import { waitFor } from './helpers/wait.ts'

describe('chat over protocol v2', () => {
  const net = new ChatNetwork()
  let alice: TestUser
  let bob: TestUser

  before(async () => {
    await net.bootstrap()
    await net.startRelays(5)
    alice = await net.user('alice')
    bob = await net.user('bob')
  })
  after(async () => { await net.teardown() })

  it('users listen nowhere and keep one connection, to their entry relay', () => {
    for (const u of [alice, bob]) {
      assert.equal(u.chat.addrs().length, 0)
      const peers = new Set(u.chat.node.getConnections().map(c => c.remotePeer.toString()))
      assert.deepEqual([...peers], [u.chat.entry.relay?.peerId])
    }
  })

  it('a message is stored, pushed, shown verified and receipted', async () => {
    const { id } = alice.chat.send('bob', 'hello bob')
    await waitFor(() => eventsOf(alice, 'stored').some(e => e.id === id), () => `stored (events: ${alice.events.map(e => e.type).join(',')})`, 20_000)
    await waitFor(() => eventsOf(bob, 'message').some(e => e.id === id), 'bob to get it', 20_000)
    const m = eventsOf(bob, 'message').find(e => e.id === id)
    assert.equal(m?.text, 'hello bob')
    assert.equal(m?.from, 'alice')
    assert.equal(m?.verified, true, m?.reason ?? '')
    await waitFor(() => eventsOf(alice, 'delivered').some(e => e.id === id), 'delivered', 20_000)
  })

  it('and back', async () => {
    const { id } = bob.chat.send('alice', 'hi alice')
    await waitFor(() => eventsOf(alice, 'message').some(e => e.id === id), 'alice to get it', 20_000)
    assert.equal(eventsOf(alice, 'message').find(e => e.id === id)?.verified, true)
    await waitFor(() => eventsOf(bob, 'delivered').some(e => e.id === id), 'delivered', 20_000)
  })
})
