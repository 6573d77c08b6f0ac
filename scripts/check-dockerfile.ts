/**
 * What of the Dockerfile can be checked without Docker (none here: no daemon, Docker Hub unreachable):
 * whether the image's file set is complete, i.e. whether the relay runs from exactly the files the
 * Dockerfile puts in the image.
 *
 *   node scripts/check-dockerfile.ts [--keep]     (by hand; not in npm test: it runs `npm ci`)
 *
 * 1. Reads the Dockerfile: WORKDIR, every `COPY <src>... <dest>` and the `npm ci ...` of its RUN line,
 *    the ENTRYPOINT. Copies each COPY's sources (this checkout's files, less what .dockerignore names at
 *    the top of the build context) into a temporary directory standing for WORKDIR, nothing else.
 * 2. Runs the RUN line's `npm ci` there, with its flags (--omit=dev --ignore-scripts).
 * 3. Every relative import of every .ts/.js/.cjs file copied must name a file that was copied.
 * 4. Runs the ENTRYPOINT's program (`bin/p2pchat.cjs`) from the copy with this checkout's Node 24
 *    (node_modules/.bin/node: the image's `node:24` stands for it): `start --relay --help`, then a
 *    relay on 127.0.0.1 (the ENTRYPOINT's `start --relay --data-dir ... --listen ...` with a temporary
 *    data directory and loopback listen addresses in place of 0.0.0.0, `--json`, and a bootstrap node
 *    run from this checkout) until it says `ready` (at most 90 s; its Sphinx worker threads are up by
 *    then), then SIGINT and a clean exit (exit code 0).
 *
 * Checked that it can fail: with `COPY bootstrap/` taken out of the Dockerfile, step 3 names the three
 * imports of bootstrap/index.ts that would break (`p2pchat bootstrap` and `demo` in the image).
 *
 * Not checked: the base image itself, `useradd`/`install` and the non-root user (file modes), the
 * volume, EXPOSE, STOPSIGNAL. Exit 0 when every step passed, 1 otherwise (each failure is printed).
 */
import { spawn, spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
/** How long a node of the copy may take to say `ready` (a loaded 2-core machine: Node loads ~800 files). */
const READY_MS = 90_000
/** How long it may take to exit after SIGINT. */
const STOP_MS = 20_000

interface Dockerfile { workdir: string, copies: Array<{ sources: string[], dest: string }>, npm: string[], entrypoint: string[] }

/** The instructions, continuation lines joined, comments dropped. */
function instructions (text: string): string[] {
  return text.replace(/\\\n/g, ' ').split('\n').map(l => l.trim()).filter(l => l !== '' && !l.startsWith('#'))
}

function parse (text: string): Dockerfile {
  const d: Dockerfile = { workdir: '/', copies: [], npm: [], entrypoint: [] }
  for (const line of instructions(text)) {
    const [op, ...rest] = line.split(/\s+/)
    const args = rest.join(' ')
    if (op === 'WORKDIR') d.workdir = args
    else if (op === 'COPY') {
      if (rest.some(a => a.startsWith('--'))) throw new Error(`COPY with flags is not handled here: ${line}`)
      d.copies.push({ sources: rest.slice(0, -1), dest: rest[rest.length - 1] })
    } else if (op === 'RUN') {
      const npm = args.split('&&').map(s => s.trim()).find(s => s.startsWith('npm ci'))
      if (npm != null) d.npm = npm.split(/\s+/).slice(1)
    } else if (op === 'ENTRYPOINT') d.entrypoint = JSON.parse(args) as string[]
  }
  return d
}

/** Top-level names .dockerignore leaves out of the build context (the only kind it holds here). */
function ignored (): Set<string> {
  const file = join(ROOT, '.dockerignore')
  if (!existsSync(file)) return new Set()
  return new Set(readFileSync(file, 'utf8').split('\n').map(l => l.trim().replace(/\/$/, '')).filter(l => l !== '' && !l.startsWith('#')))
}

function filesUnder (dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).map(f => join(dir, f)).filter(f => statSync(f).isFile())
}

