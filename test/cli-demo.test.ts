import assert from 'node:assert/strict'
import { readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { describe, it } from 'node:test'
import { DEMO_SCRIPT } from '../cli/commands/demo.ts'
import { runCli } from './helpers/cli.ts'

const HOP = /^ +(relay[1-4]) saw a packet of (\d+) bytes: from (\S+) +→ to (\S+)$/

function demoDirs (): string[] {
  return readdirSync(tmpdir()).filter(d => d.startsWith('p2pchat-demo-'))
}

describe('p2pchat demo as a real process', { timeout: 120_000 }, () => {
  it('runs a whole network, shows every hop by relay name and size, never the text, and cleans up', async () => {
    const dirsBefore = new Set(demoDirs())
    const started = Date.now()
    const res = await runCli(['demo'], {}, 60_000)
    const elapsed = Date.now() - started
    assert.equal(res.code, 0, `stdout:\n${res.stdout}\nstderr:\n${res.stderr}`)
    assert.ok(elapsed < 60_000, `took ${elapsed} ms`)
    const lines = res.stdout.split('\n')
    const hops = lines.map(l => HOP.exec(l)).filter(m => m != null)
    // each message: 3 hops there and 3 hops for its receipt
    assert.ok(hops.length >= DEMO_SCRIPT.length * 6, `${hops.length} hop lines`)
    const names = new Set(['alice', 'bob', 'relay1', 'relay2', 'relay3', 'relay4'])
    for (const [, relay, size, from, to] of hops) {
      assert.ok(names.has(from) && names.has(to), `${from} -> ${to}`)
      assert.notEqual(from, relay)
      assert.notEqual(to, relay)
      assert.ok(!(['alice', 'bob'].includes(from) && ['alice', 'bob'].includes(to)), 'no relay sees both ends')
      assert.equal(size, hops[0][2], 'every packet has the same size')
    }
    const hopLines = lines.filter(l => HOP.test(l) || /\brelay\d\b.*\bbytes\b/.test(l))
    for (const { text } of DEMO_SCRIPT) {
      for (const l of hopLines) assert.ok(!l.includes(text) && !l.includes(text.slice(0, 12)), `a hop line shows the text: ${l}`)
      // the recipient does show it, once, verified
      assert.equal(lines.filter(l => l.includes(`✓: ${text}`)).length, 1, text)
    }
    assert.equal(lines.filter(l => /✓✓ delivered/.test(l)).length, DEMO_SCRIPT.length)
    assert.match(res.stdout, /no relay saw both alice and bob on one packet/)
    assert.deepEqual(demoDirs().filter(d => !dirsBefore.has(d)), [], 'temporary data directories removed')
  })

  it('--json gives one JSON object per line', async () => {
    const res = await runCli(['demo', '--json'], {}, 60_000)
    assert.equal(res.code, 0, res.stderr)
    const events = res.stdout.split('\n').map(l => JSON.parse(l))
    const hops = events.filter(e => e.event === 'hop')
    assert.ok(hops.length >= DEMO_SCRIPT.length * 6)
    for (const h of hops) assert.deepEqual(Object.keys(h).sort(), ['event', 'from', 'relay', 'size', 'to'])
    assert.equal(events.filter(e => e.event === 'message' && e.verified === true).length, DEMO_SCRIPT.length)
    assert.equal(events.at(-1).event, 'done')
  })
})
