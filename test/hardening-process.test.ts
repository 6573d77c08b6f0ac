/**
 * Real `p2pchat` processes of protocol version 2 under faults: a bootstrap, 4 relays (`start --relay`),
 * alice and bob (clients of an entry relay, logging with DEBUG=p2pchat:*,libp2p:*).
 * - crash: alice SIGKILLed mid-burst: her database is intact, every message she reported sent is in
 *   it, and after a restart on the same data directory each reaches bob exactly once;
 * - bob SIGKILLed: what alice sends meanwhile is stored in his mailboxes; restarted on his data
 *   directory he keeps his identity and gets each once;
 * - the bootstrap SIGKILLed after the network formed: the chat goes on;
 * - secrets: key and database files 0600, no message text or key material (identity, onion and
 *   mailbox keys) in any log;
 * - a data directory owned by another user, or open to others, is refused;
 * - churn (last): 100 messages in flight, the relay holding the most mailbox items SIGKILLed: both
 *   users say at once that it stopped answering and stop listing it, paths avoid it meanwhile; restarted
 *   on its data directory (its mailboxes are durable, its keys and reply blocks are not): every message
 *   delivered, shown once, none reported failed.
 */
import assert from 'node:assert/strict'
import { chmodSync, chownSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { after, before, describe, it } from 'node:test'
import type { CliProcess } from './helpers/cli.ts'
import { runCli } from './helpers/cli.ts'
import { CliNetwork, TEST_RELAY_TIMING } from './helpers/cli-network.ts'
import { waitFor, within } from './helpers/wait.ts'

type Json = Record<string, unknown>
const DEBUG = 'p2pchat:*,libp2p:*'
const SECRET = 'zebra-quartz-7781'

function events (p: CliProcess, event: string): Json[] { return p.json().filter(o => o.event === event) }
/** The TCP address a relay listens on, from its ready line (to restart it where its descriptor says it is). */
function listenAddrOf (ready: Json): string {
  return String((ready.addrs as string[])[0]).replace(/\/p2p\/.*$/, '')
}
function countIds (list: Json[]): Map<string, number> {
  const m = new Map<string, number>()
  for (const o of list) m.set(String(o.id), (m.get(String(o.id)) ?? 0) + 1)
  return m
}

describe('real processes under faults: churn, crash, restart, bootstrap loss, secrets', { timeout: 600_000 }, () => {
  const net = new CliNetwork()
  const relayEnv = { P2PCHAT_TIMING: JSON.stringify(TEST_RELAY_TIMING) }
  const users: CliProcess[] = []
  let relays: Array<{ proc: CliProcess, ready: Json }>
  let alice: CliProcess
  let bob: CliProcess
  let aliceReady: Json
  let bobReady: Json
  const figures: Record<string, number> = {}

  async function startUser (nick: string): Promise<{ proc: CliProcess, ready: Json }> {
    net.env.DEBUG = DEBUG
    try {
      const u = await net.start(nick)
      users.push(u.proc)
      return u
    } finally { delete net.env.DEBUG }
  }

  before(async () => {
    await net.bootstrap()
    relays = await net.relays(4, { env: relayEnv })
    ;({ proc: alice, ready: aliceReady } = await startUser('alice'))
    ;({ proc: bob, ready: bobReady } = await startUser('bob'))
    await Promise.all([net.waitForRelays(alice, 4), net.waitForRelays(bob, 4)])
  })
  after(async () => {
    console.log('process fault figures', JSON.stringify(figures))
    await net.teardown()
  })

  it('alice SIGKILLed mid-burst: database intact, every message reported stored is kept and later delivered once', async () => {
    const accepted = (): string[] => alice.json().filter(o => typeof o.tag === 'string' && o.tag.startsWith('k') && o.id != null).map(o => String(o.id))
    for (let i = 0; i < 100; i++) alice.send({ cmd: 'send', to: 'bob', text: `crash ${i} ${SECRET}`, tag: `k${i}` })
    await waitFor(() => accepted().length >= 30, '30 sends accepted', 30_000, 5)
    alice.child.kill('SIGKILL')
    await within(alice.exited, 10_000, 'alice dying')
    const ids = [...new Set(accepted())]
    const db = new DatabaseSync(join(net.dataDir('alice'), 'p2pchat.db'), { readOnly: true })
    try {
      assert.equal((db.prepare('PRAGMA integrity_check').get() as { integrity_check: string }).integrity_check, 'ok')
      const rows = db.prepare('SELECT id FROM messages').all().map(r => String(r.id))
      for (const id of ids) assert.ok(rows.includes(id), `message ${id} was reported stored but is not in the database`)
    } finally { db.close() }
    figures.crashAcceptedBeforeKill = ids.length
    const again = await startUser('alice')
    assert.equal(again.ready.fingerprint, aliceReady.fingerprint, 'same identity after the crash')
    alice = again.proc
    // if alice died before her first lookup of bob came back, bob is no contact of hers yet, and the
    // outbox pins nobody by itself (issue 15: a name taken later must not get it): those messages wait
    // with a queued line asking for /retry, which she gives, as a user told so would
    const settled = (id: string): boolean => countIds(events(bob, 'message')).has(id) ||
      events(alice, 'queued').some(o => o.id === id && String(o.reason).includes('not a contact yet'))
    await waitFor(() => ids.every(settled), 'every message at bob or waiting for a retry', 120_000, 250)
    for (const id of ids) {
      if (!countIds(events(bob, 'message')).has(id)) alice.send({ cmd: 'retry', id })
    }
    await waitFor(() => ids.every(id => countIds(events(bob, 'message')).has(id)), 'every stored message at bob', 180_000, 250)
    const perId = countIds(events(bob, 'message'))
    for (const id of ids) assert.equal(perId.get(id), 1, `message ${id} shown ${perId.get(id)} times`)
  })

  it('bob SIGKILLed: what is sent meanwhile waits in his mailboxes; restarted on his data directory he is the same and gets each once', async () => {
    bob.child.kill('SIGKILL')
    await within(bob.exited, 10_000, 'bob dying')
    const sent: string[] = []
    for (let i = 0; i < 5; i++) sent.push(String((await alice.ask({ cmd: 'send', to: 'bob', text: `while away ${i} ${SECRET}` })).id))
    await waitFor(() => sent.every(id => events(alice, 'stored').some(o => o.id === id)), 'the 5 stored in a mailbox of bob\'s while he is down', 60_000, 250)
    const again = await startUser('bob')
    assert.equal(again.ready.fingerprint, bobReady.fingerprint)
    bob = again.proc
    await waitFor(() => sent.every(id => countIds(events(bob, 'message')).get(id) === 1), 'the 5 messages at the restarted bob', 120_000, 250)
    await waitFor(() => sent.every(id => events(alice, 'delivered').some(o => o.id === id)), 'their receipts at alice', 120_000, 250)
  })

  it('the bootstrap SIGKILLed after the network formed: messages still flow', async () => {
    const boot = net.procs[0]
    boot.child.kill('SIGKILL')
    await within(boot.exited, 10_000, 'the bootstrap dying')
    const sent: string[] = []
    for (let i = 0; i < 10; i++) sent.push(String((await alice.ask({ cmd: 'send', to: 'bob', text: `no bootstrap ${i} ${SECRET}` })).id))
    await waitFor(() => sent.every(id => events(alice, 'delivered').some(o => o.id === id)), '10 receipts without the bootstrap', 90_000, 250)
    const perId = countIds(events(bob, 'message'))
    for (const id of sent) assert.equal(perId.get(id), 1)
  })

  // It runs last of the network's tests so the tests above see a healthy network.
  it('100 messages in flight, the relay holding the most mailbox items SIGKILLed, then restarted: every one delivered, shown once', async () => {
    const churnIds = (): Set<unknown> => new Set(alice.json().filter(o => typeof o.tag === 'string' && o.tag.startsWith('c') && o.event === 'sent').map(o => o.id))
    const deliveredChurn = (): number => { const d = new Set(events(alice, 'delivered').map(o => o.id)); return [...churnIds()].filter(id => d.has(id)).length }
    const storedBefore = events(alice, 'stored').length
    for (let i = 0; i < 100; i++) alice.send({ cmd: 'send', to: 'bob', text: `churn ${i} ${SECRET}`, tag: `c${i}` })
    await waitFor(() => events(alice, 'stored').length >= storedBefore + 20, '20 messages stored in mailboxes', 60_000, 25)
    // the relay that holds most items now: a mailbox of bob's (or alice's, for the receipts)
    const held = await Promise.all(relays.map(async r => ((await r.proc.ask({ cmd: 'status' })).mailboxes as { mailboxes: number, items: number })))
    const victim = held.reduce((best, h, i) => h.items > held[best].items ? i : best, 0)
    assert.ok(held[victim].mailboxes >= 1, `the victim holds a mailbox: ${JSON.stringify(held)}`)
    figures.churnItemsOnKilledRelay = held[victim].items
    const killed = relays[victim]
    const victimId = String((killed.ready.addrs as string[])[0]).replace(/^.*\/p2p\//, '')
    const killedAt = Date.now()
    killed.proc.child.kill('SIGKILL')
    await within(killed.proc.exited, 10_000, 'the relay dying')
    figures.churnDeliveredAtKill = deliveredChurn()
    // both users notice the dead relay (no announcement, no answer through it) and tell the user at once
    const deadWarning = (o: Json): boolean => o.event === 'warning' && String(o.message).includes(victimId) && String(o.message).includes('stopped answering')
    for (const [who, p] of [['alice', alice], ['bob', bob]] as const) {
      await p.waitForJson(deadWarning, 60_000)
      const listed = await p.ask({ cmd: 'relays' })
      assert.equal((listed.relays as Json[]).some(r => r.peerId === victimId), false, `${who} no longer lists the dead relay as live`)
    }
    figures.churnDeadNoticedMs = Date.now() - killedAt
    // while it is down, paths, reply blocks and exits avoid it: what waits in the other mailboxes is delivered
    const deliveredWhileDownFrom = deliveredChurn()
    await waitFor(() => deliveredChurn() > deliveredWhileDownFrom || deliveredChurn() >= 100, 'a receipt while the relay is down', 90_000, 250)
    figures.churnDeliveredWhileDown = deliveredChurn() - figures.churnDeliveredAtKill
    // the relay comes back on its data directory and address (its mailboxes are durable; its onion keys
    // and stocked reply blocks are not): its owners notice and re-stock, and what it holds is pushed on
    // (the bootstrap node is gone, see the test above: the relay joins through another relay, a DHT server too)
    net.bootstrapAddr = String((relays.find((_, i) => i !== victim)?.ready.addrs as string[])[0])
    const restartedAt = Date.now()
    relays[victim] = await net.relay({ name: `relay${victim + 1}`, listen: listenAddrOf(killed.ready), env: relayEnv })
    await waitFor(() => deliveredChurn() >= 100, () => `100 receipts (${deliveredChurn()} delivered)`, 240_000, 250)
    figures.churnAllDeliveredAfterRestartMs = Date.now() - restartedAt
    // exactly once: a message sent after them and received after them bounds the wait for a late duplicate
    const later = await alice.ask({ cmd: 'send', to: 'bob', text: `after the churn ${SECRET}` })
    await bob.waitForJson(o => o.event === 'message' && o.id === later.id, 120_000)
    const atBob = events(bob, 'message').filter(o => String(o.text).startsWith('churn '))
    const perId = countIds(atBob)
    figures.churnSent = 100
    figures.churnDeliveredDistinct = perId.size
    figures.churnShownTwice = [...perId.values()].filter(n => n > 1).length
    figures.churnResends = events(alice, 'attempt').filter(o => Number(o.attempt) > 1).length
    assert.equal(perId.size, 100, 'each message reached bob')
    assert.equal(atBob.length, 100, 'none shown twice')
    assert.equal(alice.json().some(o => o.event === 'failed'), false, 'nothing reported failed')
  })

  it('key and database files are 0600; no message text or key material in any log', () => {
    let logBytes = 0
    let needleCount = 0
    for (const nick of ['alice', 'bob']) {
      const dir = net.dataDir(nick)
      assert.equal(statSync(dir).mode & 0o777, 0o700)
      for (const f of readdirSync(dir)) assert.equal(statSync(join(dir, f)).mode & 0o077, 0, `${nick}/${f} is open to others`)
      const needles = [SECRET]
      // a user of version 2 keeps only its identity key in a file; onion and mailbox keys live in its store
      assert.equal(readdirSync(dir).includes('transport.key'), false, 'a user\'s transport key is never written')
      for (const f of ['identity.key', 'onion.key'].filter(f => readdirSync(dir).includes(f))) {
        const key = JSON.parse(readFileSync(join(dir, f), 'utf8')) as { privateKey: string }
        const raw = Buffer.from(key.privateKey, 'base64')
        needles.push(key.privateKey, raw.toString('hex'), raw.toString('base64url'), raw.subarray(0, 16).toString('hex'))
        if (f === 'identity.key') {
          // libp2p's own encodings of the Ed25519 private key (seed || public key, protobuf-wrapped)
          const pub = Buffer.from((JSON.parse(readFileSync(join(dir, f), 'utf8')) as { publicKey: string }).publicKey, 'base64')
          const full = Buffer.concat([raw, pub])
          needles.push(full.toString('base64'), full.toString('hex'), Buffer.concat([Buffer.from([8, 1, 18, 64]), full]).toString('base64'))
        }
      }
      const db = new DatabaseSync(join(dir, 'p2pchat.db'), { readOnly: true })
      try {
        const stored = [...db.prepare('SELECT private_key AS k FROM onion_keys').all(), ...db.prepare('SELECT seed AS k FROM mailbox_keys').all()]
        assert.ok(stored.length >= 3, 'onion and mailbox keys in the store')
        for (const { k } of stored) {
          const raw = Buffer.from(k as Uint8Array)
          needles.push(raw.toString('hex'), raw.toString('base64'), raw.toString('base64url'), raw.subarray(0, 16).toString('hex'))
        }
      } finally { db.close() }
      needleCount += needles.length
      for (const p of users) {
        logBytes += p.stderr.length
        for (const n of needles) assert.ok(!p.stderr.includes(n), `a log contains ${n === SECRET ? 'message text' : 'key material'}`)
      }
    }
    figures.logBytesScanned = logBytes
    figures.secretNeedles = needleCount
    assert.ok(logBytes > 10_000, `debug logging was on (${logBytes} bytes)`)
  })

  it('a data directory owned by another user, or open to others, is refused', async (t) => {
    const other = join(net.root, 'not-mine')
    mkdirSync(other, { mode: 0o700 })
    if (process.getuid?.() === 0) {
      chownSync(other, 65534, 65534)
      const r = await runCli(['start', '--json', '--nick', 'eve', '--bootstrap', net.bootstrapAddr, '--data-dir', other])
      assert.equal(r.code, 1)
      assert.match(r.stderr + r.stdout, /belongs to another user/)
    } else {
      t.diagnostic('not root: cannot chown to nobody; the ownership check is covered only for the mode')
    }
    const open = join(net.root, 'open')
    mkdirSync(open, { mode: 0o700 })
    chmodSync(open, 0o755)
    const r = await runCli(['start', '--json', '--nick', 'eve', '--bootstrap', net.bootstrapAddr, '--data-dir', open])
    assert.equal(r.code, 1)
    assert.match(r.stderr + r.stdout, /open to other users/)
  })
})
