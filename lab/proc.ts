/**
 * One real `p2pchat` process inside a lab namespace (`ip netns exec <ns> node cli/bin.ts ...`; `ip`
 * execs the command, so the child's pid is the p2pchat process and signals reach it directly). Reads
 * its `--json` stdout line by line, timing each line on arrival with the lab's clock (performance.now()),
 * so latencies across processes are measured on one clock. Every wait has a timeout.
 */
import { spawn } from 'node:child_process'
import type { ChildProcessWithoutNullStreams } from 'node:child_process'
import { appendFileSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

export const BIN = fileURLToPath(new URL('../cli/bin.ts', import.meta.url))

export type Json = Record<string, unknown>

/**
 * Diagnostics: with LAB_LOG_DIR set, every process's stdout and stderr lines are appended to
 * `<dir>/<name>.log` (a restarted process appends to its name's file), each prefixed with the lab's
 * clock in ms and `out`/`err`, so a failed scenario leaves what each process said. Off by default:
 * the files hold nicks and message text of the lab's own users.
 */
const LOG_DIR = process.env.LAB_LOG_DIR ?? ''

/** A wait for a process's output timed out, or the process ended first. */
export class LabProcessError extends Error {
  override name = 'LabProcessError'
}

export class LabProcess {
  readonly child: ChildProcessWithoutNullStreams
  readonly events: Array<{ obj: Json, at: number }> = []
  readonly startedAt = performance.now()
  stderr = ''
  private readonly waiters = new Set<() => void>()
  readonly exited: Promise<number | null>
  private nextTag = 0
  readonly name: string
  readonly ns: string

  constructor (name: string, ns: string, args: string[], env: NodeJS.ProcessEnv) {
    this.name = name
    this.ns = ns
    this.child = spawn('ip', ['netns', 'exec', ns, process.execPath, BIN, ...args], {
      env: { ...process.env, P2PCHAT_BOOTSTRAP: '', ...env },
      stdio: ['pipe', 'pipe', 'pipe']
    })
    const logFile = LOG_DIR === '' ? '' : join(LOG_DIR, `${name}.log`)
    if (logFile !== '') mkdirSync(LOG_DIR, { recursive: true })
    const log = (kind: string, text: string): void => {
      if (logFile === '') return
      // a diagnostic file that cannot be written (disk full) never stops the lab
      try { appendFileSync(logFile, `${performance.now().toFixed(0)} ${kind} ${text}\n`) } catch {}
    }
    log('---', `spawn ${args.join(' ')}`)
    createInterface({ input: this.child.stdout }).on('line', line => {
      const at = performance.now()
      log('out', line)
      try {
        const obj = JSON.parse(line) as unknown
        if (obj != null && typeof obj === 'object' && !Array.isArray(obj)) this.events.push({ obj: obj as Json, at })
      } catch {}
      for (const w of this.waiters) w()
    })
    this.child.stderr.on('data', (chunk: Buffer) => { this.stderr = (this.stderr + chunk.toString()).slice(-20_000) })
    if (logFile !== '') createInterface({ input: this.child.stderr }).on('line', line => { log('err', line) })
    this.child.stdin.on('error', () => {})
    this.exited = new Promise(resolve => {
      this.child.on('exit', code => {
        log('---', `exit ${code ?? this.child.signalCode}`)
        for (const w of this.waiters) w()
        resolve(code)
      })
    })
  }

  get running (): boolean { return this.child.exitCode == null && this.child.signalCode == null }

  /** The first event (from `from` on) matching `pred`. */
  async waitFor (pred: (o: Json) => boolean, timeoutMs: number, from = 0): Promise<{ obj: Json, at: number }> {
    return await new Promise((resolve, reject) => {
      const check = (): void => {
        for (let i = from; i < this.events.length; i++) {
          if (pred(this.events[i].obj)) { done(); resolve(this.events[i]); return }
        }
        if (!this.running) { done(); reject(new LabProcessError(`${this.name} exited (${this.child.exitCode ?? this.child.signalCode}) before the expected line; stderr: ${this.stderr.slice(-2000)}`)) }
      }
      const timer = setTimeout(() => { done(); reject(new LabProcessError(`${this.name}: no expected line within ${timeoutMs} ms; stderr: ${this.stderr.slice(-2000)}`)) }, timeoutMs)
      const done = (): void => { clearTimeout(timer); this.waiters.delete(check) }
      this.waiters.add(check)
      check()
    })
  }

  send (obj: Json): void {
    if (this.running) this.child.stdin.write(JSON.stringify(obj) + '\n')
  }

  /** Sends a command with a fresh tag and waits for the answer carrying it. */
  async ask (cmd: Json, timeoutMs = 30_000): Promise<Json> {
    const tag = `lab${++this.nextTag}`
    const from = this.events.length
    this.send({ ...cmd, tag })
    return (await this.waitFor(o => o.tag === tag, timeoutMs, from)).obj
  }

  /** SIGINT, then SIGKILL after `graceMs`; resolves with the exit code. */
  async stop (graceMs = 10_000): Promise<number | null> {
    if (!this.running) return this.child.exitCode
    this.child.kill('SIGINT')
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs)
    try { return await this.exited } finally { clearTimeout(timer) }
  }
}
