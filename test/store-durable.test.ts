/**
 * Durable commits whose fsync runs off the event loop (protocols/sqlite.ts WalSync, through ChatStore):
 * `addOutgoing` and `deferredTransaction` return once committed, `durable()` resolves only once a sync
 * of the WAL that started after them has ended, commits made meanwhile share one sync, and a failed
 * sync is never reported as durable. The WAL sync is a stub the test ends by hand (`datasync`).
 */
import { afterEach, beforeEach, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ChatStore } from '../node/store.ts'
import { within } from './helpers/wait.ts'

const T0 = 1_700_000_000_000

/** A WAL sync the test ends: each call waits until `end(i)` or `fail(i)`. */
class HeldSync {
  readonly calls: Array<{ fd: number, resolve: () => void, reject: (err: Error) => void }> = []
  readonly datasync = async (fd: number): Promise<void> => {
    await new Promise<void>((resolve, reject) => { this.calls.push({ fd, resolve, reject }) })
  }

  end (i: number): void { this.calls[i].resolve() }
  fail (i: number, err: Error): void { this.calls[i].reject(err) }
}

/** Whether `p` has settled (after the microtasks and timers queued so far ran). */
async function settled (p: Promise<unknown>): Promise<boolean> {
  let done = false
  p.then(() => { done = true }, () => { done = true })
  await new Promise(resolve => setImmediate(resolve))
  return done
}

describe('ChatStore durable commits (sync off the event loop)', () => {
  let dir: string
  let path: string
  let held: HeldSync
  let store: ChatStore

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'p2pchat-durable-'))
    path = ChatStore.pathIn(dir)
    held = new HeldSync()
    store = ChatStore.open(path, { datasync: held.datasync })
  })

  afterEach(() => {
    for (const c of held.calls) c.resolve()
    store.close()
    rmSync(dir, { recursive: true, force: true })
  })

  function outgoing (): string {
    const id = randomBytes(16).toString('hex')
    store.addOutgoing({ id, peerNick: 'bob', peerFingerprint: '', text: 'hello', timestamp: T0 }, T0)
    return id
  }

  it('addOutgoing returns committed; durable() waits for the WAL sync while the event loop runs on', async () => {
    const id = outgoing()
    assert.equal(store.get(id)?.state, 'queued', 'committed and readable at once')
    const durable = store.durable()
    assert.equal(held.calls.length, 1, 'one sync of the WAL started')
    // the event loop is free while the sync runs: a timer fires before durable() resolves
    let timerRan = false
    await within(new Promise<void>(resolve => setTimeout(() => { timerRan = true; resolve() }, 1)), 5_000, 'a timer during the sync')
    assert.equal(timerRan, true)
    assert.equal(await settled(durable), false, 'not durable before the sync ended')
    held.end(0)
    await within(durable, 5_000, 'durable() after the sync')
    // nothing new since: at once, no second sync
    await within(store.durable(), 5_000, 'durable() with nothing to sync')
    assert.equal(held.calls.length, 1)
  })

  it('commits made while a sync runs share the next one (group commit); each caller waits for a sync that started after its commit', async () => {
    outgoing()
    const first = store.durable()
    outgoing()
    const second = store.durable()
    store.deferredTransaction(() => { store.oweReceipt(randomBytes(16), 'bob', T0) })
    const third = store.durable()
    assert.equal(held.calls.length, 1, 'the second sync waits for the first to end')
    held.end(0)
    await within(first, 5_000, 'the first commit durable')
    assert.equal(await settled(second), false, 'the first sync may have started before the second commit')
    assert.equal(held.calls.length, 2, 'one more sync, for both later commits')
    held.end(1)
    await within(Promise.all([second, third]), 5_000, 'the later commits durable')
    assert.equal(held.calls.length, 2)
  })

  it('a failed sync rejects, and every later durable() too (no fsync after a failed one is trusted)', async () => {
    outgoing()
    const first = store.durable()
    held.fail(0, Object.assign(new Error('EIO: i/o error'), { code: 'EIO' }))
    await assert.rejects(within(first, 5_000, 'the failed sync'), { name: 'WalSyncError' })
    outgoing()
    await assert.rejects(within(store.durable(), 5_000, 'durable after a failed sync'), { name: 'WalSyncError' })
    assert.equal(held.calls.length, 1, 'no second sync is trusted')
  })

  it('closing lets a running sync end; durable() after close rejects', async () => {
    outgoing()
    const running = store.durable()
    store.close()
    held.end(0)
    await within(running, 5_000, 'the sync under way at close')
    await assert.rejects(store.durable(), { name: 'StoreClosedError' })
  })

  it('with the real fdatasync (the default), durable() resolves and the row is in the file', async () => {
    store.close()
    store = ChatStore.open(path)
    const id = outgoing()
    await within(store.durable(), 10_000, 'a real fdatasync of the WAL')
    store.close()
    store = ChatStore.open(path, { datasync: held.datasync })
    assert.equal(store.get(id)?.state, 'queued')
  })
})
