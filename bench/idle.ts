/**
 * What an idle node costs, as people run it (issue 13 item 4): every node a real `p2pchat` process
 * (test/helpers/cli-network.ts spawns them) on loopback: a bootstrap node, relays, and users that are
 * ready (entry relay, mailboxes, name published) and then do nothing. After `settleMs` of quiet the
 * bench reads, from /proc (Linux only), each process's resident set (VmRSS), its private part
 * (RssAnon: without the pages of the Node binary and shared libraries, which all Node processes
 * share) and its CPU time (utime + stime) over a window of `windowMs`:
 *
 * - a user (`p2pchat start --nick`), a relay (`start --relay`) and the bootstrap node (`bootstrap`),
 *   run from the sources as in a checkout (Node strips the TypeScript types, which loads its type
 *   stripper, ~17 MiB), started as `node cli/bin.ts` (test/helpers/cli.ts), so without the launcher's
 *   V8 flags;
 * - a user, a relay and a bootstrap node run as installed from a package: its launcher bin/p2pchat.cjs, which starts a user's node
 *   with V8's memory flags, running the bundled JavaScript that `npm pack` puts in dist/ (built here
 *   with tsconfig.build.json and scripts/bundle.ts into a temporary directory, as prepack does);
 * - beside them, in the same run, two baselines: an idle Node process that loaded nothing (the floor
 *   of any Node program) and one that only imported the modules a user's `p2pchat start` imports
 *   (cli/commands/start.ts's static graph, no node built; cli/main.ts imports each command only when
 *   it runs), so the rows say how much is Node, how much is code, and how much is the running node.
 *
 * Timers: the product's defaults (no P2PCHAT_TIMING) except the relay announce interval, shortened so
 * that a small network forms within the bench (announceIntervalMs 5 s, as bench/first-message.ts);
 * idle CPU of a relay therefore counts an announce every 5 s, more than a real relay's. The privacy
 * level is the default (`standard`; CliProcess would set `fast`), so a user's idle CPU includes its
 * cover traffic once a level sends any (none does yet: node/privacy.ts).
 *
 * Not a test: nothing here asserts on memory or time.
 *
 *   node bench/idle.ts          (or npm run bench -- --only=idle)
 */
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { readFileSync, rmSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { CliNetwork } from '../test/helpers/cli-network.ts'
import type { CliProcess } from '../test/helpers/cli.ts'
import { buildPackage, launcherIn } from './lib/package.ts'
import { summarize } from './lib/stats.ts'
import type { Summary } from './lib/stats.ts'

/** Linux's clock ticks per second for /proc/<pid>/stat (USER_HZ: 100 on every mainstream kernel). */
const CLOCK_TICKS = 100
const MIB = 2 ** 20
/** Relays announce every 5 s instead of minutes, so that the bench's network forms quickly. */
const TIMING = { announceIntervalMs: 5_000 }
/** The privacy level a user runs at when it names none (node/privacy.ts DEFAULT_PRIVACY). */
const ENV = { P2PCHAT_TIMING: JSON.stringify(TIMING), P2PCHAT_PRIVACY: 'standard' }

export interface IdleOptions {
  relays: number
  users: number
  /** quiet time after the last node is ready, before the window */
  settleMs: number
  /** the window over which CPU time is counted; RSS is sampled every second in it */
  windowMs: number
  log: (line: string) => void
}

export interface IdleCost {
  /** VmRSS samples over the window, MiB */
  rss: Summary
  /**
   * RssAnon samples, MiB: the process's private memory. VmRSS also counts the pages of the Node binary
   * and of shared libraries that the process touched (RssFile), which every Node process on the
   * machine shares and the kernel may drop and read again.
   */
  anon: Summary
  /** VmHWM at the end: the peak resident set since the process started, MiB */
  peakRss: number
  /** CPU time over the window as a share of one core, % */
  cpuPercent: number
}

export interface IdleResult {
  settleMs: number
  windowMs: number
  /** one per process of the role */
  user: IdleCost[]
  /** a user run from the built package (dist/) through its launcher (bin/p2pchat.cjs), as installed */
  installedUser: IdleCost
  /** a relay of the same network, run from the built package */
  installedRelay: IdleCost
  /** a second bootstrap node (alone: nobody joins it), run from the built package */
  installedBootstrap: IdleCost
  relay: IdleCost[]
  bootstrap: IdleCost[]
  /** node -e with a timer: Node alone */
  bareNode: IdleCost
  /** Node that imported the modules of `p2pchat start` (cli/main.ts, cli/commands/start.ts) and built nothing */
  modulesOnly: IdleCost
}

interface ProcSample { rss: number, anon: number, hwm: number, cpuTicks: number }

/** VmRSS, RssAnon, VmHWM (bytes) and utime + stime (ticks) of a live process, from /proc. */
function sample (pid: number): ProcSample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kib = (key: string): number => {
    const m = status.match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm'))
    if (m == null) throw new Error(`no ${key} in /proc/${pid}/status`)
    return Number(m[1]) * 1024
  }
  // fields after the command name (which may hold spaces, hence the last ')'): utime is field 14, stime 15
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return { rss: kib('VmRSS'), anon: kib('RssAnon'), hwm: kib('VmHWM'), cpuTicks: Number(fields[11]) + Number(fields[12]) }
}

