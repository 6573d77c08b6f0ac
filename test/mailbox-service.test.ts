import { afterEach, beforeEach, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { chmodSync, mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { buildAck, buildDeposit, buildRegister, buildStock, decodeMailboxPayload, generateMailboxKeyPair } from '../protocols/mailbox/client.ts'
import type { MailboxKeyPair } from '../protocols/mailbox/client.ts'
import type { MailboxAnswer } from '../protocols/mailbox/codec.ts'
import { SURB_SIZE } from '../protocols/mailbox/constants.ts'
import { MailboxService } from '../protocols/mailbox/service.ts'
import type { MailboxServiceLimits } from '../protocols/mailbox/service.ts'
import { MAILBOX_SCHEMA_VERSION, MailboxStore } from '../protocols/mailbox/store.ts'
import { waitFor } from './helpers/wait.ts'

const T0 = 1_800_000_000_000
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const block = (): Uint8Array => new Uint8Array(randomBytes(SURB_SIZE))
const item = (n = 200): Uint8Array => new Uint8Array(randomBytes(n))

interface Sent { block: Uint8Array, answer: MailboxAnswer }

describe('MailboxService', () => {
  let dir: string
  let store: MailboxStore
  let service: MailboxService
  let now: number
  let sent: Sent[]
  let records: Array<{ id: string, record: Uint8Array }>
  let alice: MailboxKeyPair
  let bob: MailboxKeyPair

  function make (limits: Partial<MailboxServiceLimits> = {}, send?: (block: Uint8Array, payload: Uint8Array) => void): MailboxService {
    service?.stop()
    service = new MailboxService({
      store,
      limits,
      now: () => now,
      sendThroughReplyBlock: send ?? ((b, payload) => {
        const d = decodeMailboxPayload(payload)
        assert.ok(d.ok, 'the service only sends decodable answers')
        sent.push({ block: b, answer: d.answer })
      }),
      onRecord: (id, record) => { records.push({ id: hex(id), record }) }
    })
    return service
  }

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'p2pchat-mailbox-'))
    store = MailboxStore.open(MailboxStore.pathIn(dir))
    now = T0
    sent = []
    records = []
    alice = generateMailboxKeyPair()
    bob = generateMailboxKeyPair()
    make()
  })

  afterEach(() => {
    service.stop()
    store.close()
    rmSync(dir, { recursive: true, force: true })
  })

  /** Sends a request with a fresh reply block; returns the answers that came through that block. */
  function ask (request: Uint8Array): MailboxAnswer[] {
    const rb = block()
    service.handle(request, rb)
    return sent.filter(s => hex(s.block) === hex(rb)).map(s => s.answer)
  }

  function register (keys: MailboxKeyPair, record = item(300), at = now): MailboxAnswer[] {
    return ask(buildRegister(keys, record, at))
  }

  /** A DEPOSIT's answer comes once its item is on disk (an fdatasync off the event loop): awaited here. */
  async function deposit (keys: MailboxKeyPair, bytes = item()): Promise<MailboxAnswer['kind'] | undefined> {
    const rb = block()
    service.handle(buildDeposit(keys.mailboxId, bytes), rb)
    await service.settled()
    return sent.filter(s => hex(s.block) === hex(rb)).map(s => s.answer)[0]?.kind
  }

  function pushes (): Array<Sent & { answer: { kind: 'push' } }> {
    return sent.filter((s): s is Sent & { answer: { kind: 'push' } } => s.answer.kind === 'push')
  }

  describe('deposit', () => {
    it('stores the item and answers stored through the given reply block only', async () => {
      register(alice)
      sent = []
      const bytes = item(500)
      const rb = block()
      service.handle(buildDeposit(alice.mailboxId, bytes), rb)
      await service.settled()
      assert.equal(sent.length, 1)
      assert.deepEqual(sent[0].block, rb)
      assert.deepEqual(sent[0].answer, { kind: 'stored', mailboxId: alice.mailboxId })
      const held = store.items(alice.mailboxId)
      assert.equal(held.length, 1)
      assert.deepEqual(held[0].bytes, bytes)
      assert.equal(held[0].itemId.length, 16)
      assert.equal(held[0].storedAt, T0)
      // without a reply block: stored, nothing sent
      service.handle(buildDeposit(alice.mailboxId, item()), undefined)
      await service.settled()
      assert.equal(sent.length, 1)
      assert.equal(store.items(alice.mailboxId).length, 2)
      assert.equal(service.stats().requests.deposit.stored, 2)
    })

    it('answers unknown-mailbox for a mailbox this relay does not hold, and stores nothing', async () => {
      assert.equal(await deposit(alice), 'unknown-mailbox')
      assert.equal(store.totals().items, 0)
      assert.equal(service.stats().requests.deposit['unknown-mailbox'], 1)
    })

    it('answers too-large above the configured item size', async () => {
      make({ maxItemBytes: 100 })
      register(alice)
      assert.equal(await deposit(alice, item(101)), 'too-large')
      assert.equal(await deposit(alice, item(100)), 'stored')
      assert.equal(store.items(alice.mailboxId).length, 1)
    })
  })

  describe('register', () => {
    it('creates, answers the limits, hands the record out, refreshes without re-announcing the same record', async () => {
      const record = item(400)
      const answers = register(alice, record)
      assert.deepEqual(answers, [{
        kind: 'registered',
        mailboxId: alice.mailboxId,
        limits: { maxItems: 1000, maxBytes: 2 * 1024 * 1024, itemAgeMs: 7 * 86_400_000, idleAgeMs: 8 * 86_400_000 },
        waiting: 0
      }])
      assert.deepEqual(records, [{ id: hex(alice.mailboxId), record }])
      now += 1000
      assert.equal(register(alice, record)[0].kind, 'registered')
      assert.equal(records.length, 1, 'the same record is not announced again')
      const newer = item(410)
      now += 1000
      register(alice, newer)
      assert.deepEqual(records[1], { id: hex(alice.mailboxId), record: newer })
      assert.deepEqual(store.getMailbox(alice.mailboxId)?.record, newer)
      assert.deepEqual(service.stats().requests.register, { created: 1, refreshed: 2 })
    })

    it('refuses a REGISTER older than the one it holds (stale), keeping the newer record', async () => {
      const newer = item(100)
      register(alice, newer, now)
      now += 60_000
      assert.deepEqual(register(alice, item(100), now - 120_000), [{ kind: 'refused', mailboxId: alice.mailboxId, reason: 'stale' }])
      assert.deepEqual(store.getMailbox(alice.mailboxId)?.record, newer)
    })

    it('refuses timestamps outside the clock window, a bad signature, and a key that does not hash to the id', async () => {
      const window = service.limits.clockWindowMs
      assert.equal((register(alice, item(), now - window - 1)[0] as { reason: string }).reason, 'stale')
      assert.equal((register(alice, item(), now + window + 1)[0] as { reason: string }).reason, 'stale')
      const wire = buildRegister(alice, item(), now)
      wire[wire.length - 1] ^= 1
      assert.deepEqual(ask(wire), [{ kind: 'refused', mailboxId: alice.mailboxId, reason: 'bad-signature' }])
      // bob's key and signature under alice's mailbox id
      const forged = buildRegister(bob, item(), now)
      forged.set(alice.mailboxId, 1)
      assert.deepEqual(ask(forged), [{ kind: 'refused', mailboxId: alice.mailboxId, reason: 'key-mismatch' }])
      assert.equal(store.getMailbox(alice.mailboxId), undefined)
      assert.deepEqual(service.stats().requests.register, { stale: 2, 'bad-signature': 1, 'key-mismatch': 1 })
      assert.equal(register(alice, item(), now + window)[0].kind, 'registered', 'the window edge is accepted')
    })
  })

  describe('stock, push, ack', () => {
    it('pushes one item per stocked block, oldest item through the newest block, answers stocked, and deletes only on ack', async () => {
      register(alice)
      const items = [item(10), item(20), item(30)]
      for (const bytes of items) { await deposit(alice, bytes); now += 1 }
      sent = []
      const blocks = [block(), block()]
      const answers = ask(buildStock(alice, blocks, now))
      const pushed = pushes()
      assert.equal(pushed.length, 2)
      assert.deepEqual(pushed.map(p => hex(p.block)), [blocks[1], blocks[0]].map(hex), 'each block used once, newest first')
      assert.deepEqual(pushed.map(p => p.answer.item), items.slice(0, 2))
      assert.deepEqual(pushed.map(p => p.answer.waiting), [2, 2])
      assert.deepEqual(answers, [{ kind: 'stocked', mailboxId: alice.mailboxId, waiting: 3, blocks: 0 }])
      assert.equal(store.items(alice.mailboxId).length, 3, 'pushed items stay until acknowledged')

      sent = []
      const third = block()
      service.handle(buildStock(alice, [third], now), undefined)
      assert.equal(pushes().length, 1)
      assert.deepEqual(pushes()[0].block, third)
      assert.deepEqual(pushes()[0].answer.item, items[2])

      const ids = store.items(alice.mailboxId).map(i => i.itemId)
      assert.deepEqual(ask(buildAck(alice, [ids[0], ids[1], new Uint8Array(16)], now)), [{ kind: 'acked', mailboxId: alice.mailboxId, deleted: 2, waiting: 1 }])
      assert.deepEqual(store.items(alice.mailboxId).map(i => hex(i.itemId)), [hex(ids[2])])
      assert.equal(service.stats().pushes, 3)
    })

    it('an item deposited while blocks are held is pushed at once through the newest stocked block, never through the deposit block', async () => {
      register(alice)
      const stocked = [block(), block()]
      service.handle(buildStock(alice, stocked, now), undefined)
      assert.equal(service.blocksHeld(alice.mailboxId), 2)
      sent = []
      const rb = block()
      const bytes = item()
      service.handle(buildDeposit(alice.mailboxId, bytes), rb)
      await service.settled()
      // the push leaves at the commit, the STORED once the commit is on disk (SPEC.md section 7)
      assert.deepEqual(sent.map(s => [hex(s.block), s.answer.kind]), [[hex(stocked[1]), 'push'], [hex(rb), 'stored']])
      assert.equal(service.blocksHeld(alice.mailboxId), 1)
    })

    it('re-pushes an unacknowledged item through a later block only after the re-push interval', async () => {
      make({ repushIntervalMs: 60_000 })
      register(alice)
      await deposit(alice)
      sent = []
      const blocks = [block(), block()]
      service.handle(buildStock(alice, blocks, now), undefined)
      assert.equal(pushes().length, 1)
      now += 59_999
      service.sweep()
      assert.equal(pushes().length, 1, 'not before the interval')
      now += 1
      service.sweep()
      assert.equal(pushes().length, 2)
      assert.deepEqual(pushes().map(p => hex(p.block)), [blocks[1], blocks[0]].map(hex), 'the newest block first, then the one left')
      assert.deepEqual(pushes()[0].answer.itemId, pushes()[1].answer.itemId, 'the same item again')
      assert.equal(store.items(alice.mailboxId).length, 1)
    })

    it('a REGISTER drops the blocks held for the mailbox and pushes its unacknowledged items again through the next blocks', async () => {
      make({ repushIntervalMs: 60_000 })
      register(alice)
      register(bob)
      const first = item()
      await deposit(alice, first)
      const old = [block(), block()]
      service.handle(buildStock(alice, old, now), undefined)
      service.handle(buildStock(bob, [block()], now), undefined)
      assert.deepEqual(pushes().map(p => hex(p.block)), [hex(old[1])])
      assert.equal(service.blocksHeld(alice.mailboxId), 1)
      // the owner restarts: new transport key and entry relay, so old[0] ends at a dead address
      now += 1000
      assert.deepEqual(register(alice).map(a => a.kind), ['registered'])
      assert.equal(service.blocksHeld(alice.mailboxId), 0, 'the blocks of the previous run are gone')
      assert.equal(service.blocksHeld(bob.mailboxId), 1, 'another mailbox keeps its blocks')
      assert.equal(service.stats().blocks, 1)
      const second = item()
      await deposit(alice, second)
      assert.equal(pushes().length, 1, 'nothing goes through a block of the previous run')
      // well within the re-push interval, both items go through the new blocks, the older first
      sent = []
      const fresh = [block(), block()]
      service.handle(buildStock(alice, fresh, now), undefined)
      assert.deepEqual(pushes().map(p => [hex(p.block), hex(p.answer.item)]), [[hex(fresh[1]), hex(first)], [hex(fresh[0]), hex(second)]])
      assert.equal(store.items(alice.mailboxId).length, 2, 'still held until acknowledged')
    })

    it('nothing is deleted by an unauthenticated or stale ACK; a bad STOCK holds no block', async () => {
      register(alice)
      register(bob)
      await deposit(alice)
      const [held] = store.items(alice.mailboxId)
      // bob signs an ACK for alice's mailbox
      const forged = buildAck(bob, [held.itemId], now)
      forged.set(alice.mailboxId, 1)
      assert.deepEqual(ask(forged), [{ kind: 'refused', mailboxId: alice.mailboxId, reason: 'bad-signature' }])
      assert.deepEqual(ask(buildAck(alice, [held.itemId], now - service.limits.clockWindowMs - 1)), [{ kind: 'refused', mailboxId: alice.mailboxId, reason: 'stale' }])
      assert.equal(store.items(alice.mailboxId).length, 1)
      const badStock = buildStock(alice, [block()], now)
      badStock[badStock.length - 2] ^= 0x10
      assert.equal((ask(badStock)[0] as { reason: string }).reason, 'bad-signature')
      assert.equal(service.blocksHeld(alice.mailboxId), 0)
      assert.equal(pushes().length, 0)
      assert.deepEqual(ask(buildStock(generateMailboxKeyPair(), [block()], now))[0].kind, 'unknown-mailbox')
      assert.deepEqual(service.stats().requests.ack, { 'bad-signature': 1, stale: 1 })
      assert.deepEqual(service.stats().requests.stock, { 'bad-signature': 1, 'unknown-mailbox': 1 })
      // the item goes only with alice's own ACK
      assert.equal((ask(buildAck(alice, [held.itemId], now))[0] as { deleted: number }).deleted, 1)
      assert.equal(store.totals().items, 0)
    })

    it('blocks are bounded per mailbox (oldest evicted) and per relay, and die after their lifetime', async () => {
      make({ maxBlocksPerMailbox: 3, maxBlocksPerRelay: 5, blockLifetimeMs: 10_000 })
      register(alice)
      register(bob)
      const a = [block(), block(), block(), block()]
      service.handle(buildStock(alice, a, now), undefined)
      assert.equal(service.blocksHeld(alice.mailboxId), 3)
      assert.equal(service.stats().drops['block-evicted'], 1)
      service.handle(buildStock(bob, [block(), block(), block()], now), undefined)
      assert.equal(service.blocksHeld(bob.mailboxId), 2)
      assert.equal(service.stats().blocks, 5)
      assert.equal(service.stats().drops['blocks-relay-full'], 1)
      await deposit(alice)
      assert.deepEqual(pushes()[0].block, a[3], 'the newest held block (a[0] was evicted)')
      assert.equal(service.blocksHeld(alice.mailboxId), 2, 'a[1] and a[2] stay')
      now += 10_000
      await deposit(alice)
      assert.equal(pushes().length, 1, 'no live block: nothing pushed')
      assert.equal(service.stats().blocks, 2)
      service.sweep()
      assert.equal(service.stats().blocks, 0)
      assert.equal(service.stats().drops['block-expired'], 4)
    })
  })

  describe('limits', () => {
    it('a flood into one mailbox is capped and counted; another mailbox on the relay still takes and delivers items', async () => {
      make({ maxItemsPerMailbox: 5 })
      register(alice)
      register(bob)
      const kinds: Array<MailboxAnswer['kind'] | undefined> = []
      for (let i = 0; i < 50; i++) kinds.push(await await deposit(alice))
      assert.equal(kinds.filter(k => k === 'stored').length, 5)
      assert.equal(kinds.filter(k => k === 'full').length, 45)
      assert.equal(service.stats().requests.deposit['mailbox-full'], 45)
      assert.equal(store.items(alice.mailboxId).length, 5)
      const bytes = item()
      assert.equal(await deposit(bob, bytes), 'stored')
      const rb = block()
      service.handle(buildStock(bob, [rb], now), undefined)
      assert.deepEqual(pushes().at(-1)?.answer.item, bytes)
      // acknowledging frees the flooded mailbox again
      assert.equal(await deposit(alice), 'full')
      service.handle(buildAck(alice, [store.items(alice.mailboxId)[0].itemId], now), undefined)
      assert.equal(await deposit(alice), 'stored')
    })

    it('caps bytes per mailbox', async () => {
      make({ maxBytesPerMailbox: 1000 })
      register(alice)
      assert.equal(await deposit(alice, item(600)), 'stored')
      assert.equal(await deposit(alice, item(401)), 'full')
      assert.equal(await deposit(alice, item(400)), 'stored')
      assert.equal(store.getMailbox(alice.mailboxId)?.itemBytes, 1000)
    })

    it('relay-wide items and bytes: every mailbox answers full, counted as relay-full, until space frees', async () => {
      make({ maxItemsPerMailbox: 5, maxItemsPerRelay: 6, maxBytesPerRelay: 10_000 })
      const carol = generateMailboxKeyPair()
      for (const k of [alice, bob, carol]) register(k)
      for (let i = 0; i < 3; i++) { await deposit(alice); await deposit(bob) }
      assert.equal(await deposit(carol), 'full')
      assert.equal(service.stats().requests.deposit['relay-full'], 1)
      service.handle(buildAck(bob, [store.items(bob.mailboxId)[0].itemId], now), undefined)
      assert.equal(await deposit(carol, item(2000)), 'stored')
      assert.deepEqual(store.totals(), { mailboxes: 3, items: 6, bytes: 5 * 200 + 2000 })
      service.handle(buildAck(alice, store.items(alice.mailboxId).map(i => i.itemId), now), undefined)
      for (let i = 0; i < 3; i++) assert.equal(await deposit(carol, item(2000)), 'stored')
      assert.equal(await deposit(carol), 'full', 'items: 6 held')
      service.handle(buildAck(bob, [store.items(bob.mailboxId)[0].itemId], now), undefined)
      assert.deepEqual(store.totals(), { mailboxes: 3, items: 5, bytes: 200 + 4 * 2000 })
      assert.equal(await deposit(carol, item(1801)), 'full', 'bytes: 8200 + 1801 > 10000')
      assert.equal(await deposit(carol, item(1800)), 'stored')
      assert.equal(service.stats().requests.deposit['relay-full'], 3)
    })

    it('a relay holding the most mailboxes refuses new ones; the ones it holds keep working', async () => {
      make({ maxMailboxes: 2 })
      register(alice)
      register(bob)
      const carol = generateMailboxKeyPair()
      assert.deepEqual(register(carol), [{ kind: 'refused', mailboxId: carol.mailboxId, reason: 'relay-full' }])
      assert.equal(await deposit(carol), 'unknown-mailbox')
      assert.equal(register(alice)[0].kind, 'registered')
      assert.equal(await deposit(alice), 'stored')
      assert.equal(await deposit(bob), 'stored')
      assert.equal(service.stats().requests.register['relay-full'], 1)
    })
  })

  describe('expiry and republishing', () => {
    it('items go at their age limit; an idle empty mailbox goes, one that still holds items stays', async () => {
      make({ itemAgeMs: 3000, idleAgeMs: 5000 })
      register(alice)
      register(bob)
      await deposit(alice)
      now = T0 + 2999
      service.sweep()
      assert.equal(store.totals().items, 1)
      now = T0 + 3000
      await deposit(bob) // expires at T0 + 6000
      service.sweep()
      assert.equal(store.items(alice.mailboxId).length, 0)
      assert.equal(store.items(bob.mailboxId).length, 1)
      assert.equal(service.stats().expiredItems, 1)
      now = T0 + 5000
      service.sweep()
      assert.equal(store.getMailbox(alice.mailboxId), undefined, 'idle and empty: removed')
      assert.ok(store.getMailbox(bob.mailboxId), 'idle but holding an item: kept')
      now = T0 + 6000
      service.sweep()
      assert.equal(store.getMailbox(bob.mailboxId), undefined, 'its item expired, then the idle mailbox went')
      assert.equal(service.stats().removedMailboxes, 2)
      assert.equal(service.stats().expiredItems, 2)
    })

    it('an owner who stocks keeps an empty mailbox alive', async () => {
      make({ idleAgeMs: 5000 })
      register(alice)
      now += 4000
      service.handle(buildStock(alice, [block()], now), undefined)
      now += 4000
      service.sweep()
      assert.ok(store.getMailbox(alice.mailboxId))
    })

    it('hands every held record to onRecord at start and every republish interval', async () => {
      make({ republishIntervalMs: 10_000 })
      register(alice)
      register(bob)
      records = []
      service.start()
      assert.equal(records.length, 2)
      now += 9_999
      service.sweep()
      assert.equal(records.length, 2)
      now += 1
      service.sweep()
      assert.equal(records.length, 4)
      service.stop()
      service.stop()
    })

    it('the timer sweeps on its own once started', async () => {
      make({ itemAgeMs: 1000, sweepIntervalMs: 20 })
      register(alice)
      await deposit(alice)
      service.start()
      now += 1000
      await waitFor(() => store.totals().items === 0, 'the sweep timer expiring the item', 5000, 10)
    })
  })

  describe('hostile input', () => {
    it('malformed requests and reply blocks are counted drops, never throws or answers', async () => {
      register(alice)
      sent = []
      service.handle(new Uint8Array(0), block())
      service.handle(Uint8Array.of(0x09, ...alice.mailboxId), block())
      service.handle(buildDeposit(alice.mailboxId, item()), new Uint8Array(100))
      service.handle('x' as unknown as Uint8Array, undefined)
      for (let i = 0; i < 2000; i++) service.handle(new Uint8Array(randomBytes(i % 300)), block())
      const drops = service.stats().drops
      assert.equal(drops['reply-block'], 1)
      assert.equal(drops.op >= 1, true)
      assert.equal(drops.length >= 1, true)
      assert.equal(drops.input, 1)
      assert.equal(sent.filter(s => s.answer.kind !== 'unknown-mailbox').length, 0, 'random deposits can only reach unknown mailboxes')
    })

    it('a sender that throws is a counted drop; the item is still stored', async () => {
      make({}, () => { throw new Error('no route') })
      register(alice)
      assert.doesNotThrow(() => service.handle(buildDeposit(alice.mailboxId, item()), block()))
      await service.settled()
      assert.equal(store.totals().items, 1)
      assert.equal(service.stats().drops['send-failed'], 2)
    })

    it('a closed store: no stored answer, a counted store-error', async () => {
      register(alice)
      sent = []
      store.close()
      service.handle(buildDeposit(alice.mailboxId, item()), block())
      await service.settled()
      assert.equal(sent.length, 0)
      assert.equal(service.stats().drops['store-error'], 1)
      service.sweep()
      assert.equal(service.stats().drops['store-error'], 2)
    })
  })
})

