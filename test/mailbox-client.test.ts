/**
 * The user's side of its mailboxes (node/mailboxes.ts) against real mailbox services (protocols/mailbox/
 * service.ts, each on its own SQLite store), with an in-memory stand-in for the onion client: a request
 * reaches the relay's service at once and its answer comes back through the request's reply block; a
 * stocked reply block hands the relay's push to the client. A relay that is "down" is missing from the
 * live relays and its requests fail as unanswered. Issue 15 (churn lab): a user restarted while one of
 * her mailbox relays was down (or not yet heard on gossip) never fetched that mailbox again in that
 * run, although senders holding her previous record kept depositing there: every such message was lost.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { DatabaseSync } from 'node:sqlite'
import { afterEach, beforeEach, describe, it } from 'node:test'
import { MailboxKeys } from '../node/mailbox-keys.ts'
import { MailboxClient } from '../node/mailboxes.ts'
import type { MailboxAddress, MailboxTiming } from '../node/mailboxes.ts'
import { buildDeposit, decodeMailboxPayload } from '../protocols/mailbox/client.ts'
import { MailboxService } from '../protocols/mailbox/service.ts'
import { MailboxStore } from '../protocols/mailbox/store.ts'
import type { OnionClient } from '../protocols/onion/client.ts'
import type { PathRelay } from '../protocols/onion/paths.ts'
import { waitFor } from './helpers/wait.ts'
import { StandInReplyBlocks } from './helpers/reply-blocks.ts'
import { mailboxKeysDb } from './helpers/mailbox-keys-db.ts'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

/** A relay of the test: its mailbox service can be restarted on the same store (blocks are lost, items kept). */
interface FakeRelay { path: PathRelay, dir: string, store: MailboxStore, service: MailboxService }

