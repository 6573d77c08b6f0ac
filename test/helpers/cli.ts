/**
 * Runs the real `p2pchat` command in a child process (the same Node that runs the tests) and reads
 * its stdout line by line. Every wait has a timeout; `stop()` sends SIGINT, then SIGKILL if needed.
 */
import { spawn } from 'node:child_process'
import type { ChildProcessWithoutNullStreams } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'
import { TEST_MIXING } from './chat-network.ts'

export const BIN = fileURLToPath(new URL('../../cli/bin.ts', import.meta.url))

/** P2PCHAT_TEST_PRIVACY (a level name) for every process, else `fast`. */
function testPrivacyEnv (): NodeJS.ProcessEnv {
  return { P2PCHAT_PRIVACY: (process.env.P2PCHAT_TEST_PRIVACY ?? '').trim() || 'fast' }
}

/**
 * Test relays unwrap packets on their main thread (the CLI's default is worker threads, which would
 * cost every relay process of the suite their start-up and memory) unless a test asks for threads.
 */
const TEST_SPHINX_THREADS: NodeJS.ProcessEnv = { P2PCHAT_SPHINX_THREADS: '0' }

/** With P2PCHAT_TEST_PRIVACY, TEST_MIXING's timers join the process's P2PCHAT_TIMING (what it sets wins). */
function testTimingEnv (env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const level = (process.env.P2PCHAT_TEST_PRIVACY ?? '').trim()
  if (level === '' || level === 'fast' || env.P2PCHAT_PRIVACY != null) return {}
  const own = JSON.parse(env.P2PCHAT_TIMING ?? process.env.P2PCHAT_TIMING ?? '{}') as Record<string, number>
  return { P2PCHAT_TIMING: JSON.stringify({ hopDelayMs: TEST_MIXING.meanDelayMs, loopCoverGapMs: TEST_MIXING.loopGapMs, dropCoverGapMs: TEST_MIXING.dropGapMs, receiptDelayMs: TEST_MIXING.receiptDelayMs, ...own }) }
}

export class CliProcess {
  readonly child: ChildProcessWithoutNullStreams
  readonly lines: string[] = []
  /** performance.now() at which each line of `lines` arrived */
  readonly lineTimes: number[] = []
  stderr = ''
  private readonly waiters = new Set<() => void>()
  readonly exited: Promise<number | null>

  /** `program`: the script Node runs, default the sources' cli/bin.ts (bench/first-message.ts passes a built package's launcher). */
  constructor (args: string[], env: NodeJS.ProcessEnv = {}, program = BIN) {
    this.child = spawn(process.execPath, [program, ...args], {
      // tests run at the `fast` privacy level (no mixing delays) unless they ask for another, or
      // P2PCHAT_TEST_PRIVACY runs a whole file at a mixing level (with chat-network.ts's TEST_MIXING timers)
      env: { ...process.env, P2PCHAT_BOOTSTRAP: '', ...testPrivacyEnv(), ...TEST_SPHINX_THREADS, ...env, ...testTimingEnv(env) },
      stdio: ['pipe', 'pipe', 'pipe']
    })
    createInterface({ input: this.child.stdout }).on('line', line => {
      this.lines.push(line)
      this.lineTimes.push(performance.now())
      for (const w of this.waiters) w()
    })
    this.child.stderr.on('data', (chunk: Buffer) => { this.stderr += chunk.toString() })
    this.exited = new Promise(resolve => {
      this.child.on('exit', code => {
        for (const w of this.waiters) w()
        resolve(code)
      })
    })
  }

  /** The first stdout line (parsed as JSON) matching `pred`, waiting up to `timeoutMs`. */
  async waitForJson (pred: (obj: Record<string, unknown>) => boolean, timeoutMs = 30_000): Promise<Record<string, unknown>> {
    return (await this.waitForLine(pred, timeoutMs)).obj
  }

  /** As waitForJson, with the performance.now() at which the matching line arrived. */
  async waitForLine (pred: (obj: Record<string, unknown>) => boolean, timeoutMs = 30_000): Promise<{ obj: Record<string, unknown>, at: number }> {
    const find = (): { obj: Record<string, unknown>, at: number } | undefined => {
      for (const [i, line] of this.lines.entries()) {
        try {
          const obj = JSON.parse(line)
          if (pred(obj)) return { obj, at: this.lineTimes[i] }
        } catch {}
      }
      return undefined
    }
    return await new Promise((resolve, reject) => {
      const check = (): void => {
        const found = find()
        if (found != null) { done(); resolve(found); return }
        if (this.child.exitCode != null) { done(); reject(new Error(`process exited (${this.child.exitCode}) before the expected line; stderr: ${this.stderr}`)) }
      }
      const timer = setTimeout(() => { done(); reject(new Error(`no matching line within ${timeoutMs} ms; stdout: ${this.lines.join('\n')}; stderr: ${this.stderr}`)) }, timeoutMs)
      const done = (): void => { clearTimeout(timer); this.waiters.delete(check) }
      this.waiters.add(check)
      check()
    })
  }

  send (obj: unknown): void {
    this.child.stdin.write(JSON.stringify(obj) + '\n')
  }

  private nextTag = 0

  /** Sends a --json command with a fresh `tag` and waits for the answer (or error) carrying it. */
  async ask (cmd: Record<string, unknown>, timeoutMs = 30_000): Promise<Record<string, unknown>> {
    const tag = `t${++this.nextTag}`
    this.send({ ...cmd, tag })
    return await this.waitForJson(o => o.tag === tag, timeoutMs)
  }

  /** Every stdout line, parsed; throws on a line that is not a JSON object. */
  json (): Array<Record<string, unknown>> {
    return this.lines.map(line => {
      const obj = JSON.parse(line)
      if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw new Error(`not a JSON object: ${line}`)
      return obj
    })
  }

  /** SIGINT and wait for a clean exit; SIGKILL after `graceMs`. Returns the exit code. */
  async stop (graceMs = 10_000): Promise<number | null> {
    if (this.child.exitCode != null || this.child.signalCode != null) return this.child.exitCode
    this.child.kill('SIGINT')
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs)
    try {
      return await this.exited
    } finally {
      clearTimeout(timer)
    }
  }
}

/** Runs a command to completion (with a timeout) and returns its exit code and output. */
export async function runCli (args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 30_000): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const p = new CliProcess(args, env)
  p.child.stdin.end()
  const timer = setTimeout(() => p.child.kill('SIGKILL'), timeoutMs)
  try {
    const code = await p.exited
    return { code, stdout: p.lines.join('\n'), stderr: p.stderr }
  } finally {
    clearTimeout(timer)
  }
}
