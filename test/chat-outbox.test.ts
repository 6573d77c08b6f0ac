import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { ChatNetwork, eventsOf } from './helpers/chat-network.ts'
import { waitFor, within } from './helpers/wait.ts'

describe('the outbox: offline recipients, sender restarts, exactly-once delivery', { timeout: 300_000 }, () => {
  const net = new ChatNetwork()

  before(async () => {
    await net.bootstrap()
    for (let i = 0; i < 3; i++) await net.user(`relay${i}`, { relay: true })
  })
  after(async () => { await net.teardown() })

  it('keeps messages for a recipient who is offline across a sender restart, then delivers each once', async () => {
    let alice = await net.user('alice')
    await net.waitForRelays(3)
    const first = alice.chat.send('dora', 'written while dora was away')
    const second = alice.chat.send('dora', 'and a second one')
    await waitFor(() => eventsOf(alice, 'queued').filter(e => e.id === first.id || e.id === second.id).length >= 2, 'both messages to be queued', 30_000)
    assert.deepEqual(alice.chat.store.outbox().map(m => m.id).sort(), [first.id, second.id].sort())

    // the sender goes away and comes back on the same data directory
    const dataDir = alice.dataDir
    await within(alice.chat.stop(), 10_000, 'alice stop')
    net.users.splice(net.users.indexOf(alice), 1)
    alice = await net.user('alice', { dataDir })
    assert.equal(alice.chat.store.outbox().length, 2, 'the outbox survived the restart')

    // the recipient comes online; the retry timer finds her
    const dora = await net.user('dora')
    await net.waitForRelays(3)
    await waitFor(() => eventsOf(alice, 'delivered').length >= 2, () => `both receipts; alice saw ${JSON.stringify(alice.events.filter(e => e.type !== 'status'))}`, 60_000)
    assert.deepEqual(eventsOf(dora, 'message').map(m => m.text).sort(), ['and a second one', 'written while dora was away'])
    assert.equal(alice.chat.store.get(first.id)?.state, 'delivered')
    assert.equal(alice.chat.store.outbox().length, 0)
    // nothing is delivered twice, even if a resend crosses a receipt
    assert.equal(dora.chat.history('alice').length, 2)
  })

  it('a changed key for a pinned nick holds messages until the user accepts it', async () => {
    const erin = await net.user('erin')
    const frankie = await net.user('frankie')
    // erin once knew "frank" by another key (frankie's): that is her pin
    assert.equal(erin.chat.store.pin('frank', frankie.chat.identity.identityKey), 'new')
    const frank = await net.user('frank')
    await net.waitForRelays(3)
    const held = erin.chat.send('frank', 'are you still frank?')
    await waitFor(() => eventsOf(erin, 'queued').some(e => e.id === held.id && /changed/.test(e.reason)), 'the message to be held', 20_000)
    assert.ok(eventsOf(erin, 'key-changed').some(e => e.nick === 'frank' && e.seen === frank.chat.fingerprint))
    assert.equal(eventsOf(frank, 'message').length, 0)
    assert.equal(await erin.chat.whois('frank').then(w => w.pin), 'changed')
    // the user compares fingerprints out of band and accepts the new key: the message goes out
    assert.equal(erin.chat.acceptKey('frank'), true)
    await waitFor(() => eventsOf(erin, 'delivered').some(e => e.id === held.id), 'delivery after accepting', 30_000)
    assert.deepEqual(eventsOf(frank, 'message').map(m => [m.text, m.verified]), [['are you still frank?', true]])
  })
})
