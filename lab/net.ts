/**
 * The lab's network: Linux network namespaces built with `ip` and `iptables` (root only).
 *
 * Shape: one namespace `<prefix>inet` is the "public internet": every site (a relay, the bootstrap node,
 * the WAN side of a NAT router) hangs off it on its own veth pair, in its own /16 of 172.16.0.0/12
 * (site k: inet side 172.(16+k).0.1/24, site side 172.(16+k).0.2/24), so 172.16/12 gives 16 distinct
 * /16s, as relays on different providers would have. Policy routing in `inet` sends every packet
 * arriving from a site into the TUN device `dly0`, where lab/delay.py holds it for the link delay (or
 * drops it) and writes it back; the kernel then routes it to the destination site. The kernel here has
 * no netem, so this user-space forwarder is what makes the latency and loss, and it reports the delay
 * it actually applied.
 *
 * A NAT LAN: a router namespace with its WAN on a site and a bridge `br0` at 10.<lan>.0.1/24; hosts in
 * their own namespaces at 10.<lan>.0.<10+j>, default route via the router. The router MASQUERADEs out
 * of its WAN and drops every new connection coming in from the WAN (a home router with no port
 * forward); `symmetric` adds `--random-fully` (a new random public port per connection: the mapping
 * depends on the destination, as a symmetric NAT's does). Nothing in `inet` routes to 10/8: hosts
 * behind NAT can only dial out.
 *
 * Every namespace is named `p2plab<pid>-<name>`: `cleanupLeftovers()` removes those whose lab process
 * is gone (after a SIGKILL of the lab), and `teardown()` (synchronous, so it runs from an 'exit'
 * handler too) kills every process left in the lab's namespaces and deletes them. Only addresses of
 * 172.16.0.0/12 and 10.0.0.0/8 inside these namespaces are used, never any outside address.
 */
import { execFileSync, spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The namespace name prefix of every lab; the lab's pid follows it. */
export const NS_PREFIX = 'p2plab'
/** 172.16.0.0/12 holds 16 /16s: sites 0..15. */
export const MAX_SITES = 16
const DELAY_PY = fileURLToPath(new URL('./delay.py', import.meta.url))

/** The lab cannot run here (no root, no `ip netns`, no iptables, no TUN, no python3): the message says what to run. */
export class LabUnavailableError extends Error {
  override name = 'LabUnavailableError'
}

/** A command building the network failed. */
export class LabNetError extends Error {
  override name = 'LabNetError'
}

function run (cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  } catch (err) {
    const e = err as { stderr?: string, message: string }
    throw new LabNetError(`${cmd} ${args.join(' ')}: ${(e.stderr ?? e.message).trim()}`)
  }
}

function has (cmd: string, args: string[]): boolean {
  try { execFileSync(cmd, args, { stdio: 'ignore' }); return true } catch { return false }
}

/** Throws LabUnavailableError naming what is missing and what to run, unless the lab can run here. */
export function preflight (): void {
  const missing: string[] = []
  if (process.getuid?.() !== 0) {
    throw new LabUnavailableError('the lab needs root to create network namespaces: run it as root (sudo npm run lab), or run `npm test` and `npm run bench`, which need no root')
  }
  if (!has('ip', ['netns', 'list'])) missing.push('`ip netns` (apt-get install -y iproute2)')
  if (!has('iptables', ['--version'])) missing.push('iptables (apt-get install -y iptables)')
  if (!has('python3', ['--version'])) missing.push('python3 (apt-get install -y python3), which runs the delaying forwarder')
  if (!existsSync('/dev/net/tun')) missing.push('/dev/net/tun (modprobe tun; in a container, pass the device in)')
  if (missing.length > 0) throw new LabUnavailableError(`the lab cannot run here: missing ${missing.join(', ')}`)
}

function alive (pid: number): boolean {
  try { process.kill(pid, 0); return true } catch (err) { return (err as NodeJS.ErrnoException).code === 'EPERM' }
}

function nsList (): string[] {
  return run('ip', ['netns', 'list']).split('\n').map(l => l.trim().split(/\s+/)[0]).filter(n => n != null && n !== '')
}

/** Kills every process in `ns` and deletes it; never throws. */
function destroyNs (ns: string): void {
  try {
    const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
    for (const p of pids.split('\n').map(Number).filter(n => n > 0)) {
      try { process.kill(p, 'SIGKILL') } catch {}
    }
  } catch {}
  try { execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }) } catch {}
}

/**
 * Deletes the namespaces (and the temporary data directories, `<tmpdir>/p2plab<pid>-*`) of labs whose
 * process is gone; returns the namespaces' names.
 */
