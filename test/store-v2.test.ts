/**
 * The protocol-v2 tables of the user's store (onion keys by epoch, mailbox keys, seen seal keys), the
 * migration that adds them to a version-1 database, and transport keys.
 */
import { afterEach, beforeEach, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { DatabaseSync } from 'node:sqlite'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadTransportKey, TRANSPORT_FILE } from '../node/identity.ts'
import { MailboxKeys } from '../node/mailbox-keys.ts'
import { DEFAULT_ONION_KEY_RETENTION_MS, UserOnionKeys } from '../node/onion-keys.ts'
import { SeenSeals } from '../node/seen-seals.ts'
import { ChatStore, MIGRATIONS, SCHEMA_VERSION } from '../node/store.ts'
import { x25519PublicFromPrivate } from '../protocols/crypto/keys.ts'

const DAY = 24 * 3600_000
const bytes = (n: number): Uint8Array => new Uint8Array(randomBytes(n))

describe('store version 2', () => {
  let dir: string
  let store: ChatStore
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'p2pchat-store2-'))
    store = ChatStore.open(ChatStore.pathIn(dir))
  })
  afterEach(() => {
    store.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('migrates a version-1 database and keeps its messages', () => {
    store.close()
    rmSync(ChatStore.pathIn(dir))
    const v1 = new DatabaseSync(ChatStore.pathIn(dir))
    v1.exec(MIGRATIONS[0])
    v1.exec(`INSERT INTO messages (id, direction, peer_nick, peer_fingerprint, text, timestamp, state, stored_at)
      VALUES ('${'00'.repeat(16)}', 'out', 'bob', '', 'kept', 1, 'sent', 1); PRAGMA user_version = 1`)
    v1.close()
    chmodSync(ChatStore.pathIn(dir), 0o600)
    store = ChatStore.open(ChatStore.pathIn(dir))
    assert.equal(Number(store.database.prepare('PRAGMA user_version').get()?.user_version), SCHEMA_VERSION)
    assert.equal(store.get('00'.repeat(16))?.text, 'kept')
    assert.equal(store.markStored('00'.repeat(16)), true, 'the new state is allowed after the migration')
    assert.equal(store.awaitingReceipt().length, 1)
    assert.equal(new SeenSeals(store.database).size, 0)
  })

  it('contact records keep the newest sequence; owed receipts until stored', () => {
    store.putContactRecord('bob', Uint8Array.of(1), 5n, 1)
    store.putContactRecord('bob', Uint8Array.of(2), 4n, 2)
    assert.deepEqual(store.contactRecord('bob'), Uint8Array.of(1))
    store.putContactRecord('bob', Uint8Array.of(3), 6n, 3)
    assert.deepEqual(store.contactRecord('bob'), Uint8Array.of(3))
    assert.equal(store.contactRecord('carol'), undefined)
    // the record on file put again (every send does) writes nothing, so commits nothing to fsync
    const changes = (): number => Number(store.database.prepare('SELECT total_changes() AS n').get()?.n)
    const before = changes()
    store.putContactRecord('bob', Uint8Array.of(3), 6n, 4)
    assert.equal(changes(), before, 'the same record again: no row written')
    store.putContactRecord('bob', Uint8Array.of(4), 6n, 5)
    assert.deepEqual(store.contactRecord('bob'), Uint8Array.of(4), 'other bytes at the same sequence still replace it')
    assert.equal(changes(), before + 1)
    store.oweReceipt('11'.repeat(16), 'bob', 10)
    store.oweReceipt('11'.repeat(16), 'bob', 11)
    store.oweReceipt('22'.repeat(16), 'bob', 20)
    assert.deepEqual(store.owedReceipts().map(r => r.createdAt), [10, 20])
    store.receiptStored('11'.repeat(16))
    assert.equal(store.expireReceipts(20), 1)
    assert.equal(store.owedReceipts().length, 0)
  })

  describe('onion keys by epoch', () => {
    it('keeps a key for the current and the next epoch, stable across reopen, valid X25519 pairs', () => {
      let now = 10 * DAY + 5
      const keys = new UserOnionKeys(store.database, { now: () => now })
      const [current, next] = keys.rotate()
      assert.deepEqual([current.epoch, next.epoch], [10, 11])
      assert.deepEqual([current.notBefore, current.notAfter, next.notBefore], [10 * DAY, 11 * DAY, 11 * DAY])
      assert.deepEqual(x25519PublicFromPrivate(current.privateKey), current.publicKey)
      assert.notDeepEqual(current.publicKey, next.publicKey)
      store.close()
      store = ChatStore.open(ChatStore.pathIn(dir))
      const again = new UserOnionKeys(store.database, { now: () => now })
      assert.deepEqual(again.rotate()[0].publicKey, current.publicKey, 'a restart in the same epoch keeps the key')
      now = 11 * DAY + 1
      const [c2, n2] = again.rotate()
      assert.deepEqual(c2.publicKey, next.publicKey, 'the published next key becomes current')
      assert.equal(n2.epoch, 12)
    })

    it('erases a key only after its retention, and then for good', () => {
      let now = 3 * DAY
      const keys = new UserOnionKeys(store.database, { now: () => now })
      keys.rotate()
      now = 4 * DAY + DEFAULT_ONION_KEY_RETENTION_MS - 1
      keys.rotate()
      assert.ok(keys.key(3) != null, 'epoch 3 ended at day 4: kept until its retention has passed')
      now = 4 * DAY + DEFAULT_ONION_KEY_RETENTION_MS
      keys.rotate()
      assert.equal(keys.key(3), undefined)
      assert.ok(keys.key(4) != null)
      assert.equal(keys.key(-1), undefined)
      assert.equal(keys.key(1.5), undefined)
    })
  })

  it('seen seal keys: a second copy is recognised until it expires', () => {
    const seen = new SeenSeals(store.database)
    const e = bytes(32)
    assert.equal(seen.checkAndAdd(e, 1000), false)
    assert.equal(seen.checkAndAdd(e, 1000), true)
    assert.equal(seen.checkAndAdd(bytes(32), 5000), false)
    assert.equal(seen.expire(1000), 1)
    assert.equal(seen.size, 1)
    assert.equal(seen.checkAndAdd(e, 2000), false)
    assert.throws(() => seen.checkAndAdd(bytes(31), 1), RangeError)
  })

  it('mailbox keys: add, register, retire, erase', () => {
    const boxes = new MailboxKeys(store.database)
    const a = boxes.add({ id: bytes(32), relay: bytes(32), seed: bytes(32), publicKey: bytes(32) }, 1)
    const b = boxes.add({ id: bytes(32), relay: bytes(32), seed: bytes(32), publicKey: bytes(32) }, 2)
    assert.deepEqual(boxes.active().map(k => k.createdAt), [1, 2])
    boxes.markRegistered(a.id, 10)
    assert.equal(boxes.get(a.id)?.registeredAt, 10)
    assert.equal(boxes.retire(b.id, 20), true)
    assert.equal(boxes.retire(b.id, 30), false)
    assert.deepEqual(boxes.active().map(k => k.createdAt), [1])
    assert.equal(boxes.erase(19), 0)
    assert.equal(boxes.erase(20), 1)
    assert.equal(boxes.all().length, 1)
    assert.throws(() => boxes.add({ id: bytes(31), relay: bytes(32), seed: bytes(32), publicKey: bytes(32) }), RangeError)
    assert.throws(() => boxes.add({ id: a.id, relay: bytes(32), seed: bytes(32), publicKey: bytes(32) }))
  })
})

