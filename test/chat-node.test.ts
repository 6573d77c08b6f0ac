import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { ChatNetwork, eventsOf } from './helpers/chat-network.ts'
import type { TestUser } from './helpers/chat-network.ts'
import { waitFor } from './helpers/wait.ts'

describe('chat end to end in one process: bootstrap, 3 relays, alice and bob', { timeout: 300_000 }, () => {
  const net = new ChatNetwork()
  let alice: TestUser
  let bob: TestUser

  before(async () => {
    await net.bootstrap()
    for (let i = 0; i < 3; i++) await net.user(`relay${i}`, { relay: true })
    alice = await net.user('alice')
    bob = await net.user('bob')
    await net.waitForRelays(3)
  })
  after(async () => { await net.teardown() })

  it('delivers both ways with receipts, verified, shown once', async () => {
    const a = alice.chat.send('bob', 'hello bob')
    const b = bob.chat.send('alice', 'hi alice, über ✓')
    await waitFor(() => eventsOf(alice, 'delivered').some(e => e.id === a.id) && eventsOf(bob, 'delivered').some(e => e.id === b.id), 'both receipts', 30_000)
    const atBob = eventsOf(bob, 'message')
    assert.equal(atBob.length, 1)
    assert.equal(atBob[0].text, 'hello bob')
    assert.equal(atBob[0].from, 'alice')
    assert.equal(atBob[0].verified, true, atBob[0].reason ?? '')
    assert.equal(atBob[0].fingerprint, alice.chat.fingerprint)
    assert.equal(eventsOf(alice, 'message')[0].text, 'hi alice, über ✓')
    assert.equal(alice.chat.store.get(a.id)?.state, 'delivered')
    assert.deepEqual(bob.chat.history('alice').map(m => m.text), ['hello bob', 'hi alice, über ✓'])
  })

  it('a message to nick#fingerprint with the wrong fingerprint is refused', async () => {
    const { id } = alice.chat.send('bob#aaaa-aaaa-aaaa-aaaa', 'for the real bob only')
    await waitFor(() => eventsOf(alice, 'failed').some(e => e.id === id), 'the failure', 20_000)
    assert.equal(eventsOf(bob, 'message').some(m => m.text === 'for the real bob only'), false)
  })

  it('an impostor with another key claiming a pinned nick is flagged', async () => {
    // mallory publishes "carol" first; bob pins alice's and mallory's keys as they message him
    const mallory = await net.user('mallory')
    await net.waitForRelays(3)
    mallory.chat.send('bob', 'I am mallory')
    await waitFor(() => eventsOf(bob, 'message').some(m => m.from === 'mallory'), 'mallory\'s message', 30_000)
    // a second node, with a new key, claims to be alice inside the message (the nick in the directory is alice's)
    const fake = await net.user('fakealice')
    await net.waitForRelays(3)
    Object.defineProperty(fake.chat, 'nick', { value: 'alice' })
    fake.chat.send('bob', 'this is alice, honest')
    await waitFor(() => eventsOf(bob, 'message').some(m => m.text === 'this is alice, honest'), 'the impostor\'s message', 30_000)
    const flagged = eventsOf(bob, 'message').find(m => m.text === 'this is alice, honest')
    assert.equal(flagged?.verified, false)
    assert.match(flagged?.reason ?? '', /directory's key for alice/)
  })
})
