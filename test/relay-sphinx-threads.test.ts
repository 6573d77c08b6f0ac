/**
 * `p2pchat start --relay --sphinx-threads <n>` (and $P2PCHAT_SPHINX_THREADS): the option's parsing, its
 * default, and real relay processes that unwrap onion packets on worker threads: the threads exist
 * (counted by their OS name in /proc), a message between two users crosses them, the relay's status
 * says how many threads and how many packets they unwrapped, `p2pchat relay status` shows the threads,
 * and SIGINT stops each relay with exit 0.
 */
import assert from 'node:assert/strict'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import { parseCli } from '../cli/args.ts'
import { formatStatus, parsePrometheus, relayStatus } from '../cli/commands/relay-status.ts'
import { DEFAULT_MAX_QUEUED, defaultRelaySphinxThreads, MAX_BATCH, MAX_SPHINX_THREADS, SphinxPool, WORKER_THREAD_NAME } from '../protocols/onion/sphinx-pool.ts'
import { generateOnionKey, onionPrivateKeyFromRaw, PACKET_SIZE, PACKET_VERSION } from '../protocols/onion/sphinx.ts'
import { runCli } from './helpers/cli.ts'
import type { CliProcess } from './helpers/cli.ts'
import { CliNetwork } from './helpers/cli-network.ts'

type Json = Record<string, unknown>

/** Threads of process `pid` named WORKER_THREAD_NAME (Linux /proc; a thread may end while it is read). */
function sphinxThreadsOf (pid: number): number {
  let n = 0
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      if (readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim() === WORKER_THREAD_NAME) n++
    } catch {}
  }
  return n
}

describe('--sphinx-threads: parsing and default', () => {
  it('reads the flag and the environment for start --relay, flag first; refuses anything but 0..MAX', () => {
    const relay = ['start', '--relay', '--bootstrap', '/ip4/127.0.0.1/tcp/1/p2p/x']
    assert.equal(parseCli([...relay, '--sphinx-threads', '3']).sphinxThreads, 3)
    assert.equal(parseCli([...relay, '--sphinx-threads=0']).sphinxThreads, 0)
    assert.equal(parseCli(relay).sphinxThreads, undefined)
    assert.equal(parseCli(relay, { P2PCHAT_SPHINX_THREADS: ' 1 ' }).sphinxThreads, 1)
    assert.equal(parseCli([...relay, '--sphinx-threads', '2'], { P2PCHAT_SPHINX_THREADS: '0' }).sphinxThreads, 2)
    // the environment is a relay's default only: a user's start ignores it
    assert.equal(parseCli(['start', '--nick', 'alice'], { P2PCHAT_SPHINX_THREADS: '2' }).sphinxThreads, undefined)
    for (const bad of ['-1', 'two', '1.5', String(MAX_SPHINX_THREADS + 1), '1e3']) {
      assert.throws(() => parseCli([...relay, `--sphinx-threads=${bad}`]), { name: 'UserError', message: /--sphinx-threads must be a whole number/ })
      assert.throws(() => parseCli(relay, { P2PCHAT_SPHINX_THREADS: bad }), { name: 'UserError', message: /P2PCHAT_SPHINX_THREADS must be/ })
    }
    assert.throws(() => parseCli(['bootstrap', '--sphinx-threads', '1']), { name: 'UserError', message: /bootstrap does not take --sphinx-threads/ })
  })

  it('defaults to 2 threads with 2 or more cores, to the main thread on one', () => {
    assert.equal(defaultRelaySphinxThreads(1), 0)
    assert.equal(defaultRelaySphinxThreads(2), 2)
    assert.equal(defaultRelaySphinxThreads(16), 2)
  })

  it('relay status reads the threads from the gauges, and says when a relay has none (older than the figure)', () => {
    const threaded = relayStatus('u', parsePrometheus('p2pchat_relays_known 1\np2pchat_sphinx_threads 2\np2pchat_sphinx_pool_packets 5\n'))
    assert.deepEqual(threaded.sphinx, { threads: 2, queued: 5 })
    assert.match(formatStatus(threaded), /unwrapping +on 2 worker threads, 5 packets waiting for them/)
    const inline = relayStatus('u', parsePrometheus('p2pchat_relays_known 1\np2pchat_sphinx_threads 0\np2pchat_sphinx_pool_packets 0\n'))
    assert.match(formatStatus(inline), /unwrapping +on the main thread/)
    const older = relayStatus('u', parsePrometheus('p2pchat_relays_known 1\n'))
    assert.equal(older.sphinx, null)
    assert.match(formatStatus(older), /unwrapping +unknown/)
  })

  it('a pool\'s threads carry its OS name while it runs and are gone once it is closed (no stray threads)', { skip: !existsSync('/proc/self/task') }, async () => {
    const key = onionPrivateKeyFromRaw(generateOnionKey().privateKey)
    let answered = 0
    let allAnswered: () => void = () => {}
    const done = new Promise<void>(resolve => { allAnswered = resolve })
    const pool = new SphinxPool<number>({ threads: 2, onResult: () => { if (++answered === 2 * MAX_BATCH) allAnswered() } })
    try {
      // two full batches: each goes at once to the least busy worker, so both workers answer one
      const garbage = new Uint8Array(PACKET_SIZE).fill(7)
      garbage[0] = PACKET_VERSION
      for (let i = 0; i < 2 * MAX_BATCH; i++) assert.equal(pool.submit(garbage, [key], i), true)
      let timer: ReturnType<typeof setTimeout> | undefined
      await Promise.race([done, new Promise((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`${answered} of ${2 * MAX_BATCH} answered in 60 s`)) }, 60_000) })])
      clearTimeout(timer)
      assert.equal(sphinxThreadsOf(process.pid), 2)
    } finally {
      await pool.close()
    }
    assert.equal(sphinxThreadsOf(process.pid), 0)
  })

  it('a user refuses the flag with one clear error (exit 1)', async () => {
    const r = await runCli(['start', '--nick', 'alice', '--sphinx-threads', '1', '--bootstrap', '/ip4/127.0.0.1/tcp/1/p2p/12D3KooWAbc'], {}, 60_000)
    assert.equal(r.code, 1)
    assert.match(r.stderr, /--sphinx-threads is for relays/)
  })
})

