/**
 * Where a user's mailboxes live (node/mailboxes.ts `pickRelay`; protocols/onion/SPEC.md "Grinding
 * roles"): on relays of the exit role, the position complementary to the guard's, drawn by /16 with the
 * position weights (paths.ts `drawForPosition`), in different /16s; with no exit-role relay left, on
 * another relay with a warning, never silently and never on the entry relay.
 *
 * The draw is tested on its own (the private `pickRelay` of a client that holds no mailbox: no network
 * is needed to choose), then through `start` against real mailbox services (protocols/mailbox/
 * service.ts on SQLite stores) with an in-memory stand-in for the onion client, as in
 * test/mailbox-client.test.ts. The statistical checks allow 7 binomial standard errors: a false
 * alarm about once in 10^11 runs.
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
import { relayRole } from '../node/roles.ts'
import type { RelayRole } from '../node/roles.ts'
import { MailboxService } from '../protocols/mailbox/service.ts'
import { MailboxStore } from '../protocols/mailbox/store.ts'
import type { OnionClient } from '../protocols/onion/client.ts'
import type { PathRelay } from '../protocols/onion/paths.ts'
import { StandInReplyBlocks } from './helpers/reply-blocks.ts'
import { mailboxKeysDb } from './helpers/mailbox-keys-db.ts'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

/** A peer id (as text) of the given role: the first of `base-0`, `base-1`, ... that has it (one in two). */
function withRole (base: string, role: RelayRole): string {
  for (let i = 0; i < 1000; i++) if (relayRole(`${base}-${i}`) === role) return `${base}-${i}`
  throw new Error('no name of that role in 1,000 tries')
}

function relay (base: string, role: RelayRole, subnet: string): PathRelay {
  return { address: new Uint8Array(randomBytes(32)), onionKey: new Uint8Array(randomBytes(32)), peerId: withRole(base, role), subnets: [subnet] }
}

/** `pickRelay` of a client holding no mailbox, over `relays`, with entry relay `entry` (and `guards`). */
function drawer (relays: PathRelay[], entry: string, warnings: string[], db: DatabaseSync, guards: string[] = []): () => PathRelay | undefined {
  const c = new MailboxClient({
    onion: {} as unknown as OnionClient,
    keys: new MailboxKeys(db),
    relays: () => relays,
    entryPeerId: () => entry,
    guards: () => guards,
    subnetOf: r => r.subnets?.[0],
    record: () => new Uint8Array(1),
    onItem: async () => true,
    onWarning: w => { warnings.push(w) }
  })
  const pick = (c as unknown as { pickRelay: () => PathRelay | undefined }).pickRelay
  return () => pick.call(c)
}