export function cleanupLeftovers (): string[] {
  const gone: string[] = []
  for (const dir of readdirSync(tmpdir())) {
    const m = new RegExp(`^${NS_PREFIX}(\\d+)-`).exec(dir)
    if (m != null && Number(m[1]) !== process.pid && !alive(Number(m[1]))) rmSync(join(tmpdir(), dir), { recursive: true, force: true })
  }
  for (const ns of nsList()) {
    const m = new RegExp(`^${NS_PREFIX}(\\d+)-`).exec(ns)
    if (m == null) continue
    const pid = Number(m[1])
    if (pid !== process.pid && alive(pid)) continue
    destroyNs(ns)
    gone.push(ns)
  }
  return gone
}

export interface LinkShape {
  /** one-way delay of a trip across the internet, ms */
  delayMs: number
  /** uniform jitter around it, ms */
  jitterMs: number
  /** probability a packet is dropped, 0..1 */
  loss: number
}

export interface Site { name: string, ns: string, addr: string, index: number }
export interface Lan { name: string, router: Site, lan: number, symmetric: boolean, hosts: number }
export interface Host { name: string, ns: string, addr: string, lan: Lan }

export class LabNet {
  readonly prefix = `${NS_PREFIX}${process.pid}-`
  readonly inet: string
  private readonly namespaces: string[] = []
  private delay: ChildProcess | undefined
  private torn = false
  private splitChain = false
  readonly statsFile: string

