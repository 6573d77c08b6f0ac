/**
 * A chat network of real `p2pchat` processes on loopback (protocol version 2): one `bootstrap --json`,
 * relays (`start --relay --json`, no nick, each listening on 127.N.0.1 so each sits in its own /16 as
 * on the Internet) and users (`start --json --nick`, listening nowhere: clients of an entry relay),
 * each with its own data directory under one temporary root. `teardown()` stops every process
 * (SIGINT, then SIGKILL) and removes the root.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CliProcess } from './cli.ts'
import { waitFor } from './wait.ts'

export const LOOPBACK_LISTEN = ['--listen', '/ip4/127.0.0.1/tcp/0']
/**
 * Quick timers for loopback (the keys of cli/args.ts TIMING_KEYS): relays announce every second, the
 * outbox is retried every second, a request through the onion gives up after 5 s, reply blocks are
 * re-stocked every 2 s.
 */
export const TEST_TIMING = { announceIntervalMs: 1_000, retryIntervalMs: 1_000, requestTimeoutMs: 5_000, stockIntervalMs: 2_000, crossCheckMaxDelayMs: 2_000 }
/** TEST_TIMING for relays too: a mailbox pushes an unacknowledged item again after 5 s, not 5 minutes (tests that lose blocks). */
export const TEST_RELAY_TIMING = { ...TEST_TIMING, repushIntervalMs: 5_000 }

export type Json = Record<string, unknown>

export class CliNetwork {
  readonly root = mkdtempSync(join(tmpdir(), 'p2pchat-clinet-'))
  readonly procs: CliProcess[] = []
  bootstrapAddr = ''
  readonly env: NodeJS.ProcessEnv
  private relaySeq = 0

  constructor (timing: Record<string, number> = TEST_TIMING) {
    this.env = { P2PCHAT_TIMING: JSON.stringify(timing) }
  }

  spawn (args: string[], env: NodeJS.ProcessEnv = this.env): CliProcess {
    const p = new CliProcess(args, env)
    this.procs.push(p)
    return p
  }

  dataDir (name: string): string { return join(this.root, name) }

  async bootstrap (): Promise<string> {
    const p = this.spawn(['bootstrap', '--json', ...LOOPBACK_LISTEN, '--data-dir', this.dataDir('bootstrap')])
    const ready = await p.waitForJson(o => o.event === 'ready')
    this.bootstrapAddr = (ready.addrs as string[])[0]
    return this.bootstrapAddr
  }

  /**
   * Spawns `p2pchat start --relay --json` on 127.<n>.0.1 (a /16 of its own) without waiting. `name`
   * names its data directory (default relay<n>); `listen` pins the address, e.g. to restart a relay
   * where its descriptor says it is.
   */
  spawnRelay (opts: { name?: string, listen?: string, env?: NodeJS.ProcessEnv } = {}): CliProcess {
    const n = ++this.relaySeq
    return this.spawn(['start', '--relay', '--json', '--listen', opts.listen ?? `/ip4/127.${n}.0.1/tcp/0`,
      '--bootstrap', this.bootstrapAddr, '--data-dir', this.dataDir(opts.name ?? `relay${n}`)], opts.env ?? this.env)
  }

  /** spawnRelay, resolving at its ready line. */
  async relay (opts: { name?: string, listen?: string, env?: NodeJS.ProcessEnv } = {}): Promise<{ proc: CliProcess, ready: Json }> {
    const proc = this.spawnRelay(opts)
    return { proc, ready: await readyOf(proc, 'relay') }
  }

  /** `n` relays, started together; resolves when each and every user-facing list knows all of them. */
  async relays (n: number, opts: { env?: NodeJS.ProcessEnv } = {}): Promise<Array<{ proc: CliProcess, ready: Json }>> {
    const started = await Promise.all(Array.from({ length: n }, async () => await this.relay(opts)))
    await Promise.all(started.map(async r => { await this.waitForRelays(r.proc, n) }))
    return started
  }

  /**
   * Spawns `p2pchat start --json --nick <nick>` (no listening address) without waiting. `dataDir`
   * defaults to one per nick. With --accept-anyone (strangers receipted at once) unless `requests`.
   */
  spawnUser (nick: string, opts: { dataDir?: string, env?: NodeJS.ProcessEnv, requests?: boolean } = {}): CliProcess {
    return this.spawn(['start', '--json', '--nick', nick, '--bootstrap', this.bootstrapAddr,
      '--data-dir', opts.dataDir ?? this.dataDir(nick), ...(opts.requests === true ? [] : ['--accept-anyone'])], opts.env ?? this.env)
  }

  /** spawnUser, resolving at its ready line. */
  async start (nick: string, opts: { dataDir?: string, env?: NodeJS.ProcessEnv, requests?: boolean } = {}): Promise<{ proc: CliProcess, ready: Json }> {
    const proc = this.spawnUser(nick, opts)
    return { proc, ready: await readyOf(proc, nick) }
  }

  /** Polls {"cmd":"relays"} until the process knows at least `n` relays. */
  async waitForRelays (proc: CliProcess, n: number, timeoutMs = 60_000): Promise<void> {
    await waitFor(async () => Number((await proc.ask({ cmd: 'relays' })).count) >= n, `${n} relays known`, timeoutMs, 250)
  }

  /** Stops every process still running; returns the exit codes of those it stopped. */
  async teardown (): Promise<Array<number | null>> {
    const codes = await Promise.all(this.procs.map(async p => await p.stop()))
    rmSync(this.root, { recursive: true, force: true })
    return codes
  }
}

async function readyOf (proc: CliProcess, who: string): Promise<Json> {
  const ready = await proc.waitForJson(o => o.event === 'ready' || o.event === 'error', 90_000)
  if (ready.event !== 'ready') throw new Error(`${who} did not start: ${JSON.stringify(ready)}; stderr: ${proc.stderr}`)
  return ready
}
