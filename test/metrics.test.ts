/**
 * Operators' metrics (node/metrics.ts): `--metrics` parsing, and real processes scraped over HTTP: a
 * bootstrap node and four relays started with `--metrics 127.0.0.1:0` (bound to loopback), two users
 * exchanging a message through them; the relays' Prometheus text then shows the packets they passed,
 * the mailbox deposit, the replay filters filling, connections and DHT requests served; a third user at
 * `high` (steady mailboxes, mailbox version 2, with the tests' short timers) puts its mailboxes in
 * steady mode, and the scrape shows them, their SYNCs and their padding pushes.
 */
import { after, before, describe, it, test } from 'node:test'
import assert from 'node:assert/strict'
import { parseMetricsAddress } from '../node/metrics.ts'
import { TEST_MIXING } from './helpers/chat-network.ts'
import { CliNetwork, TEST_TIMING } from './helpers/cli-network.ts'
import type { CliProcess } from './helpers/cli.ts'
import { runCli } from './helpers/cli.ts'
import { waitFor } from './helpers/wait.ts'

test('--metrics takes <host:port> or <port>; the host defaults to 127.0.0.1', () => {
  assert.deepEqual(parseMetricsAddress('9464'), { host: '127.0.0.1', port: 9464 })
  assert.deepEqual(parseMetricsAddress(':9464'), { host: '127.0.0.1', port: 9464 })
  assert.deepEqual(parseMetricsAddress('0.0.0.0:9100'), { host: '0.0.0.0', port: 9100 })
  assert.deepEqual(parseMetricsAddress('[::1]:0'), { host: '::1', port: 0 })
  for (const bad of ['', 'abc', '127.0.0.1:', '127.0.0.1:70000', 'host:12x', 'a b:1']) {
    assert.throws(() => parseMetricsAddress(bad), { name: 'UserError' }, bad)
  }
})

test('a user has no metrics: start --nick --metrics is refused', async () => {
  const r = await runCli(['start', '--nick', 'zed', '--bootstrap', '/ip4/127.0.0.1/tcp/9/p2p/12D3KooWLFjso4atDafBkSrfopXmV2obD44cYkx6yazQ7PAUjf8Q', '--metrics', '0'])
  assert.equal(r.code, 1)
  assert.match(r.stderr, /--metrics is for relays and bootstrap nodes/)
})

/** One scrape as name{labels} -> value. */
async function scrape (url: string): Promise<Map<string, number>> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) })
  assert.equal(res.status, 200)
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/)
  const out = new Map<string, number>()
  for (const line of (await res.text()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const i = line.lastIndexOf(' ')
    out.set(line.slice(0, i), Number(line.slice(i + 1)))
  }
  return out
}

const sum = (scrapes: Array<Map<string, number>>, prefix: string): number =>
  scrapes.reduce((n, m) => n + [...m].filter(([k]) => k === prefix || k.startsWith(`${prefix}{`)).reduce((a, [, v]) => a + v, 0), 0)

