/**
 * A receipt's STORED that comes after the deposit timed out (issue 15's late answers, now for receipts:
 * node/receiving.ts passes MailboxClient.deposit an `onLate`). Before, the late answer was dropped as an
 * unknown reply block and the receipt deposited again every retry round: on a network slower than the
 * request timeout it stayed owed for good (and bob's mailbox filled with copies).
 *
 * On the in-process network: alice's receipt DEPOSITs to bob's mailboxes are held at the relays; the
 * first is handled only once alice gave up on it (she has asked his second mailbox), every later one
 * never. Only the late STORED can tell her the receipt is stored.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { OP_DEPOSIT } from '../protocols/mailbox/constants.ts'
import { ChatNetwork, eventsOf } from './helpers/chat-network.ts'
import { waitFor } from './helpers/wait.ts'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

describe('a receipt stored after the deposit timed out', { timeout: 300_000 }, () => {
  const net = new ChatNetwork()

  before(async () => {
    await net.bootstrap()
    await net.startRelays(4)
  })
  after(async () => { await net.teardown() })

  it('alice owes the receipt no more once the late STORED comes (before: owed for good, deposited again every round); bob shows delivered once', async () => {
    // a longer request timeout than the helpers' 5 s, as in mailbox-late-answer: starts under load
    const timing = { requestTimeoutMs: 20_000 }
    const alice = await net.user('alice', { timing })
    const bob = await net.user('bob', { timing })
    const bobsBoxes = new Set(bob.chat.mailboxes.addresses().map(a => hex(a.mailboxId)))
    assert.ok(bobsBoxes.size >= 2, 'bob has two mailboxes')
    const held: Array<() => void> = []
    let dropping = false
    let dropped = 0
    for (const r of net.relays) {
      const service = r.relay.mailboxes
      const handle = service.handle.bind(service)
      service.handle = (request, replyBlock) => {
        // DEPOSIT: op u8 | mailbox id 32 | ... (protocols/mailbox/codec.ts)
        if (request[0] !== OP_DEPOSIT || !bobsBoxes.has(hex(request.subarray(1, 33)))) { handle(request, replyBlock); return }
        if (dropping) { dropped++; return }
        held.push(() => { handle(request, replyBlock) })
      }
    }
    const { id } = bob.chat.send('alice', 'a receipt, slowly')
    await waitFor(() => eventsOf(alice, 'message').some(m => m.id === id), () => 'alice shows bob\'s message', 120_000)
    // her receipt goes to one of bob's mailboxes, then (after the timeout) to the other: the first is late now
    await waitFor(() => held.length >= 2, () => `alice giving up on her first receipt deposit (${held.length} held)`, 120_000)
    assert.equal(alice.chat.store.owedReceipts().length, 1, 'the receipt is still owed')
    dropping = true
    held[0]()
    await waitFor(() => alice.chat.store.owedReceipts().length === 0,
      () => `alice's receipt marked stored from the late answer (owed ${alice.chat.store.owedReceipts().length}, late answers ${alice.chat.stats.lateReceiptAnswers}, later deposits dropped ${dropped})`, 60_000)
    assert.equal(alice.chat.stats.lateReceiptAnswers, 1)
    assert.equal(alice.chat.stats.receiptsDeposited, 1, 'counted once')
    await waitFor(() => eventsOf(bob, 'delivered').some(e => e.id === id), () => 'bob shows it delivered', 60_000)
    assert.equal(eventsOf(bob, 'delivered').filter(e => e.id === id).length, 1, 'delivered shown once')
  })
})