describe('MailboxStore file', () => {
  let dir: string
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'p2pchat-mailbox-store-')) })
  afterEach(() => { rmSync(dir, { recursive: true, force: true }) })

  it('is mailbox.db, mode 0600, WAL, synchronous=FULL, with the schema version; items survive a reopen', async () => {
    const path = MailboxStore.pathIn(dir)
    assert.equal(path, join(dir, 'mailbox.db'))
    const store = MailboxStore.open(path)
    const keys = generateMailboxKeyPair()
    const limits = { maxItemsPerMailbox: 10, maxBytesPerMailbox: 10_000, maxItemsPerRelay: 10, maxBytesPerRelay: 10_000, maxMailboxes: 10 }
    assert.equal(store.register({ id: keys.mailboxId, publicKey: keys.publicKey, record: item(5), timestamp: T0 }, T0, limits), 'created')
    const itemId = new Uint8Array(randomBytes(16))
    assert.equal(await store.deposit(keys.mailboxId, itemId, item(50), T0, limits), 'stored')
    assert.equal(statSync(path).mode & 0o777, 0o600)
    assert.equal(statSync(`${path}-wal`).mode & 0o777, 0o600)
    store.close()
    store.close()
    assert.throws(() => store.totals(), { name: 'MailboxStoreClosedError' })
    const db = new DatabaseSync(path)
    assert.equal(db.prepare('PRAGMA journal_mode').get()?.journal_mode, 'wal')
    assert.equal(db.prepare('PRAGMA user_version').get()?.user_version, MAILBOX_SCHEMA_VERSION)
    db.close()
    const again = MailboxStore.open(path)
    assert.equal(again.getItem(itemId)?.bytes.length, 50)
    assert.deepEqual(again.totals(), { mailboxes: 1, items: 1, bytes: 50 })
    again.close()
  })

  it('refuses a file others can read, and a newer schema', async () => {
    const path = MailboxStore.pathIn(dir)
    MailboxStore.open(path).close()
    chmodSync(path, 0o644)
    assert.throws(() => MailboxStore.open(path), { name: 'MailboxStorePermissionError' })
    chmodSync(path, 0o600)
    const db = new DatabaseSync(path)
    db.exec(`PRAGMA user_version = ${MAILBOX_SCHEMA_VERSION + 1}`)
    db.close()
    assert.throws(() => MailboxStore.open(path), { name: 'MailboxStoreVersionError' })
  })

  it('refuses limits that are not positive integers', async () => {
    const store = MailboxStore.open(MailboxStore.pathIn(dir))
    try {
      assert.throws(() => new MailboxService({ store, sendThroughReplyBlock: () => {}, limits: { maxItemsPerMailbox: 0 } }), { name: 'InvalidMailboxOptionError' })
      assert.throws(() => new MailboxService({ store, sendThroughReplyBlock: () => {}, limits: { maxItemBytes: 5000 } }), { name: 'InvalidMailboxOptionError' })
    } finally {
      store.close()
    }
  })
})

