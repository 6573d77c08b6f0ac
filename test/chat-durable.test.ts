/**
 * The commits a message waits for are on disk before anyone is told, and their fsync runs off the event
 * loop (protocols/sqlite.ts WalSync): the sender's packet leaves at once (its outbox row is committed; its
 * sync runs alongside) but 'stored' is said only once the row and its STORED mark are synced, and the
 * recipient shows a message at once but acknowledges and receipts it only once its row is synced.
 * Each user's WAL sync goes through a gate the test closes and opens (ChatNodeOptions.datasync).
 */
import assert from 'node:assert/strict'
import { fdatasync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import { promisify } from 'node:util'
import { ChatNetwork, eventsOf } from './helpers/chat-network.ts'
import type { TestUser } from './helpers/chat-network.ts'
import { waitFor } from './helpers/wait.ts'

const realDatasync = promisify(fdatasync)

/** Syncs pass through while open; while closed each waits for `open()`. */
class SyncGate {
  closed = false
  /** syncs asked for while closed */
  held = 0
  private readonly waiting: Array<() => void> = []
  readonly datasync = async (fd: number): Promise<void> => {
    if (this.closed) {
      this.held++
      await new Promise<void>(resolve => { this.waiting.push(resolve) })
    }
    await realDatasync(fd)
  }

  close (): void { this.closed = true; this.held = 0 }
  open (): void {
    this.closed = false
    for (const w of this.waiting.splice(0)) w()
  }
}

/** Lets the event loop turn a few times (no timer: pending I/O callbacks and microtasks run). */
async function turns (n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise(resolve => setImmediate(resolve))
}

describe('a message\'s durable commits are synced before anyone is told, off the event loop', { timeout: 300_000 }, () => {
  const net = new ChatNetwork()
  const gates = { alice: new SyncGate(), bob: new SyncGate() }
  let alice: TestUser
  let bob: TestUser

  before(async () => {
    await net.bootstrap()
    await net.startRelays(5)
    alice = await net.user('alice', { datasync: gates.alice.datasync })
    bob = await net.user('bob', { datasync: gates.bob.datasync })
    // warm up: both contacts known and their records cached, so a send goes straight to sealing
    const a = alice.chat.send('bob', 'warm up')
    const b = bob.chat.send('alice', 'warm up too')
    await waitFor(() => eventsOf(alice, 'delivered').some(e => e.id === a.id) && eventsOf(bob, 'delivered').some(e => e.id === b.id), 'the warm-up receipts', 60_000)
  })
  after(async () => {
    gates.alice.open()
    gates.bob.open()
    await net.teardown()
  })

  it('the sender: the packet leaves at once, \'stored\' only once the outbox row and its mark are synced', async () => {
    gates.alice.close()
    const { id } = alice.chat.send('bob', 'before the sync')
    assert.equal(alice.chat.store.get(id)?.state, 'queued', 'committed when send() returns')
    await waitFor(() => gates.alice.held > 0, 'the outbox row\'s sync to start', 10_000, 1)
    // the deposit does not wait for the sync: it leaves, the mailbox stores it and its STORED comes back
    await waitFor(() => eventsOf(alice, 'sent').some(e => e.id === id), 'the deposit to leave while the row is not on disk', 30_000, 1)
    await waitFor(() => alice.chat.store.get(id)?.state === 'stored', 'the STORED answer (marked, not yet synced)', 30_000, 1)
    await turns(20)
    assert.ok(gates.alice.held > 0, 'the sync is still held')
    assert.equal(eventsOf(alice, 'stored').some(e => e.id === id), false, '\'stored\' is not said while the row is not on disk')
    gates.alice.open()
    await waitFor(() => eventsOf(alice, 'stored').some(e => e.id === id), '\'stored\' once the sync ends', 30_000)
    await waitFor(() => eventsOf(alice, 'delivered').some(e => e.id === id), 'its receipt', 30_000)
  })

  it('the recipient: shown at once, acknowledged and receipted only once its row is synced', async () => {
    await waitFor(() => bob.chat.store.owedReceipts().length === 0, 'bob\'s earlier receipts stored', 30_000)
    const receiptsBefore = bob.chat.stats.receiptsDeposited
    gates.bob.close()
    const first = alice.chat.send('bob', 'show me now')
    await waitFor(() => eventsOf(bob, 'message').some(e => e.id === first.id), 'the message shown at bob\'s', 30_000, 1)
    assert.ok(gates.bob.held > 0, 'bob\'s row waits for its sync')
    assert.equal(bob.chat.store.get(first.id)?.state, 'received', 'committed')
    // a second message over the same path: by the time it is shown, a receipt sent for the first at once
    // would have been stored in a mailbox of alice's (its deposit and STORED cross fewer hops)
    const second = alice.chat.send('bob', 'and me')
    await waitFor(() => eventsOf(bob, 'message').some(e => e.id === second.id), 'the second message shown at bob\'s', 30_000, 1)
    await turns(20)
    assert.equal(bob.chat.stats.receiptsDeposited, receiptsBefore, 'no receipt deposited while the rows are not on disk')
    assert.equal(eventsOf(alice, 'delivered').some(e => e.id === first.id || e.id === second.id), false)
    gates.bob.open()
    await waitFor(() => [first.id, second.id].every(id => eventsOf(alice, 'delivered').some(e => e.id === id)), 'both receipts once bob\'s rows are synced', 30_000)
  })
})