describe('mailbox relays: the exit role', { timeout: 120_000 }, () => {
  let db: DatabaseSync
  beforeEach(() => { db = mailboxKeysDb() })
  afterEach(() => { db.close() })

  it('draws only exit-role relays while any exists, each /16 by its position weight, never an all-entry /16', () => {
    const relays: PathRelay[] = [
      // a /16 of ten exits weighs what a /16 of one does
      ...Array.from({ length: 10 }, (_, i) => relay(`a${i}`, 'exit', 'ip4:10.1')),
      ...[2, 3, 4, 5].map(n => relay(`b${n}`, 'exit', `ip4:10.${n}`)),
      // a /16 of both roles weighs half for the position
      relay('g-exit', 'exit', 'ip4:10.6'), relay('g-entry', 'entry', 'ip4:10.6'),
      // a /16 of entry relays (an operator that made them all entry relays): never a mailbox
      ...Array.from({ length: 10 }, (_, i) => relay(`f${i}`, 'entry', 'ip4:10.7'))
    ]
    const warnings: string[] = []
    const draw = drawer(relays, relays[relays.length - 1].peerId, warnings, db)
    const DRAWS = 20_000
    const bySubnet = new Map<string, number>()
    for (let i = 0; i < DRAWS; i++) {
      const r = draw()
      assert.ok(r != null)
      assert.equal(relayRole(r.peerId), 'exit', 'a mailbox on an entry-role relay while exits exist')
      bySubnet.set(r.subnets![0], (bySubnet.get(r.subnets![0]) ?? 0) + 1)
    }
    assert.deepEqual(warnings, [])
    // weights in halves: 2 for each all-exit /16 (five of them), 1 for the mixed one: 11 in all
    const expect = (subnet: string, p: number): void => {
      const share = (bySubnet.get(subnet) ?? 0) / DRAWS
      const se = Math.sqrt(p * (1 - p) / DRAWS)
      assert.ok(Math.abs(share - p) <= 7 * se, `${subnet}: ${share} against ${p} ± 7 × ${se.toFixed(4)}`)
    }
    expect('ip4:10.1', 2 / 11)
    expect('ip4:10.2', 2 / 11)
    expect('ip4:10.6', 1 / 11)
    assert.equal(bySubnet.get('ip4:10.7') ?? 0, 0)
  })

  it('with no exit-role relay, any relay but the entry relay, with a warning', () => {
    const relays = Array.from({ length: 4 }, (_, i) => relay(`e${i}`, 'entry', `ip4:10.${i + 1}`))
    const warnings: string[] = []
    const draw = drawer(relays, relays[0].peerId, warnings, db)
    const seen = new Set<string>()
    for (let i = 0; i < 300; i++) {
      const r = draw()
      assert.ok(r != null)
      assert.notEqual(r.peerId, relays[0].peerId, 'the entry relay is never a mailbox relay')
      seen.add(r.peerId)
    }
    // three candidates, 300 uniform draws: one left out with odds 3 × (2/3)^300, about 1e-52
    assert.equal(seen.size, 3)
    assert.equal(warnings.length, 300)
    assert.match(warnings[0], /too few exit relays/)
  })

  it('with no exit-role relay, never one of the guards while another relay is left; a guard only when none is, with a warning', () => {
    // the lab's churn (2026-12-03): a mailbox on the second guard, which became the entry relay when
    // the first guard went down, could not be fetched, and every message in it waited out the run
    const relays = Array.from({ length: 5 }, (_, i) => relay(`n${i}`, 'entry', `ip4:10.${i + 1}`))
    const [entry, guard2, guard3, free] = relays.map(r => r.peerId)
    const warnings: string[] = []
    const draw = drawer(relays, entry, warnings, db, [entry, guard2, guard3])
    const seen = new Set<string>()
    for (let i = 0; i < 200; i++) {
      const r = draw()
      assert.ok(r != null)
      seen.add(r.peerId)
    }
    // the two relays that are no guard, each drawn (left out with odds 2 × 2^-200)
    assert.deepEqual([...seen].sort(), [free, relays[4].peerId].sort())
    assert.ok(warnings.every(w => /too few exit relays/.test(w)), 'no guard was drawn, so no warning about one')

    // a network of the guards alone: a guard, never the entry relay, with a warning saying so
    const onlyGuards = drawer(relays.slice(0, 3), entry, warnings, db, [entry, guard2, guard3])
    warnings.length = 0
    const got = new Set<string>()
    for (let i = 0; i < 100; i++) got.add(onlyGuards()?.peerId ?? 'none')
    assert.deepEqual([...got].sort(), [guard2, guard3].sort())
    assert.ok(warnings.some(w => /goes on one of your guards/.test(w)))
  })
})