/** Relative imports (static, dynamic, require, new URL(..., import.meta.url)) of a source file that name no file of the copy. */
function missingImports (app: string): string[] {
  const missing: string[] = []
  const sources = ['bin', 'cli', 'node', 'protocols', 'bootstrap'].flatMap(d => existsSync(join(app, d)) ? filesUnder(join(app, d)) : [])
    .filter(f => /\.(ts|js|cjs|mjs)$/.test(f))
  const patterns = [/\bfrom\s+'(\.\.?\/[^']+)'/g, /\bimport\s*\(\s*'(\.\.?\/[^']+)'\s*\)/g, /\brequire\s*\(\s*'(\.\.?\/[^']+)'\s*\)/g, /new URL\(\s*'(\.\.?\/[^']+\.(?:ts|js))'\s*,\s*import\.meta\.url/g]
  for (const file of sources) {
    const text = readFileSync(file, 'utf8')
    for (const p of patterns) {
      for (const m of text.matchAll(p)) {
        const target = resolve(dirname(file), m[1])
        if (!existsSync(target)) missing.push(`${relative(app, file)} -> ${m[1]}`)
      }
    }
  }
  return missing
}

interface Started { ready?: Record<string, unknown>, lines: string[], stop: () => Promise<number | null> }

/** Starts `args` with `node` in `cwd` and waits (bounded) for its JSON `ready` or `error` line; `stop` sends SIGINT and waits for the exit (SIGKILL after STOP_MS: null). */
async function startUntilReady (node: string, cwd: string, args: string[]): Promise<Started> {
  const child = spawn(node, args, { cwd, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, P2PCHAT_BOOTSTRAP: '' } })
  const lines: string[] = []
  child.stderr.on('data', (b: Buffer) => { lines.push(...b.toString().split('\n').filter(l => l !== '').map(l => `stderr: ${l}`)) })
  const exited = new Promise<number | null>(resolve => { child.on('exit', code => { resolve(code) }) })
  let ready: Record<string, unknown> | undefined
  await new Promise<void>(resolve => {
    const timer = setTimeout(() => { lines.push(`(no ready line within ${READY_MS} ms)`); resolve() }, READY_MS)
    createInterface({ input: child.stdout }).on('line', line => {
      lines.push(line)
      let obj: Record<string, unknown>
      try { obj = JSON.parse(line) as Record<string, unknown> } catch { return }
      if (obj.event === 'ready' || obj.event === 'error') {
        if (obj.event === 'ready') ready = obj
        clearTimeout(timer)
        resolve()
      }
    })
    void exited.then(() => { clearTimeout(timer); resolve() })
  })
  const stop = async (): Promise<number | null> => {
    child.kill('SIGINT')
    let timer: ReturnType<typeof setTimeout> | undefined
    const code = await Promise.race([exited, new Promise<'timeout'>(resolve => { timer = setTimeout(() => { resolve('timeout') }, STOP_MS) })])
    clearTimeout(timer)
    if (code !== 'timeout') return code
    lines.push(`(no exit within ${STOP_MS} ms of SIGINT: killed)`)
    child.kill('SIGKILL')
    return null
  }
  return { ready, lines, stop }
}