/** Samples every pid once a second for `windowMs`; returns each one's cost. */
async function measure (pids: number[], windowMs: number): Promise<IdleCost[]> {
  const first = pids.map(sample)
  const rss: number[][] = pids.map(() => [])
  const anon: number[][] = pids.map(() => [])
  const started = performance.now()
  const seconds = Math.max(1, Math.round(windowMs / 1000))
  for (let s = 0; s < seconds; s++) {
    await new Promise(resolve => setTimeout(resolve, 1000))
    pids.forEach((pid, i) => { const now = sample(pid); rss[i].push(now.rss / MIB); anon[i].push(now.anon / MIB) })
  }
  const elapsed = (performance.now() - started) / 1000
  return pids.map((pid, i) => {
    const last = sample(pid)
    return { rss: summarize(rss[i]), anon: summarize(anon[i]), peakRss: last.hwm / MIB, cpuPercent: 100 * (last.cpuTicks - first[i].cpuTicks) / CLOCK_TICKS / elapsed }
  })
}

/** A plain Node child (same binary as ours) running `code`, resolved once it printed its first line. */
async function nodeChild (args: string[]): Promise<ChildProcess> {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] })
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error('baseline process printed nothing within 60 s')) }, 60_000)
    child.stdout?.once('data', () => { clearTimeout(timer); resolve() })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`baseline process exited (${code})`)) })
  })
  return child
}

/**
 * `p2pchat <args>` (--json) from the built package (bin/p2pchat.cjs, which runs dist/cli/bin.js in
 * the same process: execve, same pid), resolved at its 'ready' line.
 */
async function installedUser (pkg: string, args: string[]): Promise<ChildProcess> {
  const child = spawn(process.execPath, [launcherIn(pkg), ...args], { env: { ...process.env, P2PCHAT_BOOTSTRAP: '', ...ENV }, stdio: ['pipe', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`installed user not ready within 90 s; stderr: ${stderr}`)) }, 90_000)
    createInterface({ input: child.stdout }).on('line', (line) => {
      let event: unknown
      try { event = (JSON.parse(line) as { event?: unknown }).event } catch { return }
      if (event === 'ready') { clearTimeout(timer); resolve() }
      if (event === 'error') { clearTimeout(timer); reject(new Error(`installed user failed: ${line}`)) }
    })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`installed user exited (${code}); stderr: ${stderr}`)) })
  })
  return child
}