  constructor (statsDir: string) {
    this.inet = this.newNs('inet')
    this.statsFile = `${statsDir}/delay-stats.json`
    this.sh(this.inet, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0'])
    run('ip', ['-n', this.inet, 'tuntap', 'add', 'dev', 'dly0', 'mode', 'tun'])
    run('ip', ['-n', this.inet, 'link', 'set', 'dly0', 'up'])
    this.sh(this.inet, 'sysctl', ['-qw', 'net.ipv4.conf.dly0.rp_filter=0'])
    run('ip', ['-n', this.inet, 'route', 'add', 'default', 'dev', 'dly0', 'table', '100'])
  }

  private newNs (name: string): string {
    const ns = this.prefix + name
    run('ip', ['netns', 'add', ns])
    this.namespaces.push(ns)
    run('ip', ['-n', ns, 'link', 'set', 'lo', 'up'])
    return ns
  }

  /** How many namespaces the lab made. */
  get size (): number { return this.namespaces.length }

  /** Runs a command inside `ns` (synchronously). */
  sh (ns: string, cmd: string, args: string[]): string {
    return run('ip', ['netns', 'exec', ns, cmd, ...args])
  }

  /** A public site: its own namespace in 172.(16+index).0.0/16, one hop from the internet. */
  site (name: string, index: number): Site {
    if (index < 0 || index >= MAX_SITES) throw new LabNetError(`site index ${index} outside 0..${MAX_SITES - 1}`)
    const ns = this.newNs(name)
    const o = 16 + index
    run('ip', ['link', 'add', `s${index}`, 'netns', this.inet, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns])
    run('ip', ['-n', this.inet, 'addr', 'add', `172.${o}.0.1/24`, 'dev', `s${index}`])
    run('ip', ['-n', this.inet, 'link', 'set', `s${index}`, 'up'])
    run('ip', ['-n', this.inet, 'rule', 'add', 'iif', `s${index}`, 'lookup', '100', 'pref', String(100 + index)])
    run('ip', ['-n', ns, 'addr', 'add', `172.${o}.0.2/24`, 'dev', 'eth0'])
    run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up'])
    run('ip', ['-n', ns, 'route', 'add', 'default', 'via', `172.${o}.0.1`])
    return { name, ns, addr: `172.${o}.0.2`, index }
  }

  /** A private LAN 10.<lan>.0.0/24 behind a NAT router whose WAN is site `index`. */
  natLan (name: string, index: number, lan: number, symmetric: boolean): Lan {
    const router = this.site(name, index)
    const r = router.ns
    run('ip', ['-n', r, 'link', 'add', 'br0', 'type', 'bridge'])
    run('ip', ['-n', r, 'addr', 'add', `10.${lan}.0.1/24`, 'dev', 'br0'])
    run('ip', ['-n', r, 'link', 'set', 'br0', 'up'])
    this.sh(r, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1'])
    this.sh(r, 'iptables', ['-t', 'nat', '-A', 'POSTROUTING', '-o', 'eth0', '-j', 'MASQUERADE', ...(symmetric ? ['--random-fully'] : [])])
    // a home router without port forwards: replies come in, new connections from outside do not
    this.sh(r, 'iptables', ['-A', 'FORWARD', '-i', 'eth0', '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT'])
    this.sh(r, 'iptables', ['-A', 'FORWARD', '-i', 'eth0', '-j', 'DROP'])
    this.sh(r, 'iptables', ['-A', 'INPUT', '-i', 'eth0', '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT'])
    this.sh(r, 'iptables', ['-A', 'INPUT', '-i', 'eth0', '-j', 'DROP'])
    return { name, router, lan, symmetric, hosts: 0 }
  }

  /** A host in a NAT LAN. */
  host (name: string, lan: Lan): Host {
    const j = ++lan.hosts
    const ns = this.newNs(name)
    const addr = `10.${lan.lan}.0.${9 + j}`
    run('ip', ['link', 'add', `h${j}`, 'netns', lan.router.ns, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns])
    run('ip', ['-n', lan.router.ns, 'link', 'set', `h${j}`, 'master', 'br0'])
    run('ip', ['-n', lan.router.ns, 'link', 'set', `h${j}`, 'up'])
    run('ip', ['-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'eth0'])
    run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up'])
    run('ip', ['-n', ns, 'route', 'add', 'default', 'via', `10.${lan.lan}.0.1`])
    return { name, ns, addr, lan }
  }

  /** A port forward on the LAN's router: TCP `port` on its WAN address goes to `host` (what an operator sets up). */
  portForward (lan: Lan, host: Host, port: number): void {
    const r = lan.router.ns
    this.sh(r, 'iptables', ['-t', 'nat', '-A', 'PREROUTING', '-i', 'eth0', '-p', 'tcp', '--dport', String(port), '-j', 'DNAT', '--to-destination', `${host.addr}:${port}`])
    this.sh(r, 'iptables', ['-I', 'FORWARD', '1', '-i', 'eth0', '-p', 'tcp', '-d', host.addr, '--dport', String(port), '-m', 'conntrack', '--ctstate', 'DNAT', '-j', 'ACCEPT'])
  }

  /**
   * A network split: the internet drops every packet between a site of `a` and a site of `b` (both
   * ways, connections already open included), as a cut between two providers would; sites within one
   * half still reach each other. Rules live in their own chain `p2psplit` of `inet`'s FORWARD, so
   * `heal()` removes them all at once. Packets are dropped, not refused: TCP on both sides only learns
   * of the split by its own timeouts.
   */
  split (a: Site[], b: Site[]): void {
    if (!this.splitChain) {
      this.sh(this.inet, 'iptables', ['-N', 'p2psplit'])
      this.sh(this.inet, 'iptables', ['-I', 'FORWARD', '1', '-j', 'p2psplit'])
      this.splitChain = true
    }
    const net = (s: Site): string => `172.${16 + s.index}.0.0/16`
    for (const x of a) {
      for (const y of b) {
        this.sh(this.inet, 'iptables', ['-A', 'p2psplit', '-s', net(x), '-d', net(y), '-j', 'DROP'])
        this.sh(this.inet, 'iptables', ['-A', 'p2psplit', '-s', net(y), '-d', net(x), '-j', 'DROP'])
      }
    }
  }

  /** Ends every split; returns how many packets the split dropped. */
  heal (): number {
    if (!this.splitChain) return 0
    const counts = this.sh(this.inet, 'iptables', ['-L', 'p2psplit', '-v', '-n', '-x'])
    const dropped = counts.split('\n').map(l => /^\s*(\d+)\s+\d+\s+DROP/.exec(l)).reduce((n, m) => n + (m == null ? 0 : Number(m[1])), 0)
    this.sh(this.inet, 'iptables', ['-F', 'p2psplit'])
    return dropped
  }

  /** Starts the delaying forwarder; resolves once it is attached to dly0. */
  async startDelay (shape: LinkShape, seed: number): Promise<void> {
    const p = spawn('ip', ['netns', 'exec', this.inet, 'python3', DELAY_PY, 'dly0', String(shape.delayMs), String(shape.jitterMs), String(shape.loss), this.statsFile, String(seed)],
      { stdio: ['ignore', 'pipe', 'inherit'] })
    this.delay = p
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new LabNetError('the delaying forwarder did not start within 10 s')) }, 10_000)
      p.stdout.once('data', () => { clearTimeout(timer); resolve() })
      p.once('exit', code => { clearTimeout(timer); reject(new LabNetError(`the delaying forwarder exited (${code})`)) })
    })
  }

  /** What the forwarder reports (packets, drops, applied delay percentiles); written each second and at its exit. */
  async stopDelay (): Promise<Record<string, number | null>> {
    const p = this.delay
    if (p != null && p.exitCode == null) {
      const exited = new Promise(resolve => p.once('exit', resolve))
      p.kill('SIGTERM')
      await Promise.race([exited, new Promise(resolve => setTimeout(resolve, 5000).unref())])
    }
    return existsSync(this.statsFile) ? JSON.parse(readFileSync(this.statsFile, 'utf8')) : {}
  }

  /** Bytes through a namespace's eth0 so far. */
  counters (ns: string): { rx: number, tx: number } {
    const read = (what: string): number => Number(this.sh(ns, 'cat', [`/sys/class/net/eth0/statistics/${what}_bytes`]).trim())
    return { rx: read('rx'), tx: read('tx') }
  }

  /** Kills everything in the lab's namespaces and deletes them. Synchronous; safe to call twice. */
  teardown (): void {
    if (this.torn) return
    this.torn = true
    try { this.delay?.kill('SIGKILL') } catch {}
    for (const ns of [...this.namespaces].reverse()) destroyNs(ns)
  }
}
