/**
 * `p2pchat demo` as a real process: the whole protocol-v2 network in one process, and what it shows:
 * each user's entry relay (its only connection) and two mailboxes elsewhere, ✓ stored then ✓✓
 * delivered for every message, relays that see users only as clients and never the text, packets of
 * one size, and DHT requests served only for relays and the bootstrap node, none for a user.
 */
import assert from 'node:assert/strict'
import { readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { describe, it } from 'node:test'
import { DEMO_SCRIPT } from '../cli/commands/demo.ts'
import { runCli } from './helpers/cli.ts'

const HOP = /^ +(relay[1-4]) passed a packet of (\d+) bytes: from (relay[1-4]|a client) +→ to (relay[1-4]|its client)$/
const SERVICE = /^ +(relay[1-4]) got a (mailbox|directory|drop) request from (relay[1-4]) \(it cannot tell who sent it\)$/
const USER = /^ {2}(alice|bob) +fingerprint [a-z2-7-]+; entry relay (relay[1-4]) \(its only connection\); mailboxes at (relay[1-4]) and (relay[1-4])$/

function demoDirs (): string[] {
  return readdirSync(tmpdir()).filter(d => d.startsWith('p2pchat-demo-'))
}

describe('p2pchat demo as a real process', { timeout: 180_000 }, () => {
  it('shows entry relays and mailboxes, ✓ stored then ✓✓ delivered, relays that see only clients and never the text, and no DHT request from a user', async () => {
    const dirsBefore = new Set(demoDirs())
    const started = Date.now()
    const res = await runCli(['demo'], {}, 90_000)
    const elapsed = Date.now() - started
    assert.equal(res.code, 0, `stdout:\n${res.stdout}\nstderr:\n${res.stderr}`)
    assert.ok(elapsed < 90_000, `took ${elapsed} ms`)
    const lines = res.stdout.split('\n')

    const users = lines.map(l => USER.exec(l)).filter(m => m != null)
    assert.deepEqual(users.map(m => m[1]), ['alice', 'bob'], res.stdout)
    for (const [, , entry, box1, box2] of users) {
      assert.notEqual(box1, box2, 'two different mailbox relays')
      assert.ok(entry !== box1 && entry !== box2, 'the entry relay holds none of its mailboxes')
    }

    const hops = lines.map(l => HOP.exec(l)).filter(m => m != null)
    // each message: submitted, mixed, deposited, pushed to the recipient, and its receipt the same way back
    assert.ok(hops.length >= DEMO_SCRIPT.length * 6, `${hops.length} hop lines`)
    for (const [, relay, size, from, to] of hops) {
      assert.notEqual(from, relay)
      assert.notEqual(to, relay)
      assert.equal(size, '3072', 'every packet has the same size')
    }
    assert.ok(hops.some(h => h[3] === 'a client') && hops.some(h => h[4] === 'its client'))
    assert.ok(lines.some(l => SERVICE.test(l)), 'the services relays ran are shown')
    const relayLines = lines.filter(l => /^ +relay\d /.test(l))
    for (const l of relayLines) assert.doesNotMatch(l, /\b(alice|bob)\b/, `a relay line names a user: ${l}`)
    for (const { text } of DEMO_SCRIPT) {
      for (const l of relayLines) assert.ok(!l.includes(text) && !l.includes(text.slice(0, 12)), `a relay line shows the text: ${l}`)
      // the recipient does show it, once, signed (· not yet verified by the user; a first message is a contact request)
      assert.equal(lines.filter(l => l.includes(`: ${text}`) && / received: .* (alice|bob) [✓·]( \(contact request[^)]*\))?: /.test(l)).length, 1, text)
    }
    const stored = lines.map((l, i) => [l, i] as const).filter(([l]) => /\] ✓ stored in a mailbox of (alice|bob)/.test(l))
    const delivered = lines.map((l, i) => [l, i] as const).filter(([l]) => /\] ✓✓ delivered in \d+ ms/.test(l))
    assert.equal(stored.length, DEMO_SCRIPT.length)
    assert.equal(delivered.length, DEMO_SCRIPT.length)
    for (let n = 0; n < DEMO_SCRIPT.length; n++) assert.ok(stored[n][1] < delivered[n][1], 'stored before delivered')
    const dht = /DHT requests served: (\d+), (\d+) from relays and the bootstrap node, (\d+) from alice or bob/.exec(res.stdout)
    assert.ok(dht != null, res.stdout)
    assert.ok(Number(dht[1]) > 0)
    assert.equal(dht[1], dht[2])
    assert.equal(dht[3], '0')
    assert.deepEqual(demoDirs().filter(d => !dirsBefore.has(d)), [], 'temporary data directories removed')
  })

  it('--json gives one JSON object per line, with the same picture', async () => {
    const res = await runCli(['demo', '--json'], {}, 90_000)
    assert.equal(res.code, 0, res.stderr)
    const events = res.stdout.split('\n').map(l => JSON.parse(l))
    const hops = events.filter(e => e.event === 'hop')
    assert.ok(hops.length >= DEMO_SCRIPT.length * 6)
    for (const h of hops) {
      assert.deepEqual(Object.keys(h).sort(), ['event', 'from', 'relay', 'size', 'to'])
      assert.ok(!['alice', 'bob'].includes(h.from) && !['alice', 'bob'].includes(h.to), JSON.stringify(h))
    }
    for (const n of events.filter(e => e.event === 'node')) assert.ok(!String(n.mailboxes).includes(n.entry), JSON.stringify(n))
    assert.equal(events.filter(e => e.event === 'message' && e.verified === true).length, DEMO_SCRIPT.length)
    for (const d of events.filter(e => e.event === 'delivered')) {
      assert.ok(events.findIndex(e => e.event === 'stored' && e.id === d.id) < events.indexOf(d), 'stored before delivered')
    }
    assert.equal(events.filter(e => e.event === 'delivered').length, DEMO_SCRIPT.length)
    const dht = events.find(e => e.event === 'dht-summary')
    assert.ok(dht.requests > 0 && dht.fromRelays === dht.requests && dht.fromUsers === 0, JSON.stringify(dht))
    assert.deepEqual(events.at(-1), { event: 'done', ok: true })
  })
})