export async function idleBench (opts: IdleOptions): Promise<IdleResult> {
  const net = new CliNetwork()
  Object.assign(net.env, ENV)
  const baselines: ChildProcess[] = []
  let pkg: string | undefined
  try {
    pkg = await buildPackage('p2pchat-idle-pkg-')
    await net.bootstrap()
    const relays = await Promise.all(Array.from({ length: opts.relays }, async () => (await net.relay()).proc))
    await Promise.all(relays.map(async r => { await net.waitForRelays(r, opts.relays) }))
    const users: CliProcess[] = []
    for (let i = 0; i < opts.users; i++) {
      const { proc } = await net.start(`idle${i}`)
      users.push(proc)
    }
    const installed = await installedUser(pkg, ['start', '--json', '--nick', 'installed', '--bootstrap', net.bootstrapAddr, '--data-dir', net.dataDir('installed'), '--accept-anyone'])
    baselines.push(installed)
    // a /16 of its own, as the network's relays (test/helpers/cli-network.ts)
    baselines.push(await installedUser(pkg, ['start', '--relay', '--json', '--listen', '/ip4/127.250.0.1/tcp/0', '--bootstrap', net.bootstrapAddr, '--data-dir', net.dataDir('installed-relay')]))
    baselines.push(await installedUser(pkg, ['bootstrap', '--json', '--listen', '/ip4/127.0.0.1/tcp/0', '--data-dir', net.dataDir('installed-bootstrap')]))
    // the "modules only" baseline imports what `p2pchat start` imports (cli/main.ts, then the start
    // command's static graph, as cli/main.ts loads it) and builds nothing
    baselines.push(await nodeChild(['-e', 'setInterval(() => {}, 60_000); console.log("up")']))
    baselines.push(await nodeChild(['--input-type=module', '-e',
      `await import(${JSON.stringify(new URL('../cli/main.ts', import.meta.url).href)}); await import(${JSON.stringify(new URL('../cli/commands/start.ts', import.meta.url).href)}); setInterval(() => {}, 60_000); console.log("up")`]))
    opts.log(`  ${net.procs.length} p2pchat processes ready (bootstrap, ${opts.relays} relays, ${opts.users} users); settling ${opts.settleMs / 1000} s, then a ${opts.windowMs / 1000} s window`)
    await new Promise(resolve => setTimeout(resolve, opts.settleMs))
    for (const p of net.procs) if (p.child.exitCode != null) throw new Error(`a p2pchat process exited while idle: ${p.stderr}`)
    const boot = net.procs[0]
    const pids = [...users, ...relays, boot].map(p => p.child.pid ?? -1).concat(baselines.map(b => b.pid ?? -1))
    if (pids.includes(-1)) throw new Error('a process has no pid')
    const costs = await measure(pids, opts.windowMs)
    return {
      settleMs: opts.settleMs,
      windowMs: opts.windowMs,
      user: costs.slice(0, users.length),
      relay: costs.slice(users.length, users.length + relays.length),
      bootstrap: costs.slice(users.length + relays.length, users.length + relays.length + 1),
      installedUser: costs[costs.length - 5],
      installedRelay: costs[costs.length - 4],
      installedBootstrap: costs[costs.length - 3],
      bareNode: costs[costs.length - 2],
      modulesOnly: costs[costs.length - 1]
    }
  } finally {
    for (const b of baselines) b.kill('SIGKILL')
    await net.teardown()
    if (pkg != null) rmSync(pkg, { recursive: true, force: true })
  }
}

/** The median of the roles' median RSS, and the CPU share, for one row. */
export function roleSummary (costs: IdleCost[]): { rss: Summary, anon: Summary, cpu: Summary, peak: Summary } {
  return { rss: summarize(costs.map(c => c.rss.median)), anon: summarize(costs.map(c => c.anon.median)), cpu: summarize(costs.map(c => c.cpuPercent)), peak: summarize(costs.map(c => c.peakRss)) }
}

if (import.meta.main) {
  const r = await idleBench({ relays: 5, users: 2, settleMs: 10_000, windowMs: 20_000, log: console.log })
  const line = (name: string, c: IdleCost): void => { console.log(`${name.padEnd(34)} RSS ${c.rss.median.toFixed(1).padStart(6)} MiB (private ${c.anon.median.toFixed(1)}, peak ${c.peakRss.toFixed(0)})  CPU ${c.cpuPercent.toFixed(2)} %`) }
  r.user.forEach((c, i) => { line(`user ${i}`, c) })
  r.relay.forEach((c, i) => { line(`relay ${i}`, c) })
  r.bootstrap.forEach(c => { line('bootstrap', c) })
  line('user, installed (bundled dist/)', r.installedUser)
  line('relay, installed', r.installedRelay)
  line('bootstrap, installed', r.installedBootstrap)
  line('baseline: bare Node', r.bareNode)
  line('baseline: p2pchat modules imported', r.modulesOnly)
  process.exit(0)
}
