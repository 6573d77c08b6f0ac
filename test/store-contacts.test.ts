/**
 * Schema migration 3 and the contact tables (node/contacts-store.ts, node/contacts.ts): requests kept
 * apart from the conversation, accept / deny / block, the user's verification (cleared when another key
 * is accepted), unread counts, and /retry and /cancel in the store.
 */
import { afterEach, beforeEach, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { chmodSync, mkdtempSync, rmSync } from 'node:fs'
import { DatabaseSync } from 'node:sqlite'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Contacts } from '../node/contacts.ts'
import { MAX_REQUEST_MESSAGES } from '../node/contacts-store.ts'
import { ChatStore, MIGRATIONS, SCHEMA_VERSION } from '../node/store.ts'
import { fingerprint, safetyNumber } from '../protocols/chat/index.ts'

const key = (n: number): Uint8Array => new Uint8Array(32).fill(n)
const id = (): string => randomBytes(16).toString('hex')
const ME = key(9)

describe('store migration 3 and contacts', () => {
  let dir: string
  let store: ChatStore
  let contacts: Contacts
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'p2pchat-store3-'))
    store = ChatStore.open(ChatStore.pathIn(dir))
    contacts = new Contacts(store, ME)
  })
  afterEach(() => {
    store.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('migrates a version-2 database: pins, messages and outbox kept; pins unverified, messages no requests', () => {
    store.close()
    rmSync(ChatStore.pathIn(dir))
    const v2 = new DatabaseSync(ChatStore.pathIn(dir))
    v2.exec(MIGRATIONS[0])
    v2.exec(MIGRATIONS[1])
    v2.exec(`INSERT INTO messages (id, direction, peer_nick, peer_fingerprint, text, timestamp, state, stored_at)
      VALUES ('${'00'.repeat(16)}', 'in', 'bob', '', 'kept', 1, 'received', 1);
      INSERT INTO pins (nick, identity_key, fingerprint, first_seen, accepted) VALUES ('bob', x'${'01'.repeat(32)}', 'f', 1, 1);
      PRAGMA user_version = 2`)
    v2.close()
    chmodSync(ChatStore.pathIn(dir), 0o600)
    store = ChatStore.open(ChatStore.pathIn(dir))
    contacts = new Contacts(store, ME)
    assert.equal(SCHEMA_VERSION, 3)
    assert.equal(Number(store.database.prepare('PRAGMA user_version').get()?.user_version), 3)
    assert.equal(store.get('00'.repeat(16))?.request, false)
    assert.equal(store.getPin('bob')?.verifiedAt, null)
    assert.equal(contacts.trust('bob'), 'unverified')
    assert.deepEqual(contacts.conversations().map(c => [c.nick, c.unread]), [['bob', 1]])
  })

  it('a request is kept apart: not in conversations, no contact; accept pins its key and returns its messages', () => {
    assert.equal(contacts.table.noteRequest('dave', key(4), Uint8Array.of(1, 2, 3), 100), true)
    const m1 = id()
    store.addIncoming({ id: m1, peerNick: 'dave', peerFingerprint: fingerprint(key(4)), text: 'hi, it is dave', timestamp: 100, verified: true, request: true })
    assert.deepEqual(contacts.requests().map(r => [r.nick, r.fingerprint, r.messages]), [['dave', fingerprint(key(4)), 1]])
    assert.deepEqual(contacts.conversations(), [], 'a request is not a conversation')
    assert.equal(contacts.trust('dave'), undefined, 'not a contact')
    assert.equal(store.getPin('dave'), undefined, 'nothing pinned by a stranger\'s message')
    assert.equal(contacts.safety('dave').safetyNumber, safetyNumber(ME, key(4)), 'a request can be compared before accepting')
    const r = contacts.accept('dave')
    assert.equal(r.kind, 'request')
    assert.deepEqual(r.kind === 'request' ? r.messageIds : [], [m1])
    assert.deepEqual(store.getPin('dave')?.identityKey, key(4))
    assert.equal(contacts.trust('dave'), 'unverified')
    assert.deepEqual(contacts.requests(), [])
    assert.equal(store.get(m1)?.request, false)
    assert.deepEqual(contacts.conversations().map(c => [c.nick, c.unread, c.last?.text]), [['dave', 1, 'hi, it is dave']])
  })

  it('presence is what reached us: the newest message from a contact or receipt by it, by our clock; a request is none', () => {
    contacts.table.noteRequest('mallory', key(6), Uint8Array.of(1))
    store.addIncoming({ id: id(), peerNick: 'mallory', peerFingerprint: 'x', text: 'hello?', timestamp: 5, verified: true, request: true, storedAt: 900 })
    store.addIncoming({ id: id(), peerNick: 'bob', peerFingerprint: 'x', text: 'hi', timestamp: 10, verified: true, storedAt: 200 })
    const heard = (): unknown => contacts.conversations().find(c => c.nick === 'bob')?.heard
    assert.deepEqual(heard(), { at: 200, by: 'message' })
    const out = id()
    store.addOutgoing({ id: out, peerNick: 'bob', peerFingerprint: '', text: 'yo', timestamp: 300, expiresAt: null }, 300)
    assert.deepEqual(heard(), { at: 200, by: 'message' }, 'our own message says nothing of bob')
    store.markDelivered(out, 450)
    assert.deepEqual(heard(), { at: 450, by: 'receipt' })
    store.addOutgoing({ id: id(), peerNick: 'carol', peerFingerprint: '', text: 'anyone?', timestamp: 500, expiresAt: null }, 500)
    assert.equal(contacts.conversations().find(c => c.nick === 'carol')?.heard, null, 'never heard from carol')
    assert.equal(contacts.conversations().some(c => c.nick === 'mallory'), false)
  })

  it('deny deletes a request and its messages; block drops its key for good', () => {
    contacts.table.noteRequest('eve', key(5), Uint8Array.of(1))
    const m = id()
    store.addIncoming({ id: m, peerNick: 'eve', peerFingerprint: 'x', text: 'spam', timestamp: 1, verified: true, request: true })
    assert.equal(contacts.deny('eve'), true)
    assert.equal(store.get(m), undefined)
    assert.deepEqual(contacts.requests(), [])
    assert.equal(contacts.deny('eve'), false)
    contacts.table.noteRequest('eve', key(5), Uint8Array.of(1))
    assert.equal(contacts.block('eve'), true)
    assert.equal(contacts.table.isBlocked(key(5)), true)
    assert.deepEqual(contacts.requests(), [])
    contacts.table.countDropped(key(5))
    assert.deepEqual(contacts.blocked().map(b => [b.nick, b.dropped]), [['eve', 1]])
    assert.equal(contacts.block('nobody'), false)
  })

  it('a request holds a bounded number of messages', () => {
    for (let i = 0; i < MAX_REQUEST_MESSAGES; i++) {
      assert.equal(contacts.table.noteRequest('flood', key(6), Uint8Array.of(1)), true)
      store.addIncoming({ id: id(), peerNick: 'flood', peerFingerprint: 'x', text: `${i}`, timestamp: i, verified: true, request: true })
    }
    assert.equal(contacts.table.noteRequest('flood', key(6), Uint8Array.of(1)), false)
  })

  it('three trust states: unverified, verified after confirm, changed when another key is seen; accepting it clears verified', () => {
    assert.deepEqual(contacts.pinByUser('bob', key(1)), { result: 'new' })
    assert.equal(contacts.trust('bob'), 'unverified')
    assert.equal(contacts.confirm('bob').trust, 'verified')
    assert.equal(contacts.trust('bob'), 'verified')
    assert.equal(store.pin('bob', key(2)), 'changed')
    assert.equal(contacts.trust('bob'), 'changed')
    assert.throws(() => contacts.confirm('bob'), { name: 'KeyChangedError' })
    const v = contacts.safety('bob')
    assert.equal(v.pending?.safetyNumber, safetyNumber(ME, key(2)))
    assert.equal(contacts.accept('bob').kind, 'key')
    assert.equal(contacts.trust('bob'), 'unverified', 'a new key is not verified')
    assert.throws(() => contacts.confirm('nobody'), { name: 'UnknownContactError' })
  })

  it('a send by the user to a nick with a request from the same key accepts it; from another key, the request goes', () => {
    contacts.table.noteRequest('gil', key(7), Uint8Array.of(1))
    const m = id()
    store.addIncoming({ id: m, peerNick: 'gil', peerFingerprint: 'x', text: 'hey', timestamp: 1, verified: true, request: true })
    const r = contacts.pinByUser('gil', key(7))
    assert.equal(r.accepted?.kind, 'request')
    assert.equal(store.get(m)?.request, false)
    contacts.table.noteRequest('hal', key(8), Uint8Array.of(1))
    assert.equal(contacts.pinByUser('hal', key(3)).accepted, undefined)
    assert.deepEqual(contacts.requests(), [])
  })

  it('unread counts up to the read mark', () => {
    store.addIncoming({ id: id(), peerNick: 'bob', peerFingerprint: 'x', text: 'a', timestamp: 1, verified: true, storedAt: 10 })
    store.addIncoming({ id: id(), peerNick: 'bob', peerFingerprint: 'x', text: 'b', timestamp: 2, verified: true, storedAt: 20 })
    assert.equal(contacts.table.unread('bob'), 2)
    contacts.table.markRead('bob', 15)
    assert.equal(contacts.table.unread('bob'), 1)
    contacts.table.markRead('bob', 5)
    assert.equal(contacts.table.unread('bob'), 1, 'a read mark never moves back')
    contacts.table.markRead('bob', 20)
    assert.equal(contacts.table.unread('bob'), 0)
  })

  it('cancel and requeue an outgoing message; find it by a prefix of its id', () => {
    const m = store.addOutgoing({ id: id(), peerNick: 'bob', peerFingerprint: '', text: 'x', timestamp: 1, expiresAt: 1000 })
    assert.deepEqual(store.outgoingByPrefix(m.id.slice(0, 8)).map(x => x.id), [m.id])
    assert.equal(store.cancel(m.id), true)
    assert.equal(store.get(m.id)?.failureReason, 'cancelled')
    assert.equal(store.cancel(m.id), false, 'once')
    assert.deepEqual(store.outbox(0), [])
    assert.equal(store.requeue(m.id, 5000), true)
    assert.equal(store.get(m.id)?.state, 'queued')
    assert.deepEqual(store.outbox(0).map(x => x.id), [m.id])
    assert.equal(store.requeue(m.id, 5000), false, 'only a failed message is requeued')
  })
})