describe('MailboxService: a STORED answer waits for its item to be on disk', () => {
  let dir: string
  let store: MailboxStore
  let service: MailboxService
  let sent: MailboxAnswer[]
  /** the WAL syncs asked for (MailboxStore's datasync): each waits until the test ends it */
  let syncs: Array<{ resolve: () => void, reject: (err: Error) => void }>

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'p2pchat-mailbox-sync-'))
    syncs = []
    store = MailboxStore.open(MailboxStore.pathIn(dir), {
      datasync: async () => { await new Promise<void>((resolve, reject) => { syncs.push({ resolve, reject }) }) }
    })
    sent = []
    service = new MailboxService({
      store,
      now: () => T0,
      sendThroughReplyBlock: (_b, payload) => {
        const d = decodeMailboxPayload(payload)
        if (d.ok) sent.push(d.answer)
      },
      onRecord: () => {}
    })
  })

  afterEach(() => {
    for (const s of syncs) s.resolve()
    service.stop()
    store.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('committed at once, answered STORED only once the WAL sync ended; deposits meanwhile share the next sync', async () => {
    const alice = generateMailboxKeyPair()
    service.handle(buildRegister(alice, item(100), T0), block())
    assert.equal(sent.at(-1)?.kind, 'registered')
    sent = []
    service.handle(buildDeposit(alice.mailboxId, item()), block())
    assert.equal(store.items(alice.mailboxId).length, 1, 'the item is committed')
    assert.equal(syncs.length, 1, 'its sync started')
    assert.equal(sent.length, 0, 'no STORED before the sync ended')
    service.handle(buildDeposit(alice.mailboxId, item()), block())
    service.handle(buildDeposit(alice.mailboxId, item()), block())
    assert.equal(syncs.length, 1, 'the next sync waits for the running one')
    syncs[0].resolve()
    await waitFor(() => sent.length === 1, 'the first STORED', 5_000, 1)
    assert.equal(syncs.length, 2, 'one sync for the two later deposits')
    assert.equal(sent.length, 1, 'the later deposits are not answered before their own sync')
    syncs[1].resolve()
    await service.settled()
    assert.deepEqual(sent.map(a => a.kind), ['stored', 'stored', 'stored'])
  })

  it('the push to the owner leaves at the commit, before the sync ends; the STORED only after it', async () => {
    const alice = generateMailboxKeyPair()
    service.handle(buildRegister(alice, item(100), T0), block())
    service.handle(buildStock(alice, [block()], T0), undefined)
    sent = []
    service.handle(buildDeposit(alice.mailboxId, item()), block())
    assert.equal(syncs.length, 1, 'its sync started')
    assert.deepEqual(sent.map(a => a.kind), ['push'], 'pushed while the sync runs')
    syncs[0].resolve()
    await service.settled()
    assert.deepEqual(sent.map(a => a.kind), ['push', 'stored'])
  })

  it('a failed sync: no STORED, a counted store-error', async () => {
    const alice = generateMailboxKeyPair()
    service.handle(buildRegister(alice, item(100), T0), block())
    sent = []
    service.handle(buildDeposit(alice.mailboxId, item()), block())
    syncs[0].reject(Object.assign(new Error('EIO: i/o error'), { code: 'EIO' }))
    await service.settled()
    assert.equal(sent.length, 0)
    assert.equal(service.stats().drops['store-error'], 1)
  })
})
