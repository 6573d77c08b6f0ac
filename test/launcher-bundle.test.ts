/**
 * The installed package runs a bundle (scripts/bundle.ts: dist/cli/bin.js, its chunks and the Sphinx
 * worker, everything else of dist/ removed). Built here as `npm run build` builds it, into a temporary
 * directory with this checkout's node_modules linked in, then run through the launcher as real
 * processes on loopback: each command's code loads from the bundle (the version from package.json,
 * a bootstrap node, a relay and a user that start joining), and the worker thread a relay would start
 * loads from beside the chunks and answers a packet. Each process is stopped once it has shown it runs.
 */
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import type { ChildProcessWithoutNullStreams } from 'node:child_process'
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import { after, before, describe, it } from 'node:test'
import { bundleDist } from '../scripts/bundle.ts'
import { PACKET_SIZE } from '../protocols/onion/constants.ts'
import { within } from './helpers/wait.ts'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const START_MS = 120_000

type Json = Record<string, unknown>

describe('the bundled package (scripts/bundle.ts)', { timeout: 600_000 }, () => {
  let pkg = ''
  const children: ChildProcessWithoutNullStreams[] = []
  before(async () => {
    pkg = mkdtempSync(join(tmpdir(), 'p2pchat-bundle-'))
    cpSync(join(ROOT, 'package.json'), join(pkg, 'package.json'))
    cpSync(join(ROOT, 'bin'), join(pkg, 'bin'), { recursive: true })
    // linked first: the bundler resolves the dependencies from the package's node_modules
    symlinkSync(join(ROOT, 'node_modules'), join(pkg, 'node_modules'))
    execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', join(pkg, 'dist')], { stdio: 'inherit' })
    await bundleDist(join(pkg, 'dist'))
  })
  after(async () => {
    await Promise.all(children.map(async c => {
      if (c.exitCode != null || c.signalCode != null) return
      const gone = new Promise(resolve => c.once('exit', resolve))
      c.kill('SIGKILL')
      await within(gone, 30_000, 'a killed process to exit')
    }))
    if (pkg !== '') rmSync(pkg, { recursive: true, force: true })
  })

  /** Runs the launcher with `args`; resolves at the first JSON line `until` accepts (an error line fails). */
  async function launch (args: string[], until: (o: Json) => boolean): Promise<Json> {
    const child = spawn(process.execPath, [join(pkg, 'bin', 'p2pchat.cjs'), ...args], { env: { ...process.env, P2PCHAT_BOOTSTRAP: '' }, stdio: ['pipe', 'pipe', 'pipe'] })
    children.push(child)
    let stderr = ''
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
    return await within(new Promise<Json>((resolve, reject) => {
      createInterface({ input: child.stdout }).on('line', (line) => {
        let o: Json
        try { o = JSON.parse(line) as Json } catch { return }
        if (o.event === 'error') reject(new Error(`${args[0]} failed: ${line}; stderr: ${stderr}`))
        else if (until(o)) resolve(o)
      })
      child.once('exit', (code) => { reject(new Error(`${args[0]} exited (${code}); stderr: ${stderr}`)) })
    }), START_MS, `p2pchat ${args[0]} from the bundle`)
  }

  it('holds the bundle only: bin.js, the worker and chunks in dist/cli/', () => {
    assert.deepEqual(readdirSync(join(pkg, 'dist')), ['cli'])
    const files = readdirSync(join(pkg, 'dist', 'cli'))
    assert.ok(files.includes('bin.js') && files.includes('sphinx-worker.js'), files.join(' '))
    assert.ok(files.every(f => f === 'bin.js' || f === 'sphinx-worker.js' || /^chunk-[A-Z0-9]+\.js$/.test(f)), files.join(' '))
  })

  it('leaves out what costs an idle user memory it never uses: Noise\'s WebAssembly, ICU collation', () => {
    const code = readdirSync(join(pkg, 'dist', 'cli')).map(f => readFileSync(join(pkg, 'dist', 'cli', f), 'utf8')).join('\n')
    assert.equal(code.includes('WebAssembly'), false, 'no WebAssembly module is compiled (scripts/bundle.ts noiseWithoutWasm)')
    assert.equal(code.includes('.localeCompare('), false, 'no localeCompare (scripts/bundle.ts LOCALE_COMPARES)')
    assert.ok(code.includes('__p2pchatCompare('), 'the peer store\'s sorts compare code units')
  })

  it('prints the package\'s version', () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
    const out = execFileSync(process.execPath, [join(pkg, 'bin', 'p2pchat.cjs'), '--version'], { encoding: 'utf8' })
    assert.match(out, new RegExp(`^p2pchat ${version.replaceAll('.', '\\.')} \\(Node v`))
  })

  it('runs a bootstrap node, a relay and a user from the bundle', async () => {
    const data = (name: string): string => join(pkg, 'data', name)
    const boot = await launch(['bootstrap', '--json', '--listen', '/ip4/127.0.0.1/tcp/0', '--data-dir', data('boot')], o => o.event === 'ready')
    const bootAddr = (boot.addrs as string[])[0]
    assert.match(bootAddr, /^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\//)
    // a relay listening and joining, a user built (keys, store, libp2p) and joining: their code loaded
    const [relay, user] = await Promise.all([
      launch(['start', '--relay', '--json', '--listen', '/ip4/127.61.0.1/tcp/0', '--bootstrap', bootAddr, '--data-dir', data('relay')], o => o.event === 'status' && o.stage === 'connecting'),
      launch(['start', '--json', '--nick', 'bundled', '--bootstrap', bootAddr, '--data-dir', data('user')], o => o.event === 'status' && o.stage === 'connecting')
    ])
    assert.equal(relay.stage, 'connecting')
    assert.equal(user.stage, 'connecting')
  })

  it('starts the Sphinx worker from beside the chunks, and it answers', async () => {
    const url = join(pkg, 'dist', 'cli', 'sphinx-worker.js')
    assert.ok(existsSync(url))
    const worker = new Worker(url)
    try {
      let ready = false
      const answer = await within(new Promise<{ id: number, results: Array<{ result: { ok: boolean, reason?: string } }> }>((resolve, reject) => {
        // the worker first says it is ready (its modules loaded: sphinx-pool.ts), then answers
        worker.on('message', (msg: { ready?: true, id?: number }) => { if (msg.ready === true) ready = true; else resolve(msg as never) })
        worker.once('error', reject)
        // one packet of zeros: not a Sphinx packet of this version, refused as such by processPacket
        worker.postMessage({ id: 7, packets: new ArrayBuffer(PACKET_SIZE), count: 1, keys: [new Uint8Array(32)] })
      }), 60_000, 'the worker\'s answer')
      assert.ok(ready, 'the worker said it was ready before it answered')
      assert.equal(answer.id, 7)
      assert.deepEqual(answer.results.map(r => r.result), [{ ok: false, reason: 'version' }])
    } finally {
      await worker.terminate()
    }
  })
})
