/**
 * `p2pchat relay status` (cli/commands/relay-status.ts) against real processes on loopback: a
 * bootstrap node and three relays started with `--metrics 127.0.0.1:0`, one user online. The status of
 * each relay, read from its metrics endpoint, shows the dial-back verdict it started with, the relays it
 * knows, its connections and the user on its entry link; figures agree with a scrape of the same
 * endpoint. Nothing listening, and a bootstrap node's endpoint, are clear errors (exit 1). The
 * Prometheus reader is checked on its own too.
 */
import { after, before, describe, it, test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { parsePrometheus, relayStatus } from '../cli/commands/relay-status.ts'
import { CliNetwork } from './helpers/cli-network.ts'
import { runCli } from './helpers/cli.ts'
import { waitFor } from './helpers/wait.ts'

test('the Prometheus reader: names, labels (escaped), values; comments and junk skipped', () => {
  const samples = parsePrometheus('# HELP x y\n# TYPE x counter\nx 3\ny{a="1",b="q\\"uote"} 4.5\n\nnot a sample line at all\nz{reason="replay"} 2 1700000000\n')
  assert.deepEqual(samples, [
    { name: 'x', labels: {}, value: 3 },
    { name: 'y', labels: { a: '1', b: 'q"uote' }, value: 4.5 },
    { name: 'z', labels: { reason: 'replay' }, value: 2 }
  ])
  assert.throws(() => relayStatus('http://127.0.0.1:1/metrics', parsePrometheus('p2pchat_connections{direction="inbound"} 3\n')), { name: 'NotARelayError', message: /a bootstrap node\?/ })
  const s = relayStatus('u', parsePrometheus('process_start_time_seconds 1000\np2pchat_relays_known 2\np2pchat_onion_drops_total{reason="replay"} 5\np2pchat_client_drops_total{reason="rate"} 1\np2pchat_reachability_verified_addresses 1\np2pchat_reachability_networks{kind="helpers"} 3\np2pchat_reachability_networks{kind="required"} 2\n'), 1060)
  assert.equal(s.uptimeS, 60)
  assert.deepEqual(s.drops, { 'onion:replay': 5, 'client:rate': 1 })
  assert.match(s.reachability.verdict, /^reachable: 1 address confirmed by dial-back from peers in 2 of 3 networks/)
  // a relay that reports how many networks confirmed: that number, and the one required beside it
  const c = relayStatus('u', parsePrometheus('p2pchat_relays_known 2\np2pchat_reachability_verified_addresses 1\np2pchat_reachability_networks{kind="helpers"} 4\np2pchat_reachability_networks{kind="required"} 2\np2pchat_reachability_networks{kind="confirmed"} 3\n'), 1060)
  assert.match(c.reachability.verdict, /^reachable: 1 address confirmed by dial-back from peers in 3 of 4 networks asked \(2 required\)/)
})

test('nothing listening at the metrics address: exit 1 saying what to run', async () => {
  // a port that was free a moment ago: bound, then closed
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  await new Promise<void>(resolve => server.close(() => { resolve() }))
  const r = await runCli(['relay', 'status', '--metrics', `127.0.0.1:${port}`])
  assert.equal(r.code, 1)
  assert.match(r.stderr, new RegExp(`^p2pchat: nothing answers at http://127\\.0\\.0\\.1:${port}/metrics \\(ECONNREFUSED\\): is the relay running with --metrics 127\\.0\\.0\\.1:${port}\\?`))
  const usage = await runCli(['relay', 'stats'])
  assert.equal(usage.code, 1)
  assert.match(usage.stderr, /unknown relay subcommand "stats": p2pchat relay status/)
})

describe('relay status of running relays', { timeout: 300_000 }, () => {
  const net = new CliNetwork()
  let bootstrapMetrics = ''
  const relayMetrics: string[] = []
  const startedAt = Date.now()

  before(async () => {
    const boot = net.spawn(['bootstrap', '--json', '--listen', '/ip4/127.0.0.1/tcp/0', '--metrics', '127.0.0.1:0', '--data-dir', net.dataDir('bootstrap')])
    const ready = await boot.waitForJson(o => o.event === 'ready', 90_000)
    net.bootstrapAddr = (ready.addrs as string[])[0]
    bootstrapMetrics = new URL(String(ready.metrics)).host
    const relays = await Promise.all([1, 2, 3].map(async n => {
      const p = net.spawn(['start', '--relay', '--json', '--listen', `/ip4/127.${n}.0.1/tcp/0`, '--bootstrap', net.bootstrapAddr,
        '--metrics', '127.0.0.1:0', '--data-dir', net.dataDir(`relay${n}`)])
      const r = await p.waitForJson(o => o.event === 'ready' || o.event === 'error', 90_000)
      assert.equal(r.event, 'ready', JSON.stringify(r))
      relayMetrics.push(new URL(String(r.metrics)).host)
      return p
    }))
    await Promise.all(relays.map(async p => { await net.waitForRelays(p, 3, 90_000) }))
    await net.start('alice')
  })
  after(async () => { await net.teardown() })

  it('shows uptime, the reachability verdict, relays known, connections and the user on an entry link', async () => {
    const status = async (host: string): Promise<Record<string, any>> => {
      const r = await runCli(['relay', 'status', '--json', '--metrics', host])
      assert.equal(r.code, 0, r.stderr)
      const o = JSON.parse(r.stdout) as Record<string, any>
      assert.equal(o.event, 'relay-status')
      return o
    }
    // alice holds one entry link: one of the relays counts her (bounded wait: her link may still be opening)
    await waitFor(async () => (await Promise.all(relayMetrics.map(status))).reduce((n, s) => n + Number(s.usersOnEntryLinks), 0) >= 1, 'a relay to count alice on its entry link', 60_000, 500)
    for (const host of relayMetrics) {
      const s = await status(host)
      assert.ok(s.uptimeS > 0 && s.uptimeS <= (Date.now() - startedAt) / 1000 + 5, `uptime ${String(s.uptimeS)} s within the test's life`)
      assert.ok(s.reachability.verifiedAddresses >= 1, JSON.stringify(s.reachability))
      assert.match(s.reachability.verdict, /^reachable: 1 address confirmed by dial-back from peers in \d+ of \d+ networks? asked/)
      assert.equal(s.relaysKnown, 3)
      assert.ok(s.connections.inbound + s.connections.outbound >= 3, JSON.stringify(s.connections))
      assert.ok(s.replayFilter.capacity > 0)
      assert.ok(s.residentBytes > 0)
      // the same figure as a scrape of the endpoint says
      const text = await (await fetch(`http://${host}/metrics`, { signal: AbortSignal.timeout(10_000) })).text()
      assert.match(text, new RegExp(`^p2pchat_relays_known ${String(s.relaysKnown)}$`, 'm'))
    }
    // the text form: one line per figure
    const r = await runCli(['relay', 'status', '--metrics', relayMetrics[0]])
    assert.equal(r.code, 0, r.stderr)
    for (const line of ['uptime', 'reachability  reachable: 1 address', 'connections', 'packets in', 'packets out', 'drops', 'held', 'mailboxes', 'replay filter', 'process']) {
      assert.ok(r.stdout.includes(`  ${line}`), `${line} in:\n${r.stdout}`)
    }
    assert.match(r.stdout, /relays known/)
  })

  it("a bootstrap node's endpoint is not a relay's: exit 1 saying so", async () => {
    const r = await runCli(['relay', 'status', '--metrics', bootstrapMetrics])
    assert.equal(r.code, 1)
    assert.match(r.stderr, /serves no relay figures \(a bootstrap node\?\): point --metrics at the address a relay was started with/)
  })
})