describe('relays with Sphinx worker threads, as real processes: bootstrap, 4 relays, alice and bob', { timeout: 300_000 }, () => {
  const net = new CliNetwork()
  /** threads asked of relay i: relay 0 by --sphinx-threads, the others by $P2PCHAT_SPHINX_THREADS */
  const asked = [2, 1, 1, 1]
  let relays: Array<{ proc: CliProcess, ready: Json }>
  let alice: CliProcess
  let bob: CliProcess

  before(async () => {
    await net.bootstrap()
    const byFlag = async (): Promise<{ proc: CliProcess, ready: Json }> => {
      const proc = net.spawn(['start', '--relay', '--json', '--listen', '/ip4/127.90.0.1/tcp/0', '--bootstrap', net.bootstrapAddr,
        '--data-dir', net.dataDir('threaded'), '--metrics', '127.0.0.1:0', '--sphinx-threads', String(asked[0])])
      const ready = await proc.waitForJson(o => o.event === 'ready' || o.event === 'error', 90_000)
      assert.equal(ready.event, 'ready', proc.stderr)
      return { proc, ready }
    }
    relays = await Promise.all([byFlag(), ...asked.slice(1).map(async n => await net.relay({ env: { ...net.env, P2PCHAT_SPHINX_THREADS: String(n) } }))])
    await Promise.all(relays.map(async r => { await net.waitForRelays(r.proc, asked.length) }))
    const [a, b] = await Promise.all([net.start('alice'), net.start('bob')])
    alice = a.proc
    bob = b.proc
    await Promise.all([net.waitForRelays(alice, asked.length), net.waitForRelays(bob, asked.length)])
  })

  after(async () => { await net.teardown() })

  it('each relay runs the threads it was asked for, and says so in its ready line', () => {
    relays.forEach((r, i) => {
      assert.equal(r.ready.sphinxThreads, asked[i])
      if (existsSync(`/proc/${r.proc.child.pid as number}/task`)) assert.equal(sphinxThreadsOf(r.proc.child.pid as number), asked[i], `relay ${i}'s worker threads`)
    })
  })

  it('a message and its receipt cross relays whose packets are unwrapped on worker threads; status counts them', async () => {
    const sent = await alice.ask({ cmd: 'send', to: 'bob', text: 'through the workers' })
    assert.equal(sent.event, 'sent')
    await alice.waitForJson(o => o.event === 'delivered' && o.id === sent.id, 90_000)
    const atBob = await bob.waitForJson(o => o.event === 'message' && o.id === sent.id)
    assert.equal(atBob.text, 'through the workers')
    let unwrapped = 0
    for (const [i, r] of relays.entries()) {
      const status = await r.proc.ask({ cmd: 'status' })
      const onion = status.onion as { received: number, dropped: Record<string, number>, sphinxPool?: { threads: number, queued: number, completed: number, refused: number } }
      assert.ok(onion.sphinxPool != null, `relay ${i} reports its pool`)
      assert.equal(onion.sphinxPool.threads, asked[i])
      assert.equal(onion.sphinxPool.refused, 0)
      assert.equal(onion.dropped.internal ?? 0, 0, `relay ${i}: no packet lost to a worker`)
      assert.equal(onion.dropped['pool-full'] ?? 0, 0)
      unwrapped += onion.sphinxPool.completed
    }
    // a message, its deposit, the fetch and the receipt: every relay packet went through some pool
    assert.ok(unwrapped > 0, 'packets unwrapped on worker threads')
  })

  it('p2pchat relay status shows the worker threads (from the metrics gauges)', async () => {
    const host = new URL(String(relays[0].ready.metrics)).host
    const json = await runCli(['relay', 'status', '--json', '--metrics', host], {}, 60_000)
    assert.equal(json.code, 0, json.stderr)
    // the relays carry their own traffic (probes, stocking) meanwhile: some packets may be with the workers
    const sphinx = (JSON.parse(json.stdout) as Json).sphinx as { threads: number, queued: number }
    assert.equal(sphinx.threads, asked[0])
    assert.ok(Number.isInteger(sphinx.queued) && sphinx.queued >= 0 && sphinx.queued <= DEFAULT_MAX_QUEUED, `queued ${sphinx.queued}`)
    const text = await runCli(['relay', 'status', '--metrics', host], {}, 60_000)
    assert.equal(text.code, 0, text.stderr)
    assert.match(text.stdout, /unwrapping +on 2 worker threads, \d+ packets? waiting for them/)
  })

  it('SIGINT stops each relay with exit 0', async () => {
    await Promise.all([alice.stop(), bob.stop()])
    // a loaded machine may take a while to stop a relay: a generous grace before SIGKILL (which would read as null)
    const codes = await Promise.all(relays.map(async r => await r.proc.stop(60_000)))
    assert.deepEqual(codes, asked.map(() => 0), relays.map(r => r.proc.stderr).join('\n'))
  })
})
