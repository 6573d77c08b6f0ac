/**
 * Mailbox limits on a real protocol v2 network (issue 10): relays with a small per-mailbox cap, users
 * that deposit through the mixnet. A flood into one of a recipient's mailboxes stops at the cap and is
 * counted by the relay; senders then store the recipient's messages in its other mailbox and they are
 * delivered; another user's mailbox on the flooded relay still takes and delivers items.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { createMessage, sealMessage } from '../protocols/chat/index.ts'
import { onionKeyFor } from '../protocols/onion/relay-directory.ts'
import { peerIdOfTransportKey } from '../node/relay-node.ts'
import type { RelayNode } from '../node/relay-node.ts'
import { ChatNetwork, eventsOf } from './helpers/chat-network.ts'
import { waitFor } from './helpers/wait.ts'

/** Items a mailbox takes on these relays: small, so a flood of three times as many is quick. */
const CAP = 6
/** Messages the honest sender writes to the flooded recipient: fewer than CAP, so the other mailbox (capped too) takes them all. */
const MESSAGES = 5

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.compare(a, b) === 0
const depositsAt = (r: RelayNode, outcome: string): number => r.mailboxes.stats().requests.deposit[outcome] ?? 0

describe('mailbox limits on a v2 network', { timeout: 300_000 }, () => {
  const net = new ChatNetwork()

  before(async () => {
    await net.bootstrap()
    await net.startRelays(5, { mailbox: { maxItemsPerMailbox: CAP } })
  })
  after(async () => { await net.teardown() })

  it('a flood into one mailbox is capped and counted; senders then use the other mailbox and messages are delivered; other mailboxes on that relay still work', async (t) => {
    let rosa = await net.user('rosa')
    const rosaDir = rosa.dataDir
    // carol keeps a mailbox on every relay but her entry: one of them shares a relay with one of rosa's two
    const carol = await net.user('carol', { mailboxes: 4 })
    const bob = await net.user('bob')
    const mal = await net.user('mal')

    const rosaRecord = await bob.chat.directory.lookup('rosa')
    const carolRecord = await bob.chat.directory.lookup('carol')
    assert.equal(rosaRecord.mailboxes.length, 2)
    assert.equal(carolRecord.mailboxes.length, 4)
    const relayOf = (key: Uint8Array): RelayNode => {
      const found = net.relays.find(r => r.relay.peerId === peerIdOfTransportKey(key))
      assert.ok(found, 'a mailbox relay of the record is one of the network\'s relays')
      return found.relay
    }
    const flooded = rosaRecord.mailboxes.find(m => carolRecord.mailboxes.some(c => sameBytes(c.relay, m.relay)))
    assert.ok(flooded, 'one of rosa\'s mailboxes shares a relay with one of carol\'s')
    const other = rosaRecord.mailboxes.find(m => m !== flooded)
    assert.ok(other)
    const carolBox = carolRecord.mailboxes.find(c => sameBytes(c.relay, flooded.relay))
    assert.ok(carolBox)
    const floodedRelay = relayOf(flooded.relay)
    const otherRelay = relayOf(other.relay)
    assert.notEqual(floodedRelay, otherRelay)

    // rosa goes away: nothing drains her mailboxes while mal floods one of them
    await net.stopUser(rosa)
    const fullBefore = depositsAt(floodedRelay, 'mailbox-full')
    const storedBefore = depositsAt(floodedRelay, 'stored')
    const answers: string[] = []
    for (let i = 0; i < 3 * CAP; i++) {
      answers.push(await mal.chat.mailboxes.deposit({ relay: flooded.relay, mailboxId: flooded.id }, new Uint8Array(randomBytes(1000))))
    }
    assert.deepEqual(answers, [...Array(CAP).fill('stored'), ...Array(2 * CAP).fill('full')], 'the cap stops the flood')
    assert.equal(depositsAt(floodedRelay, 'mailbox-full') - fullBefore, 2 * CAP, 'every refused deposit is counted')
    assert.equal(depositsAt(floodedRelay, 'stored') - storedBefore, CAP)

    // bob writes to rosa: every message ends stored, in her other mailbox
    const otherStoredBefore = depositsAt(otherRelay, 'stored')
    const ids = Array.from({ length: MESSAGES }, (_, i) => bob.chat.send('rosa', `through the flood, ${i}`).id)
    await waitFor(() => ids.every(id => eventsOf(bob, 'stored').some(e => e.id === id)),
      () => `all ${MESSAGES} stored (got ${eventsOf(bob, 'stored').filter(e => ids.includes(e.id)).length}; queued: ${eventsOf(bob, 'queued').map(e => e.reason).slice(-2).join(' | ')})`, 60_000)
    assert.equal(depositsAt(floodedRelay, 'stored') - storedBefore, CAP, 'the flooded mailbox took none of them')
    assert.ok(depositsAt(otherRelay, 'stored') - otherStoredBefore >= MESSAGES, 'the other mailbox took them')
    const bobSawFull = depositsAt(floodedRelay, 'mailbox-full') - fullBefore - 2 * CAP

    // carol's mailbox on the flooded relay still takes an item and pushes it to her
    const key = onionKeyFor(carolRecord, Date.now())
    assert.ok(key != null)
    const note = createMessage({ senderNick: 'bob', senderIdentityKey: bob.chat.identity.identityKey, text: 'next door to the flood' })
    const sealed = sealMessage(note, bob.chat.identity.signer, { identityKey: carolRecord.identityKey, onionKey: key.key, epoch: key.epoch })
    assert.equal(await bob.chat.mailboxes.deposit({ relay: carolBox.relay, mailboxId: carolBox.id }, sealed), 'stored')
    await waitFor(() => eventsOf(carol, 'message').some(m => m.text === 'next door to the flood'), 'carol\'s item from the flooded relay', 30_000)
    assert.equal(eventsOf(carol, 'message').find(m => m.text === 'next door to the flood')?.verified, true)

    // rosa comes back: every message bob wrote arrives, and bob sees them delivered
    rosa = await net.user('rosa', { dataDir: rosaDir })
    await waitFor(() => ids.every(id => eventsOf(rosa, 'message').some(m => m.id === id)),
      () => `all ${MESSAGES} at rosa (got ${eventsOf(rosa, 'message').length})`, 60_000)
    assert.ok(eventsOf(rosa, 'message').every(m => m.verified))
    await waitFor(() => ids.every(id => bob.chat.store.get(id)?.state === 'delivered'), 'bob to see them delivered', 60_000)
    // the flood's junk reached rosa too, and was dropped as unopenable (and acknowledged, freeing the mailbox)
    await waitFor(() => rosa.chat.stats.unopenable >= CAP, () => `the ${CAP} flood items dropped at rosa (got ${rosa.chat.stats.unopenable})`, 60_000)
    t.diagnostic(`bob was answered full ${bobSawFull} times (his first try at the flooded mailbox), then used the other`)
  })
})
