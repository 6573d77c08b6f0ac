/**
 * A relay's own loop cover on the command line (issue 11 item 2, node/relay-cover.ts): `p2pchat start
 * --relay --loop-cover <per-minute>`. The flag's bounds and its refusal for users (pure parsing), and a
 * real network of processes on loopback: a relay started with --loop-cover says its rate on its ready
 * line and in its `status`, and its loops go out through two other relays and come back (counted);
 * relays started without it send none (the default is off: DEFAULT_RELAY_LOOP_COVER).
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { DEFAULT_RELAY_LOOP_COVER, parseCli } from '../cli/args.ts'
import { CliNetwork, TEST_RELAY_TIMING } from './helpers/cli-network.ts'
import { runCli } from './helpers/cli.ts'
import type { CliProcess } from './helpers/cli.ts'
import { waitFor } from './helpers/wait.ts'

describe('--loop-cover: parsing', () => {
  it('takes a rate for start --relay, refuses bad ones with the flag named, and is off by default', () => {
    assert.equal(DEFAULT_RELAY_LOOP_COVER, 0)
    assert.equal(parseCli(['start', '--relay', '--loop-cover', '6']).loopCover, 6)
    assert.equal(parseCli(['start', '--relay', '--loop-cover=0.5']).loopCover, 0.5)
    assert.equal(parseCli(['start', '--relay']).loopCover, undefined)
    for (const bad of ['-1', 'x', '601', '1e3', '']) {
      assert.throws(() => parseCli(['start', '--relay', '--loop-cover', bad]), (err: Error) => err.name === 'UserError' && /--loop-cover/.test(err.message), bad)
    }
    assert.throws(() => parseCli(['bootstrap', '--loop-cover', '6']), (err: Error) => err.name === 'UserError')
  })
})

describe('--loop-cover on a real relay process', { timeout: 300_000 }, () => {
  const net = new CliNetwork(TEST_RELAY_TIMING)
  let looping: CliProcess
  let plain: CliProcess
  let readyLine: Record<string, unknown>

  before(async () => {
    await net.bootstrap()
    plain = (await net.relays(2))[0].proc
    looping = net.spawn(['start', '--relay', '--json', '--listen', '/ip4/127.9.0.1/tcp/0', '--bootstrap', net.bootstrapAddr,
      '--data-dir', net.dataDir('looping'), '--loop-cover', '120'])
    readyLine = await looping.waitForJson(o => o.event === 'ready', 60_000)
    await net.waitForRelays(looping, 3)
  })
  after(async () => { await net.teardown() })

  it('a user may not take it: a usage error naming the flag, nothing started', async () => {
    const r = await runCli(['start', '--nick', 'al', '--loop-cover', '6', '--bootstrap', net.bootstrapAddr, '--data-dir', net.dataDir('al')], net.env, 60_000)
    assert.notEqual(r.code, 0)
    assert.match(r.stderr, /--loop-cover is for relays/)
  })

  it('says its rate (ready line, status), and its loops come back through the other relays; a relay without the flag sends none', async () => {
    assert.equal(readyLine.loopCoverPerMinute, 120)
    let status: Record<string, unknown> = {}
    await waitFor(async () => {
      status = await looping.ask({ cmd: 'status' })
      return Number((status.loopCover as { back?: number } | undefined)?.back ?? 0) >= 3
    }, () => `three loops back (status: ${JSON.stringify(status.loopCover)})`, 120_000, 500)
    const lc = status.loopCover as { perMinute: number, sent: number, back: number }
    assert.equal(lc.perMinute, 120)
    assert.ok(lc.sent >= lc.back)
    const other = (await plain.ask({ cmd: 'status' })).loopCover as { perMinute: number, sent: number }
    assert.deepEqual([other.perMinute, other.sent], [0, 0])
  })
})
