/**
 * A chat network of real `p2pchat` processes on loopback: one `bootstrap --json`, then any number of
 * `start --json` users and relays, each with its own data directory under one temporary root.
 * `teardown()` stops every process (SIGINT, then SIGKILL) and removes the root.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CliProcess } from './cli.ts'
import { waitFor } from './wait.ts'

export const LOOPBACK_LISTEN = ['--listen', '/ip4/127.0.0.1/tcp/0']
/** Quick timers for loopback: relays announce every second, the outbox is retried every second. */
export const TEST_TIMING = { announceIntervalMs: 1_000, retryIntervalMs: 1_000, receiptTimeoutMs: 5_000 }

export class CliNetwork {
  readonly root = mkdtempSync(join(tmpdir(), 'p2pchat-clinet-'))
  readonly procs: CliProcess[] = []
  bootstrapAddr = ''
  readonly env: NodeJS.ProcessEnv = { P2PCHAT_TIMING: JSON.stringify(TEST_TIMING) }

  spawn (args: string[]): CliProcess {
    const p = new CliProcess(args, this.env)
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

  /** Spawns `p2pchat start --json --nick <nick>` on loopback without waiting. `dataDir` defaults to one per nick. */
  spawnUser (nick: string, opts: { relay?: boolean, dataDir?: string } = {}): CliProcess {
    return this.spawn(['start', '--json', '--nick', nick, ...(opts.relay === true ? ['--relay'] : []),
      ...LOOPBACK_LISTEN, '--bootstrap', this.bootstrapAddr, '--data-dir', opts.dataDir ?? this.dataDir(nick)])
  }

  /** spawnUser, resolving at its ready line. */
  async start (nick: string, opts: { relay?: boolean, dataDir?: string } = {}): Promise<{ proc: CliProcess, ready: Record<string, unknown> }> {
    const proc = this.spawnUser(nick, opts)
    const ready = await proc.waitForJson(o => o.event === 'ready' || o.event === 'error', 60_000)
    if (ready.event !== 'ready') throw new Error(`${nick} did not start: ${JSON.stringify(ready)}; stderr: ${proc.stderr}`)
    return { proc, ready }
  }

  /** Polls {"cmd":"relays"} until the process knows at least `n` relays. */
  async waitForRelays (proc: CliProcess, n: number, timeoutMs = 30_000): Promise<void> {
    await waitFor(async () => Number((await proc.ask({ cmd: 'relays' })).count) >= n, `${n} relays known`, timeoutMs, 250)
  }

  /** Stops every process still running; returns the exit codes of those it stopped. */
  async teardown (): Promise<Array<number | null>> {
    const codes = await Promise.all(this.procs.map(async p => await p.stop()))
    rmSync(this.root, { recursive: true, force: true })
    return codes
  }
}