async function main (): Promise<number> {
  const keep = process.argv.includes('--keep')
  const failures: string[] = []
  const step = (ok: boolean, what: string, detail = ''): void => {
    process.stdout.write(`${ok ? 'ok  ' : 'FAIL'} ${what}${detail === '' ? '' : `: ${detail}`}\n`)
    if (!ok) failures.push(what)
  }
  const docker = parse(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'))
  const node = realpathSync(join(ROOT, 'node_modules', '.bin', 'node'))
  const root = mkdtempSync(join(tmpdir(), 'p2pchat-dockerfile-'))
  const app = join(root, docker.workdir.replace(/^\//, ''))
  mkdirSync(app, { recursive: true })
  try {
    // 1. the COPY lines, from the build context less .dockerignore
    const skip = ignored()
    for (const c of docker.copies) {
      for (const src of c.sources) {
        const top = src.replace(/^\.\//, '').split('/')[0]
        if (skip.has(top)) { step(false, `COPY ${src}`, 'left out of the build context by .dockerignore'); continue }
        const from = join(ROOT, src)
        if (!existsSync(from)) { step(false, `COPY ${src}`, 'no such file in the checkout'); continue }
        const to = c.dest.endsWith('/') && !statSync(from).isDirectory() ? join(app, c.dest, src.split('/').pop() ?? src) : join(app, c.dest)
        cpSync(from, to, { recursive: true })
      }
    }
    step(true, `copied ${docker.copies.length} COPY lines into ${app}`, `${filesUnder(app).length} files`)

    // 2. the RUN line's npm ci
    const npm = spawnSync('npm', docker.npm.length > 0 ? docker.npm : ['ci'], { cwd: app, encoding: 'utf8', timeout: 600_000 })
    step(npm.status === 0, `npm ${docker.npm.join(' ')}`, npm.status === 0 ? '' : (npm.stderr ?? '').split('\n').slice(-5).join(' | '))

    // 3. relative imports
    const missing = missingImports(app)
    step(missing.length === 0, 'every relative import of the copied sources names a copied file', missing.join(', '))

    // 4. the program, from the copy, with Node 24
    const bin = docker.entrypoint[1]
    const binRel = relative(docker.workdir, bin)
    step(existsSync(join(app, binRel)), `the ENTRYPOINT's program ${bin}`)
    const help = spawnSync(node, [join(app, binRel), 'start', '--relay', '--help'], { cwd: app, encoding: 'utf8', timeout: 60_000 })
    step(help.status === 0 && /--relay/.test(help.stdout), 'p2pchat start --relay --help', help.status === 0 ? `${help.stdout.split('\n').length} lines` : `exit ${String(help.status)}: ${help.stderr.split('\n').slice(0, 3).join(' | ')}`)

    // the bootstrap node the relay needs runs from this checkout: only the relay stands for the image
    const bs = await startUntilReady(node, ROOT, [join(ROOT, 'bin', 'p2pchat.cjs'), 'bootstrap', '--json', '--listen', '/ip4/127.0.0.1/tcp/0', '--data-dir', join(root, 'bootstrap-data')])
    try {
      const bsAddr = (bs.ready?.addrs as string[] | undefined)?.find(a => a.includes('/tcp/') && !a.includes('/ws'))
      step(bsAddr != null, 'a bootstrap node (from this checkout) on 127.0.0.1: ready', bsAddr ?? bs.lines.slice(-5).join(' | '))
      if (bsAddr != null) {
        // the ENTRYPOINT's arguments, its data directory a temporary one and its 0.0.0.0 listen addresses loopback ones on free ports
        const entry = docker.entrypoint.slice(2).map(a => a.startsWith('/var/lib/') ? join(root, 'relay-data') : a.replace(/^\/ip4\/0\.0\.0\.0\/tcp\/\d+/, '/ip4/127.0.0.1/tcp/0'))
        const relay = await startUntilReady(node, app, [join(app, binRel), ...entry, '--json', '--bootstrap', bsAddr])
        const code = await relay.stop()
        step(relay.ready != null, `p2pchat ${entry.join(' ')} --json --bootstrap <it> from the copy: ready`, relay.ready == null ? relay.lines.slice(-6).join(' | ') : `${String(relay.ready.relays)} relays known, ${String(relay.ready.sphinxThreads)} Sphinx threads`)
        step(code === 0, 'the relay: a clean exit on SIGINT', `exit ${String(code)}`)
      }
    } finally {
      const code = await bs.stop()
      step(code === 0, 'the bootstrap node: a clean exit on SIGINT', `exit ${String(code)}`)
    }
  } finally {
    if (keep) process.stdout.write(`kept ${root}\n`)
    else rmSync(root, { recursive: true, force: true })
  }
  process.stdout.write(failures.length === 0 ? 'the image\'s file set is complete for the relay\n' : `${failures.length} failed: ${failures.join('; ')}\n`)
  return failures.length === 0 ? 0 : 1
}

process.exitCode = await main()