describe('MailboxClient across a restart while a mailbox relay is down', { timeout: 120_000 }, () => {
  let root: string
  let relays: FakeRelay[]
  let down: Set<string>
  /** reply blocks by their bytes: what answers or pushes through them reach */
  let blocks: StandInReplyBlocks
  let db: DatabaseSync
  let clients: MailboxClient[]
  /** the user's entry relay (peer id) */
  let entry: string
  /** requests to a relay in this map wait here (to deliver them in another order) */
  let held: Map<string, Array<() => void>>

  function startService (r: Omit<FakeRelay, 'service'> & { service?: MailboxService }): MailboxService {
    r.service?.stop()
    const service = new MailboxService({
      store: r.store,
      // a push or an ACK lost to a dead relay goes again soon
      limits: { repushIntervalMs: 200, sweepIntervalMs: 100 },
      sendThroughReplyBlock: (block, payload) => {
        if (down.has(r.path.peerId)) return
        blocks.deliver(block, payload)
      },
      onRecord: () => {}
    })
    service.start()
    return service
  }

  function addRelay (): FakeRelay {
    const i = relays.length
    const dir = join(root, `relay-${i}`)
    mkdirSync(dir, { mode: 0o700 })
    const store = MailboxStore.open(MailboxStore.pathIn(dir))
    const r: FakeRelay = { path: { address: new Uint8Array(randomBytes(32)), onionKey: new Uint8Array(randomBytes(32)), peerId: `relay-${i}` }, dir, store, service: undefined as unknown as MailboxService }
    r.service = startService(r)
    relays.push(r)
    return r
  }

  const onion = {
    replyBlock: (onReply: (payload: Uint8Array) => void) => blocks.make(onReply),
    request: async (final: PathRelay, _service: number, request: Uint8Array): Promise<Uint8Array> => {
      const relay = relays.find(r => r.path.peerId === final.peerId)
      if (relay == null || down.has(final.peerId)) throw Object.assign(new Error('no answer'), { name: 'AnswerTimeoutError' })
      return await new Promise<Uint8Array>((resolve) => {
        const deliver = (): void => { relay.service.handle(request, onion.replyBlock(resolve).surb) }
        const queue = held.get(final.peerId)
        if (queue != null) queue.push(deliver)
        else deliver()
      })
    },
    // like OnionClient.send on a link that holds nothing back: the packet has left when send returns
    send: (final: PathRelay, _service: number, request: Uint8Array, opts: { departed?: (ok: boolean) => void } = {}): void => {
      const relay = relays.find(r => r.path.peerId === final.peerId)
      if (relay != null && !down.has(final.peerId)) relay.service.handle(request, undefined)
      opts.departed?.(true)
    }
  }

  function client (received: string[], timing: Partial<MailboxTiming> = {}): MailboxClient {
    // every reading of the clock a millisecond later: two REGISTERs never carry one timestamp
    let clock = Date.now()
    const c = new MailboxClient({
      now: () => Math.max(++clock, Date.now()),
      onion: onion as unknown as OnionClient,
      keys: new MailboxKeys(db),
      relays: () => relays.filter(r => !down.has(r.path.peerId)).map(r => r.path),
      entryPeerId: () => entry,
      record: () => new Uint8Array(100).fill(7),
      onItem: async (item) => { received.push(hex(item)); return true },
      timing: { stockIntervalMs: 50, requestTimeoutMs: 1_000, ...timing }
    })
    clients.push(c)
    return c
  }

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'p2pchat-mailbox-client-'))
    down = new Set()
    blocks = new StandInReplyBlocks()
    clients = []
    entry = 'entry'
    held = new Map()
    relays = []
    for (let i = 0; i < 4; i++) addRelay()
    db = mailboxKeysDb()
  })

  afterEach(() => {
    for (const c of clients) c.stop()
    for (const r of relays) { r.service.stop(); r.store.close() }
    db.close()
    rmSync(root, { recursive: true, force: true })
  })

  /** Senders holding her record deposit 3 items into each mailbox; the items (hex). */
  async function depositInto (boxes: MailboxAddress[]): Promise<string[]> {
    const sent: string[] = []
    for (const box of boxes) {
      const relay = relays.find(r => hex(r.path.address) === hex(box.relay))
      assert.ok(relay != null)
      for (let i = 0; i < 3; i++) {
        const item = new Uint8Array(randomBytes(300))
        const answer = await onion.request(relay.path, 1, buildDeposit(box.mailboxId, item))
        const d = decodeMailboxPayload(answer)
        assert.ok(d.ok && d.answer.kind === 'stored')
        sent.push(hex(item))
      }
    }
    return sent
  }

  const acknowledged = (boxes: MailboxAddress[]): boolean =>
    boxes.every(b => relays.every(r => r.store.getMailbox(b.mailboxId) == null || r.store.items(b.mailboxId).length === 0))

  it('every item stored in a mailbox of the previous run is fetched once its relay is back, also after the relay restarted', async () => {
    const before = client([])
    const boxes = await before.start()
    assert.equal(boxes.length, 2)
    // the user is killed: nothing drains her mailboxes, and the blocks she stocked end at a dead address
    before.stop()
    blocks.clear()

    const sent = await depositInto(boxes)

    // one mailbox relay is down (killed, or not yet heard on gossip) while she starts again on her store
    const gone = relays.find(r => hex(r.path.address) === hex(boxes[0].relay))
    assert.ok(gone != null)
    down.add(gone.path.peerId)
    const received: string[] = []
    const after = client(received)
    const now = await after.start()
    assert.ok(now.length >= 1)
    await waitFor(() => received.length >= 3, () => `the items of the mailbox whose relay is up (got ${received.length})`, 10_000)

    // the relay comes back, restarted on its data directory: items kept, reply blocks and registration state lost
    gone.service = startService(gone)
    down.delete(gone.path.peerId)
    await waitFor(() => sent.every(s => received.includes(s)),
      () => `all ${sent.length} items (got ${sent.filter(s => received.includes(s)).length}; the relay that was down still holds ${gone.store.items(boxes[0].mailboxId).length})`, 10_000)
    // acknowledged: nothing waits any more (a second copy, if a push went again before its ACK, is the chat layer's to drop)
    await waitFor(() => acknowledged(boxes), 'every item acknowledged', 10_000)
  })

  it('a mailbox on the entry relay of her next run waits, kept, and is fetched once her entry relay is another', async () => {
    const before = client([])
    const boxes = await before.start()
    assert.equal(boxes.length, 2)
    before.stop()
    blocks.clear()
    const sent = await depositInto(boxes)

    // her next run enters through the relay of one of her mailboxes (every other entry failed)
    const onEntry = relays.find(r => hex(r.path.address) === hex(boxes[0].relay))
    assert.ok(onEntry != null)
    entry = onEntry.path.peerId
    const received: string[] = []
    const after = client(received)
    const now = await after.start()
    assert.ok(!now.some(b => hex(b.mailboxId) === hex(boxes[0].mailboxId)), 'no mailbox on the entry relay is named or registered')
    await waitFor(() => received.length >= 3, () => `the items of the other mailbox (got ${received.length})`, 10_000)
    assert.ok(!received.some(r => sent.slice(0, 3).includes(r)), 'nothing fetched through the entry relay')

    // a new entry relay (chat-node.ts registers every mailbox again on that): the kept one is fetched
    entry = 'another entry'
    await after.refreshRecord()
    await waitFor(() => sent.every(s => received.includes(s)),
      () => `all ${sent.length} items (got ${sent.filter(s => received.includes(s)).length})`, 10_000)
    await waitFor(() => acknowledged(boxes), 'every item acknowledged', 10_000)
  })

  it('a REGISTER refused as stale (a newer one of ours overtook it in the mixes) keeps the mailbox in use', async () => {
    const received: string[] = []
    const c = client(received)
    const boxes = await c.start()
    assert.equal(boxes.length, 2)
    const relay = relays.find(r => hex(r.path.address) === hex(boxes[0].relay))
    assert.ok(relay != null)

    // two re-registrations under way at once (a new entry relay while another is pending); the mixes
    // deliver the newer first, so the relay refuses the older as stale
    held.set(relay.path.peerId, [])
    const first = c.refreshRecord()
    const second = c.refreshRecord()
    await waitFor(() => (held.get(relay.path.peerId)?.length ?? 0) >= 2, 'both REGISTERs under way', 5_000)
    const queue = held.get(relay.path.peerId) ?? []
    held.delete(relay.path.peerId)
    for (const deliver of queue.reverse()) deliver()
    await Promise.all([first, second])

    const sent = await depositInto(boxes)
    await waitFor(() => sent.every(s => received.includes(s)),
      () => `all ${sent.length} items (got ${sent.filter(s => received.includes(s)).length}; mailboxes in use ${c.addresses().length})`, 10_000)
    await waitFor(() => acknowledged(boxes), 'every item acknowledged', 10_000)
  })

  it('restarted again and again, each time with another mailbox relay down: at most `want` mailboxes in use, the replaced ones drained (every item deposited by senders holding older records fetched) and then released', async () => {
    for (let i = 0; i < 4; i++) addRelay()
    const keys = new MailboxKeys(db)
    // a record names a mailbox this long here (a week and a half in the product)
    const drainMs = 1_500
    const received: string[] = []
    const sent: string[] = []
    let c = client(received, { drainMs })
    let boxes = await c.start()
    assert.equal(boxes.length, 2)
    const named: MailboxAddress[] = [...boxes]
    for (let restart = 0; restart < 5; restart++) {
      c.stop()
      blocks.clear()
      for (const r of relays) down.delete(r.path.peerId)
      // senders holding any of her records so far deposit into every mailbox those named
      sent.push(...await depositInto(named.filter(b => keys.get(b.mailboxId) != null)))
      // one of the mailboxes in use now has its relay down as she starts again
      const gone = relays.find(r => hex(r.path.address) === hex(boxes[restart % 2].relay))
      assert.ok(gone != null)
      down.add(gone.path.peerId)
      c = client(received, { drainMs })
      boxes = await c.start()
      assert.equal(boxes.length, 2, 'two mailboxes in use, on relays that are up')
      assert.ok(boxes.every(b => hex(b.relay) !== hex(gone.path.address)))
      named.push(...boxes.filter(b => !named.some(n => hex(n.mailboxId) === hex(b.mailboxId))))
      const inUse = keys.active()
      assert.equal(inUse.length, 2, `restart ${restart + 1}: only the two in use are not retired (held ${keys.all().length})`)
      // the relay comes back: what waited in the mailbox she replaced is fetched (draining)
      down.delete(gone.path.peerId)
      await waitFor(() => sent.every(x => received.includes(x)),
        () => `restart ${restart + 1}: all ${sent.length} items (got ${sent.filter(x => received.includes(x)).length}; draining ${c.draining().length})`, 20_000)
    }
    // past drainMs, each replaced mailbox is released once the relay says nothing waits there: its key erased
    await waitFor(() => c.draining().length === 0 && keys.all().length === 2,
      () => `the replaced mailboxes released (draining ${c.draining().length}, keys ${keys.all().length})`, 20_000)
    assert.ok(c.stats.released >= 5, `released ${c.stats.released}`)
    assert.deepEqual(keys.all().map(k => hex(k.id)).sort(), c.addresses().map(a => hex(a.mailboxId)).sort(), 'only the mailboxes in use are held')
    // nothing was lost: every item was fetched and acknowledged
    await waitFor(() => acknowledged(named), 'every item acknowledged', 10_000)
  })

  it('a replaced mailbox whose relay never comes back is erased once its items have expired there (drainMs + itemAgeMs), not before', async () => {
    const keys = new MailboxKeys(db)
    let c = client([], { drainMs: 300, itemAgeMs: 700 })
    const boxes = await c.start()
    c.stop()
    const gone = relays.find(r => hex(r.path.address) === hex(boxes[0].relay))
    assert.ok(gone != null)
    down.add(gone.path.peerId)
    const started = Date.now()
    c = client([], { drainMs: 300, itemAgeMs: 700 })
    await c.start()
    assert.equal(c.draining().length, 1)
    await waitFor(() => keys.get(boxes[0].mailboxId) == null, 'the key of the mailbox on the dead relay erased', 10_000)
    assert.ok(Date.now() - started >= 1_000, 'not before drainMs + itemAgeMs')
    assert.equal(keys.all().length, 2)
  })
})