describe('metrics of real relay and bootstrap processes', { timeout: 300_000 }, () => {
  const net = new CliNetwork()
  let bootstrapUrl = ''
  const relayUrls: string[] = []
  let alice: CliProcess
  let bob: CliProcess

  before(async () => {
    const boot = net.spawn(['bootstrap', '--json', '--listen', '/ip4/127.0.0.1/tcp/0', '--metrics', '127.0.0.1:0', '--data-dir', net.dataDir('bootstrap')])
    const ready = await boot.waitForJson(o => o.event === 'ready', 90_000)
    net.bootstrapAddr = (ready.addrs as string[])[0]
    bootstrapUrl = String(ready.metrics)
    const relays = await Promise.all([1, 2, 3, 4].map(async n => {
      const p = net.spawn(['start', '--relay', '--json', '--listen', `/ip4/127.${n}.0.1/tcp/0`, '--bootstrap', net.bootstrapAddr,
        '--metrics', '0', '--data-dir', net.dataDir(`relay${n}`)])
      const r = await p.waitForJson(o => o.event === 'ready' || o.event === 'error', 90_000)
      assert.equal(r.event, 'ready', JSON.stringify(r))
      relayUrls.push(String(r.metrics))
      return p
    }))
    await Promise.all(relays.map(async p => { await net.waitForRelays(p, 4, 90_000) }))
    alice = (await net.start('alice')).proc
    bob = (await net.start('bob')).proc
  })
  after(async () => { await net.teardown() })

  it('serves Prometheus text on 127.0.0.1 only, and 404 elsewhere', async () => {
    for (const url of [bootstrapUrl, ...relayUrls]) assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/)
    const res = await fetch(bootstrapUrl.replace('/metrics', '/'), { signal: AbortSignal.timeout(10_000) })
    assert.equal(res.status, 404)
    await res.text()
  })

  it('the relays count the packets, the deposit, connections and DHT requests a message causes', async () => {
    const before = await Promise.all(relayUrls.map(scrape))
    assert.equal(sum(before, 'p2pchat_replay_filter_capacity') > 0, true)
    assert.ok(before.every(m => m.has('p2pchat_onion_queue_packets') && m.has('p2pchat_mailbox_items') && m.has('process_cpu_user_seconds_total')))
    const boot = await scrape(bootstrapUrl)
    assert.ok(sum([boot], 'p2pchat_dht_requests_served_total') > 0, 'the bootstrap node served DHT requests')
    assert.ok(sum([boot], 'p2pchat_connections') >= 4, 'the bootstrap node counts its connections')

    await waitFor(async () => (await alice.ask({ cmd: 'whois', nick: 'bob' })).found === true, 'alice to find bob', 60_000, 500)
    const sent = await alice.ask({ cmd: 'send', to: 'bob', text: 'counted, not read' })
    await bob.waitForJson(o => o.event === 'message' && o.text === 'counted, not read', 60_000)
    await alice.waitForJson(o => o.event === 'delivered' && o.id === sent.id, 60_000)

    const afterMsg = await Promise.all(relayUrls.map(scrape))
    // a message is >= 4 onion packets through relays (mix, mix, mailbox), its push and its receipt more
    assert.ok(sum(afterMsg, 'p2pchat_onion_packets_in_total') - sum(before, 'p2pchat_onion_packets_in_total') >= 4)
    assert.ok(sum(afterMsg, 'p2pchat_onion_packets_out_total') > sum(before, 'p2pchat_onion_packets_out_total'))
    assert.ok(sum(afterMsg, 'p2pchat_mailbox_requests_total') > sum(before, 'p2pchat_mailbox_requests_total'))
    assert.ok(sum(afterMsg, 'p2pchat_replay_filter_entries') > sum(before, 'p2pchat_replay_filter_entries'))
    assert.ok(sum(afterMsg, 'p2pchat_clients_connected') >= 2, 'each user holds an entry link')
    // nothing names a user: only fixed metric names and label values from our code
    for (const m of afterMsg) for (const k of m.keys()) assert.doesNotMatch(k, /alice|bob|12D3Koo/)
  })

  it('mailbox version 2: steady mailboxes, the SYNCs served and the padding pushes are counted', async () => {
    const before = await Promise.all(relayUrls.map(scrape))
    // present before any steady mailbox exists (a gauge and counters at 0)
    for (const name of ['p2pchat_mailboxes_steady', 'p2pchat_mailbox_padding_pushes_total', 'p2pchat_mailbox_steady_idle_ticks_total', 'p2pchat_mailbox_syncs_total']) {
      assert.ok(before.every(m => m.has(name)), `every relay exports ${name}`)
    }
    assert.equal(sum(before, 'p2pchat_mailboxes_steady'), 0, 'alice and bob (fast) keep version 1')
    // carol at `high`: steady mailboxes, with the tests' short timers (a push every 300 ms, a SYNC every 600 ms)
    const timing = { ...TEST_TIMING, hopDelayMs: TEST_MIXING.meanDelayMs, loopCoverGapMs: TEST_MIXING.loopGapMs, dropCoverGapMs: TEST_MIXING.dropGapMs, receiptDelayMs: TEST_MIXING.receiptDelayMs, mailboxPushPeriodMs: TEST_MIXING.mailboxPushPeriodMs, mailboxSyncGapMs: TEST_MIXING.mailboxSyncGapMs }
    await net.start('carol', { env: { P2PCHAT_PRIVACY: 'high', P2PCHAT_TIMING: JSON.stringify(timing) } })
    let now: Array<Map<string, number>> = []
    await waitFor(async () => {
      now = await Promise.all(relayUrls.map(scrape))
      return sum(now, 'p2pchat_mailboxes_steady') >= 1 && sum(now, 'p2pchat_mailbox_syncs_total') >= 2 && sum(now, 'p2pchat_mailbox_padding_pushes_total') >= 2
    }, () => `carol's mailboxes steady, SYNCing and padding (steady ${sum(now, 'p2pchat_mailboxes_steady')}, syncs ${sum(now, 'p2pchat_mailbox_syncs_total')}, padding ${sum(now, 'p2pchat_mailbox_padding_pushes_total')})`, 90_000, 500)
    // the dedicated SYNC counter is the requests counter's synced outcome
    assert.equal(sum(now, 'p2pchat_mailbox_syncs_total'), sum(now, 'p2pchat_mailbox_requests_total{op="sync",outcome="synced"}'))
    for (const m of now) for (const k of m.keys()) assert.doesNotMatch(k, /carol|12D3Koo/)
  })
})
