/**
 * The network lab's own network (lab/net.ts): with root, iptables, python3 and /dev/net/tun it builds
 * two public sites and a NAT LAN in namespaces of its own, and checks what the lab's figures rest on:
 * the delaying forwarder adds the configured latency (measured as TCP handshake round trips), a host
 * behind the NAT dials out, nothing on the internet can dial the host or the router (no port forward),
 * a split cuts one half of the sites from the other until it heals, and teardown leaves no namespace. Without those rights the tests skip, saying why (`npm test` runs
 * unprivileged too). The lab's refusal message is checked everywhere.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, execFileSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { LabNet, LabUnavailableError, NS_PREFIX, cleanupLeftovers, preflight } from '../lab/net.ts'
import { waitFor } from './helpers/wait.ts'

const RUN = fileURLToPath(new URL('../lab/run.ts', import.meta.url))
const PROBE = fileURLToPath(new URL('../lab/probe.ts', import.meta.url))

function why (): string | undefined {
  try { preflight(); return undefined } catch (err) {
    if (err instanceof LabUnavailableError) return `network lab unavailable here: ${err.message}`
    throw err
  }
}
const skip = why()

test('the lab refuses an unknown option, and without root says what to run (exit 2)', async () => {
  const bad = await runProcess([RUN, '--no-such-option'])
  assert.equal(bad.code, 2)
  assert.match(bad.stderr, /unknown option --no-such-option; usage: npm run lab/)
  if (process.getuid?.() !== 0) {
    const r = await runProcess([RUN, '--quick'])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /needs root .*sudo npm run lab/)
  }
})

test('lab network: 50 ms each way across the internet, NAT lets users dial out only, a split cuts and heals, teardown removes it all', { skip, timeout: 120_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'p2pchat-labnet-'))
  const net = new LabNet(dir)
  const servers: ChildProcess[] = []
  t.after(() => {
    for (const s of servers) s.kill('SIGKILL')
    net.teardown()
    rmSync(dir, { recursive: true, force: true })
  })
  const a = net.site('a', 3)
  const b = net.site('b', 7)
  const lan = net.natLan('nat', 9, 1, true)
  const h = net.host('h', lan)
  assert.equal(a.addr, '172.19.0.2')
  assert.equal(b.addr, '172.23.0.2')
  assert.equal(h.addr, '10.1.0.10')
  await net.startDelay({ delayMs: 50, jitterMs: 10, loss: 0 }, 7)
  // a TCP listener on port 4001 in site b and in the NAT'd host
  for (const ns of [b.ns, h.ns]) {
    const s = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', "require('node:net').createServer(c => c.destroy()).listen(4001, () => console.log('up'))"], { stdio: ['ignore', 'pipe', 'inherit'] })
    servers.push(s)
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error('listener did not start')) }, 20_000)
      s.stdout?.once('data', () => { clearTimeout(timer); resolve() })
    })
  }
  const probe = (ns: string, host: string, n: number): { connectMs: number[], failed: number } =>
    JSON.parse(net.sh(ns, process.execPath, [PROBE, host, '4001', String(n)]).trim())
  const direct = probe(a.ns, b.addr, 5)
  assert.equal(direct.failed, 0)
  for (const ms of direct.connectMs) assert.ok(ms >= 75, `a round trip across the lab internet took ${ms} ms, below 2 x (50 - 10) ms`)
  const out = probe(h.ns, b.addr, 3)
  assert.equal(out.failed, 0, 'the host behind NAT dials out')
  // nothing on the internet reaches the host: no route to its LAN, and the router takes no new connection
  assert.equal(probe(a.ns, h.addr, 1).failed, 1)
  assert.equal(probe(a.ns, lan.router.addr, 1).failed, 1)
  // a split between a and b: a cannot reach b; the NAT'd host (its router in neither half) still can;
  // the heal counts what the cut dropped and a reaches b again
  net.split([a], [b])
  assert.equal(probe(a.ns, b.addr, 1).failed, 1, 'the split cuts a from b')
  assert.equal(probe(h.ns, b.addr, 1).failed, 0, 'sites outside both halves are not cut')
  assert.ok(net.heal() >= 1, 'the split dropped the SYNs')
  assert.equal(probe(a.ns, b.addr, 2).failed, 0, 'healed')
  assert.equal(net.heal(), 0, 'nothing left to heal')
  const stats = await net.stopDelay()
  assert.ok(Number(stats.forwarded) > 0)
  // at least the configured delay; a loaded machine may hold packets longer, never shorter
  assert.ok(Number(stats.delay_p50_ms) >= 40 && Number(stats.delay_p50_ms) <= 150, `applied delay p50 ${String(stats.delay_p50_ms)} ms`)
  const ours = net.prefix
  net.teardown()
  const left = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').filter(l => l.startsWith(ours))
  assert.deepEqual(left, [])
})

function labNamespaces (pid: number): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map(l => l.split(' ')[0]).filter(n => n.startsWith(`${NS_PREFIX}${pid}-`))
}

test('the lab tears its network down on SIGINT, and a SIGKILLed lab\'s namespaces are removed by the next', { skip, timeout: 180_000 }, async () => {
  for (const signal of ['SIGINT', 'SIGKILL'] as const) {
    const p = spawn(process.execPath, [RUN, '--quick'], { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    p.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
    const exited = new Promise<number | null>(resolve => p.on('exit', (code, sig) => { resolve(code ?? (sig == null ? null : -1)) }))
    const pid = p.pid ?? 0
    // interrupted while it starts its processes: its namespaces exist and its bootstrap node is coming up
    await waitFor(() => /internet links/.test(stderr), 'the lab to build its network', 60_000)
    assert.ok(labNamespaces(pid).length >= 10)
    p.kill(signal)
    const code = await exited
    if (signal === 'SIGINT') {
      assert.equal(code, 130)
      assert.match(stderr, /SIGINT: tearing the lab down/)
      assert.deepEqual(labNamespaces(pid), [])
    } else {
      assert.ok(labNamespaces(pid).length >= 10, 'a SIGKILLed lab cannot clean up')
      const removed = cleanupLeftovers()
      assert.ok(removed.length >= 10)
      assert.deepEqual(labNamespaces(pid), [])
    }
    // no p2pchat process of that lab is left either (killed ones may take a moment to be reaped)
    const left = (): string[] => execFileSync('ps', ['-eo', 'stat=,args='], { encoding: 'utf8' }).split('\n')
      .filter(l => l.includes(`${NS_PREFIX}${pid}-`) && !l.trim().startsWith('Z'))
    await waitFor(() => left().length === 0, () => `the lab's processes to be gone: ${left().join('; ')}`, 10_000)
  }
})

async function runProcess (args: string[]): Promise<{ code: number | null, stderr: string }> {
  const p = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  p.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
  const timer = setTimeout(() => p.kill('SIGKILL'), 60_000)
  const code = await new Promise<number | null>(resolve => p.on('exit', resolve))
  clearTimeout(timer)
  return { code, stderr }
}