describe('transport keys', () => {
  let dir: string
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'p2pchat-transport-')) })
  afterEach(() => { rmSync(dir, { recursive: true, force: true }) })

  it('a relay keeps one in transport.key (0600); a user gets a fresh one each run and writes nothing', async () => {
    const first = await loadTransportKey(join(dir, 'relay'))
    const again = await loadTransportKey(join(dir, 'relay'))
    assert.equal(first.created, true)
    assert.equal(again.created, false)
    assert.ok(first.peerId.equals(again.peerId))
    assert.equal(statSync(join(dir, 'relay', TRANSPORT_FILE)).mode & 0o777, 0o600)
    const u1 = await loadTransportKey(join(dir, 'user'), { fresh: true })
    const u2 = await loadTransportKey(join(dir, 'user'), { fresh: true })
    assert.ok(!u1.peerId.equals(u2.peerId))
    assert.equal(existsSync(join(dir, 'user')), false, 'nothing written for a user')
  })

  it('refuses a corrupt transport.key without replacing it', async () => {
    const relayDir = join(dir, 'relay')
    await loadTransportKey(relayDir)
    writeFileSync(join(relayDir, TRANSPORT_FILE), 'not json', { mode: 0o600 })
    await assert.rejects(loadTransportKey(relayDir), (err: Error) => err.name === 'UserError' && /corrupt/.test(err.message))
    assert.equal(readFileSync(join(relayDir, TRANSPORT_FILE), 'utf8'), 'not json')
  })
})
