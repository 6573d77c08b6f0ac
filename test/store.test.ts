import { afterEach, beforeEach, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { DatabaseSync } from 'node:sqlite'
import { fingerprint } from '../protocols/chat/fingerprint.ts'
import { ChatStore, SCHEMA_VERSION } from '../node/store.ts'
import { within } from './helpers/wait.ts'

const T0 = 1_700_000_000_000

function id (): string {
  return randomBytes(16).toString('hex')
}

function key (fill?: number): Uint8Array {
  return fill == null ? new Uint8Array(randomBytes(32)) : new Uint8Array(32).fill(fill)
}

describe('ChatStore', () => {
  let dir: string
  let path: string
  let store: ChatStore

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'p2pchat-store-'))
    path = ChatStore.pathIn(dir)
    store = ChatStore.open(path)
  })

  afterEach(() => {
    store.close()
    rmSync(dir, { recursive: true, force: true })
  })

  function outgoing (overrides: { id?: string, peerNick?: string, timestamp?: number, expiresAt?: number | null } = {}) {
    return store.addOutgoing({
      id: overrides.id ?? id(),
      peerNick: overrides.peerNick ?? 'bob',
      peerFingerprint: 'aaaa-bbbb-cccc-dddd',
      text: 'hello',
      timestamp: overrides.timestamp ?? T0,
      expiresAt: overrides.expiresAt
    }, T0)
  }

  describe('file', () => {
    it('is mode 0600 in WAL mode with synchronous=FULL and the current schema', () => {
      assert.equal(statSync(path).mode & 0o777, 0o600)
      outgoing()
      assert.equal(statSync(`${path}-wal`).mode & 0o777, 0o600)
      store.close()
      const db = new DatabaseSync(path)
      assert.equal(db.prepare('PRAGMA journal_mode').get()?.journal_mode, 'wal')
      assert.equal(db.prepare('PRAGMA user_version').get()?.user_version, SCHEMA_VERSION)
      db.close()
    })

    it('refuses a database file other users can read', () => {
      store.close()
      chmodSync(path, 0o644)
      assert.throws(() => ChatStore.open(path), { name: 'StorePermissionError' })
    })

    it('refuses a schema newer than the code', () => {
      store.close()
      const db = new DatabaseSync(path)
      db.exec(`PRAGMA user_version = ${SCHEMA_VERSION + 1}`)
      db.close()
      assert.throws(() => ChatStore.open(path), { name: 'StoreVersionError' })
    })

    it('close twice is harmless; use after close throws StoreClosedError', () => {
      store.close()
      store.close()
      assert.equal(store.isOpen, false)
      assert.throws(() => store.get(id()), { name: 'StoreClosedError' })
    })

    it('a file that is not a database is reported, not overwritten', () => {
      store.close()
      const other = join(dir, 'junk.db')
      writeFileSync(other, 'not a database, just some bytes that are long enough to matter'.repeat(20), { mode: 0o600 })
      assert.throws(() => ChatStore.open(other))
      assert.ok(existsSync(other))
    })
  })

  describe('messages', () => {
    it('addOutgoing / get and the outgoing state machine', () => {
      const m = outgoing({ expiresAt: T0 + 60_000 })
      assert.equal(m.state, 'queued')
      assert.equal(m.attempts, 0)
      assert.equal(m.direction, 'out')
      assert.deepEqual(store.get(m.id), m)

      assert.equal(store.markSent(m.id, T0 + 1), true)
      assert.equal(store.markSent(m.id, T0 + 2), true)
      let got = store.get(m.id)
      assert.equal(got?.state, 'sent')
      assert.equal(got?.attempts, 2)
      assert.equal(got?.lastAttemptAt, T0 + 2)

      assert.equal(store.markDelivered(m.id, T0 + 3), true)
      assert.equal(store.markDelivered(m.id, T0 + 4), false, 'a second receipt changes nothing')
      assert.equal(store.markSent(m.id, T0 + 5), false, 'no resend after delivery')
      assert.equal(store.markFailed(m.id, 'x'), false)
      got = store.get(m.id)
      assert.equal(got?.state, 'delivered')
      assert.equal(got?.deliveredAt, T0 + 3)
      assert.equal(got?.attempts, 2)
    })

    it('markFailed records the reason; a late receipt still marks delivered', () => {
      const m = outgoing()
      assert.equal(store.markFailed(m.id, 'no route'), true)
      assert.equal(store.get(m.id)?.failureReason, 'no route')
      assert.equal(store.markSent(m.id), false)
      assert.equal(store.markDelivered(m.id, T0 + 9), true)
      assert.equal(store.get(m.id)?.state, 'delivered')
      assert.equal(store.markSent(id()), false, 'unknown id')
    })

    it('accepts ids as bytes, refuses malformed ids and duplicate outgoing ids', () => {
      const bytes = new Uint8Array(randomBytes(16))
      const m = outgoing({ id: Buffer.from(bytes).toString('hex').toUpperCase() })
      assert.equal(store.get(bytes)?.id, m.id)
      assert.throws(() => outgoing({ id: m.id }), { name: 'DuplicateMessageError' })
      assert.throws(() => outgoing({ id: 'abc' }), { name: 'InvalidStoreInputError' })
      assert.throws(() => outgoing({ peerNick: 'Not A Nick' }), { name: 'InvalidStoreInputError' })
    })

    it('addIncoming stores a message once (dedup by id)', () => {
      const mid = id()
      const init = { id: mid, peerNick: 'carol', peerFingerprint: 'eeee-ffff-gggg-hhhh', text: 'hi', timestamp: T0, verified: true, verifyReason: 'pinned', storedAt: T0 + 1 }
      assert.equal(store.addIncoming(init), true)
      assert.equal(store.addIncoming({ ...init, text: 'replayed' }), false)
      const got = store.get(mid)
      assert.equal(got?.text, 'hi')
      assert.equal(got?.state, 'received')
      assert.equal(got?.verified, true)
      assert.equal(got?.verifyReason, 'pinned')
      assert.equal(store.history('carol', 10).length, 1)
      assert.equal(store.markDelivered(mid), false, 'incoming messages have no delivery state')
    })

    it('history: both directions with one peer, the last `limit`, oldest first', () => {
      for (let i = 0; i < 5; i++) outgoing({ timestamp: T0 + i * 10 })
      for (let i = 0; i < 5; i++) {
        store.addIncoming({ id: id(), peerNick: 'bob', peerFingerprint: 'f', text: `in ${i}`, timestamp: T0 + i * 10 + 5, verified: false, verifyReason: 'unknown-key' })
      }
      outgoing({ peerNick: 'someone-else' })
      const all = store.history('bob', 100)
      assert.equal(all.length, 10)
      assert.deepEqual(all.map(m => m.timestamp), [...all.map(m => m.timestamp)].sort((a, b) => a - b))
      const last3 = store.history('bob', 3)
      assert.deepEqual(last3, all.slice(-3))
      assert.deepEqual(store.history('nobody', 10), [])
    })

    it('outbox: queued and sent, not delivered, failed or expired; expireOutgoing fails the expired', () => {
      const queued = outgoing({ timestamp: T0 + 1, expiresAt: T0 + 1000 })
      const sent = outgoing({ timestamp: T0 + 2 })
      const delivered = outgoing({ timestamp: T0 + 3 })
      const failed = outgoing({ timestamp: T0 + 4 })
      const expired = outgoing({ timestamp: T0 + 5, expiresAt: T0 + 500 })
      store.markSent(sent.id)
      store.markSent(delivered.id)
      store.markDelivered(delivered.id)
      store.markFailed(failed.id, 'gave up')
      assert.deepEqual(store.outbox(T0 + 600).map(m => m.id), [queued.id, sent.id])
      assert.deepEqual(store.outbox(T0).map(m => m.id), [queued.id, sent.id, expired.id])
      assert.equal(store.expireOutgoing(T0 + 600), 1)
      assert.equal(store.get(expired.id)?.state, 'failed')
      assert.equal(store.get(expired.id)?.failureReason, 'expired')
      assert.deepEqual(store.outbox(T0).map(m => m.id), [queued.id, sent.id])
    })

    it('transaction rolls back everything when it throws', () => {
      const a = id()
      assert.throws(() => store.transaction(() => {
        outgoing({ id: a })
        store.putSurb({ id: 'beef', messageId: a, secret: key(1), expiresAt: T0 })
        throw new Error('boom')
      }), /boom/)
      assert.equal(store.get(a), undefined)
      assert.equal(store.takeSurb('beef'), undefined)
      // nested: the inner failure rolls back only the inner part
      const b = id()
      const c = id()
      store.transaction(() => {
        outgoing({ id: b })
        assert.throws(() => store.transaction(() => { outgoing({ id: c }); throw new Error('inner') }))
      })
      assert.ok(store.get(b))
      assert.equal(store.get(c), undefined)
    })

    it('deliveredAmongLatest answers as history(nick, n).some(out and delivered) does', () => {
      const same = (nick: string, n: number): void => {
        assert.equal(store.deliveredAmongLatest(nick, n), store.history(nick, n).some(m => m.direction === 'out' && m.state === 'delivered'), `${nick}, ${n}`)
      }
      same('bob', 200)
      assert.equal(store.deliveredAmongLatest('bob', 200), false)
      const first = outgoing({ timestamp: T0 })
      same('bob', 200)
      store.markDelivered(first.id, T0 + 1)
      assert.equal(store.deliveredAmongLatest('bob', 200), true)
      assert.equal(store.deliveredAmongLatest('carol', 200), false, 'another contact')
      for (let i = 1; i <= 5; i++) outgoing({ timestamp: T0 + i * 10 })
      for (let i = 1; i <= 3; i++) store.addIncoming({ id: id(), peerNick: 'bob', peerFingerprint: 'f', text: `in ${i}`, timestamp: T0 + 100 + i, verified: true })
      for (const n of [0, 1, 3, 8, 9, 200]) same('bob', n)
      assert.equal(store.deliveredAmongLatest('bob', 8), false, 'the delivered one is the 9th latest')
      assert.equal(store.deliveredAmongLatest('bob', 9), true)
      assert.throws(() => store.deliveredAmongLatest('bob', -1), { name: 'InvalidStoreInputError' })
    })

    it('markSent commits without an fsync of its own and leaves every other commit fsynced (synchronous FULL), also inside a transaction', () => {
      const sync = (): number => Number(store.database.prepare('PRAGMA synchronous').get()?.synchronous)
      assert.equal(sync(), 2, 'FULL')
      const m = outgoing()
      assert.equal(store.markSent(m.id, T0 + 1), true)
      assert.equal(sync(), 2, 'FULL again after markSent')
      store.transaction(() => { assert.equal(store.markSent(m.id, T0 + 2), true) })
      assert.equal(sync(), 2)
      store.close()
      store = ChatStore.open(path)
      assert.equal(store.get(m.id)?.attempts, 2, 'both attempts are in the file after a clean close')
      assert.equal(sync(), 2)
    })
  })

  describe('pins', () => {
    it('new, same, changed (kept pending, not replaced), accept', () => {
      const k1 = key(1)
      const k2 = key(2)
      assert.equal(store.pin('bob', k1, T0), 'new')
      assert.equal(store.pin('bob', k1, T0 + 1), 'same')
      let pin = store.getPin('bob')
      assert.deepEqual(pin, { nick: 'bob', identityKey: k1, fingerprint: fingerprint(k1), firstSeen: T0, verifiedAt: null, accepted: true, pending: null })

      assert.equal(store.pin('bob', k2, T0 + 2), 'changed')
      assert.equal(store.pin('bob', k2, T0 + 3), 'changed', 'still changed until accepted')
      assert.equal(store.pin('bob', k1, T0 + 4), 'same', 'the old key stays pinned')
      pin = store.getPin('bob')
      assert.deepEqual(pin?.identityKey, k1)
      assert.equal(pin?.accepted, false)
      assert.deepEqual(pin?.pending, { identityKey: k2, fingerprint: fingerprint(k2), firstSeen: T0 + 2 })

      assert.equal(store.acceptKey('bob'), true)
      assert.equal(store.acceptKey('bob'), false, 'nothing pending any more')
      pin = store.getPin('bob')
      assert.deepEqual(pin, { nick: 'bob', identityKey: k2, fingerprint: fingerprint(k2), firstSeen: T0 + 2, verifiedAt: null, accepted: true, pending: null })
      assert.equal(store.pin('bob', k2), 'same')
      assert.equal(store.pin('bob', k1), 'changed')
    })

    it('reject keeps the old key; contacts lists every pin sorted', () => {
      store.pin('carol', key(3), T0)
      store.pin('alice', key(4), T0)
      store.pin('carol', key(5), T0)
      assert.equal(store.rejectKey('carol'), true)
      assert.equal(store.rejectKey('carol'), false)
      const carol = store.getPin('carol')
      assert.deepEqual(carol?.identityKey, key(3))
      assert.equal(carol?.accepted, true)
      assert.equal(carol?.pending, null)
      assert.deepEqual(store.contacts().map(p => p.nick), ['alice', 'carol'])
      assert.equal(store.getPin('nobody'), undefined)
      assert.throws(() => store.pin('Bad Nick', key(1)), { name: 'InvalidStoreInputError' })
      assert.throws(() => store.pin('bob', new Uint8Array(31)), { name: 'InvalidStoreInputError' })
    })
  })

  describe('SURBs', () => {
    it('put, take once, expire', () => {
      const mid = id()
      const secret = key()
      store.putSurb({ id: 'a1b2', messageId: mid, secret, expiresAt: T0 + 100 })
      assert.throws(() => store.putSurb({ id: 'a1b2', messageId: mid, secret, expiresAt: T0 }), { name: 'DuplicateSurbError' })
      assert.deepEqual(store.takeSurb('A1B2'), { id: 'a1b2', messageId: mid, secret, expiresAt: T0 + 100 })
      assert.equal(store.takeSurb('a1b2'), undefined, 'single use')

      store.putSurb({ id: Uint8Array.of(1, 2), messageId: mid, secret, expiresAt: T0 + 100 })
      assert.equal(store.takeSurb('0102', T0 + 100), undefined, 'expired at take time')
      assert.equal(store.takeSurb('0102'), undefined, 'and gone')

      store.putSurb({ id: 'aa', messageId: mid, secret, expiresAt: T0 + 10 })
      store.putSurb({ id: 'bb', messageId: mid, secret, expiresAt: T0 + 20 })
      store.putSurb({ id: 'cc', messageId: mid, secret, expiresAt: T0 + 30 })
      assert.equal(store.expireSurbs(T0 + 20), 2)
      assert.equal(store.takeSurb('aa'), undefined)
      assert.equal(store.takeSurb('cc')?.expiresAt, T0 + 30)
    })
  })

  it('everything is still there after close and reopen', () => {
    const out = outgoing({ expiresAt: T0 + 1000 })
    store.markSent(out.id, T0 + 1)
    const inId = id()
    store.addIncoming({ id: inId, peerNick: 'bob', peerFingerprint: 'f', text: 'yo 👋', timestamp: T0 + 2, verified: false, verifyReason: 'key-changed', storedAt: T0 + 3 })
    store.pin('bob', key(1), T0)
    store.pin('bob', key(2), T0 + 1)
    const secret = key()
    store.putSurb({ id: 'ff00', messageId: out.id, secret, expiresAt: T0 + 1000 })
    const before = { history: store.history('bob', 10), pin: store.getPin('bob') }
    store.close()

    store = ChatStore.open(path)
    assert.deepEqual(store.history('bob', 10), before.history)
    assert.deepEqual(store.getPin('bob'), before.pin)
    assert.deepEqual(store.outbox(T0).map(m => m.id), [out.id])
    assert.equal(store.addIncoming({ id: inId, peerNick: 'bob', peerFingerprint: 'f', text: 'again', timestamp: T0, verified: true }), false)
    assert.deepEqual(store.takeSurb('ff00')?.secret, secret)
  })

  it('a writer killed with SIGKILL mid-loop leaves every row it reported written', async () => {
    store.close()
    const fixture = join(import.meta.dirname, 'fixtures', 'store-writer.ts')
    const child = spawn(process.execPath, [fixture, path], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
    const exited = new Promise<NodeJS.Signals | number | null>(resolve => {
      child.on('exit', (code, signal) => { resolve(signal ?? code) })
    })
    const lines: string[] = []
    const rl = createInterface({ input: child.stdout })
    const closed = new Promise<void>(resolve => { rl.on('close', resolve) })
    const enough = new Promise<void>((resolve, reject) => {
      rl.on('line', (line) => {
        lines.push(line)
        if (lines.filter(l => l.startsWith('out ')).length >= 150) resolve()
      })
      void exited.then(() => { reject(new Error(`writer exited early: ${stderr}`)) })
    })
    try {
      await within(enough, 60_000, 'the writer reporting 150 messages')
    } finally {
      child.kill('SIGKILL')
    }
    assert.equal(await within(exited, 10_000, 'the writer exiting'), 'SIGKILL')
    await within(closed, 10_000, 'the writer output closing')
    assert.equal(lines[0], 'ready')

    store = ChatStore.open(path)
    const counts = { out: 0, surb: 0, sent: 0, in: 0, pin: 0 }
    for (const line of lines.slice(1)) {
      const [kind, a, b] = line.split(' ')
      switch (kind) {
        case 'out':
          assert.equal(store.get(a)?.direction, 'out', line)
          counts.out++
          break
        case 'surb':
          assert.equal(store.takeSurb(a)?.messageId, b, line)
          counts.surb++
          break
        case 'sent':
          assert.ok((store.get(a)?.attempts ?? 0) >= 1, line)
          counts.sent++
          break
        case 'in':
          assert.equal(store.get(a)?.state, 'received', line)
          counts.in++
          break
        case 'pin':
          assert.ok(store.getPin(a), line)
          counts.pin++
          break
        default:
          assert.fail(`unexpected line ${JSON.stringify(line)}`)
      }
    }
    assert.ok(counts.out >= 150 && counts.surb === counts.out && counts.sent > 0 && counts.in > 0 && counts.pin > 0)
    store.close()
    const db = new DatabaseSync(path)
    assert.equal(db.prepare('PRAGMA integrity_check').get()?.integrity_check, 'ok')
    db.close()
  })
})