describe('mailbox relays through start: real mailbox services', { timeout: 120_000 }, () => {
  let root: string
  let db: DatabaseSync
  let services: Array<{ service: MailboxService, store: MailboxStore }>
  let clients: MailboxClient[]

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'p2pchat-mailbox-role-'))
    db = mailboxKeysDb()
    services = []
    clients = []
  })
  afterEach(() => {
    for (const c of clients) c.stop()
    for (const s of services) { s.service.stop(); s.store.close() }
    db.close()
    rmSync(root, { recursive: true, force: true })
  })

  /** A client over `relays`, each backed by a real mailbox service; the onion stand-in delivers at once. */
  function client (relays: PathRelay[], entry: string, warnings: string[]): MailboxClient {
    const blocks = new StandInReplyBlocks()
    const byPeer = new Map<string, MailboxService>()
    for (const r of relays) {
      const dir = join(root, r.peerId)
      mkdirSync(dir, { mode: 0o700 })
      const store = MailboxStore.open(MailboxStore.pathIn(dir))
      const service = new MailboxService({
        store,
        sendThroughReplyBlock: (block, payload) => { blocks.deliver(block, payload) },
        onRecord: () => {}
      })
      service.start()
      services.push({ service, store })
      byPeer.set(r.peerId, service)
    }
    const onion = {
      replyBlock: (onReply: (payload: Uint8Array) => void) => blocks.make(onReply),
      request: async (final: PathRelay, _service: number, request: Uint8Array): Promise<Uint8Array> => {
        const service = byPeer.get(final.peerId)
        if (service == null) throw new Error('no such relay')
        return await new Promise<Uint8Array>(resolve => { service.handle(request, onion.replyBlock(resolve).surb) })
      },
      send: (): void => {}
    }
    const c = new MailboxClient({
      onion: onion as unknown as OnionClient,
      keys: new MailboxKeys(db),
      relays: () => relays,
      entryPeerId: () => entry,
      subnetOf: r => r.subnets?.[0],
      record: () => new Uint8Array(100).fill(7),
      onItem: async () => true,
      onWarning: w => { warnings.push(w) },
      timing: { stockIntervalMs: 60_000, requestTimeoutMs: 5_000 }
    })
    clients.push(c)
    return c
  }

  const relayOf = (relays: PathRelay[], address: Uint8Array): PathRelay => {
    const r = relays.find(x => hex(x.address) === hex(address))
    assert.ok(r != null)
    return r
  }

  it('two mailboxes on exit-role relays in two /16s, no warning, although entry-role relays are the majority', async () => {
    const relays = [
      relay('x1', 'exit', 'ip4:10.1'), relay('x2', 'exit', 'ip4:10.2'),
      ...Array.from({ length: 6 }, (_, i) => relay(`n${i}`, 'entry', `ip4:10.${i + 3}`))
    ]
    const warnings: string[] = []
    const boxes = await client(relays, relays[2].peerId, warnings).start()
    assert.equal(boxes.length, 2)
    const on = boxes.map(b => relayOf(relays, b.relay))
    assert.deepEqual(on.map(r => relayRole(r.peerId)), ['exit', 'exit'])
    assert.notEqual(on[0].subnets![0], on[1].subnets![0])
    assert.deepEqual(warnings, [])
  })

  it('one exit in a /16: the second mailbox on an exit in that /16 before an entry-role relay elsewhere', async () => {
    const relays = [
      relay('x1', 'exit', 'ip4:10.1'), relay('x2', 'exit', 'ip4:10.1'),
      ...Array.from({ length: 4 }, (_, i) => relay(`n${i}`, 'entry', `ip4:10.${i + 2}`))
    ]
    const warnings: string[] = []
    const boxes = await client(relays, relays[2].peerId, warnings).start()
    assert.deepEqual(boxes.map(b => relayOf(relays, b.relay).peerId).sort(), [relays[0].peerId, relays[1].peerId].sort())
    assert.deepEqual(warnings, [])
  })

  it('a small network of entry-role relays only still gets its mailboxes, with a warning, never on the entry relay', async () => {
    const relays = Array.from({ length: 3 }, (_, i) => relay(`n${i}`, 'entry', `ip4:10.${i + 1}`))
    const warnings: string[] = []
    const boxes = await client(relays, relays[0].peerId, warnings).start()
    assert.equal(boxes.length, 2)
    assert.ok(boxes.every(b => relayOf(relays, b.relay).peerId !== relays[0].peerId))
    assert.ok(warnings.some(w => /too few exit relays/.test(w)), warnings.join('; '))
  })
})
