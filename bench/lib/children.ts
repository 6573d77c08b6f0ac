/** Spawning bench/child.ts processes (with --expose-gc) and talking to them over IPC. */
import { fork } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { ChildRole, FromChild, ToChild } from '../child.ts'

const CHILD = fileURLToPath(new URL('../child.ts', import.meta.url))

export class Child {
  readonly role: ChildRole
  readonly proc: ChildProcess
  private readonly inbox: FromChild[] = []
  private waiting: Array<{ type: FromChild['type'], resolve: (m: FromChild) => void, reject: (e: Error) => void }> = []
  /** Every checkpoint message, in order. */
  readonly checkpoints: Array<Extract<FromChild, { type: 'checkpoint' }>> = []

  private constructor (role: ChildRole, bootstrap: string) {
    this.role = role
    this.proc = fork(CHILD, [role, bootstrap], { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    const kill = (): void => { this.proc.kill() }
    process.once('exit', kill)
    this.proc.once('exit', () => { process.removeListener('exit', kill) })
    this.proc.on('message', (m: FromChild) => {
      if (m.type === 'checkpoint') { this.checkpoints.push(m); return }
      if (m.type === 'error') {
        const err = new Error(`bench child ${role}: ${m.message}`)
        for (const w of this.waiting.splice(0)) w.reject(err)
        return
      }
      const i = this.waiting.findIndex(w => w.type === m.type)
      if (i >= 0) { this.waiting.splice(i, 1)[0].resolve(m) } else this.inbox.push(m)
    })
    this.proc.on('exit', (code) => {
      for (const w of this.waiting.splice(0)) w.reject(new Error(`bench child ${role} exited (${code})`))
    })
  }

  static async spawn (role: ChildRole, bootstrap = ''): Promise<{ child: Child, ready: Extract<FromChild, { type: 'ready' }> }> {
    const child = new Child(role, bootstrap)
    const ready = await child.next('ready')
    return { child, ready }
  }

  async next<T extends FromChild['type']> (type: T, timeoutMs = 60_000): Promise<Extract<FromChild, { type: T }>> {
    const i = this.inbox.findIndex(m => m.type === type)
    if (i >= 0) return this.inbox.splice(i, 1)[0] as Extract<FromChild, { type: T }>
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`bench child ${this.role}: no ${type} within ${timeoutMs} ms`)) }, timeoutMs)
      this.waiting.push({
        type,
        resolve: (m) => { clearTimeout(timer); resolve(m as Extract<FromChild, { type: T }>) },
        reject: (e) => { clearTimeout(timer); reject(e) }
      })
    })
  }

  async ask<T extends FromChild['type']> (msg: ToChild, reply: T, timeoutMs?: number): Promise<Extract<FromChild, { type: T }>> {
    const answer = this.next(reply, timeoutMs)
    this.proc.send(msg)
    return await answer
  }

  tell (msg: ToChild): void { this.proc.send(msg) }

  async stop (): Promise<void> {
    if (this.proc.exitCode != null || !this.proc.connected) return
    await this.ask({ cmd: 'stop' }, 'stopped', 15_000).catch(() => { this.proc.kill() })
  }
}

/**
 * Yamux's largest stream window for every node of the forwarding bench (the parent's senders and the
 * children inherit the environment): BENCH_STREAM_WINDOW=<bytes>; unset, the product's MAX_STREAM_WINDOW.
 */
export const BENCH_STREAM_WINDOW: number | undefined = process.env.BENCH_STREAM_WINDOW == null ? undefined : Number(process.env.BENCH_STREAM_WINDOW)
