/**
 * A command in a real terminal: a detached tmux session on its own server socket (`-L`), driven with
 * `send-keys` and read with `capture-pane`. Waits poll the screen against a deadline. `kill()` ends
 * the server, whatever state the command is in.
 */
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { waitFor } from './wait.ts'

export function shellQuote (s: string): string {
  return `'${s.replace(/'/g, '\'\\\'\'')}'`
}

export class TmuxSession {
  readonly socket = `p2pchat-test-${process.pid}-${randomBytes(4).toString('hex')}`
  readonly session = 'main'

  private tmux (args: string[]): string {
    const res = spawnSync('tmux', ['-u', '-L', this.socket, ...args], { encoding: 'utf8', env: { ...process.env, LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8' } })
    if (res.error != null) throw res.error
    if (res.status !== 0) throw new Error(`tmux ${args[0]} failed (${String(res.status)}): ${res.stderr}`)
    return res.stdout
  }

  /**
   * Starts `argv` (with `env` added) in a 200x50 terminal, under a shell that prints the exit status
   * when it ends (tmux's own pane_dead_status is sometimes never filled in), and keeps the pane open.
   */
  start (argv: string[], env: Record<string, string> = {}): void {
    const command = ['sh', '-c', '"$@"; echo "[exit status $?]"', 'sh', 'env', ...Object.entries({ LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8', TERM: 'tmux-256color', ...env }).map(([k, v]) => `${k}=${v}`), ...argv].map(shellQuote).join(' ')
    this.tmux(['new-session', '-d', '-s', this.session, '-x', '200', '-y', '50', command, ';', 'set-option', '-g', 'remain-on-exit', 'on'])
  }

  /** The screen as text (with the scrollback), trailing blanks trimmed. */
  screen (): string {
    return this.tmux(['capture-pane', '-p', '-J', '-S', '-500', '-t', this.session]).replace(/\s+$/, '')
  }

  /** Types `text` literally, then Enter. */
  type (text: string): void {
    this.tmux(['send-keys', '-t', this.session, '-l', text])
    this.tmux(['send-keys', '-t', this.session, 'Enter'])
  }

  keys (...keys: string[]): void {
    this.tmux(['send-keys', '-t', this.session, ...keys])
  }

  /** Waits until the screen matches `pattern`; the error shows the screen. */
  async waitForScreen (pattern: RegExp, timeoutMs = 30_000): Promise<string> {
    let last = ''
    try {
      await waitFor(() => pattern.test(last = this.screen()), `the screen to show ${String(pattern)}`, timeoutMs, 100)
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- screen ---\n${last}\n--------------`)
    }
    return last
  }

  /** The command's exit status, as its shell printed it, waiting up to `timeoutMs`. */
  async exitStatus (timeoutMs = 15_000): Promise<number> {
    const screen = await this.waitForScreen(/^\[exit status (\d+)\]$/m, timeoutMs)
    return Number(/^\[exit status (\d+)\]$/m.exec(screen)?.[1])
  }

  kill (): void {
    spawnSync('tmux', ['-L', this.socket, 'kill-server'], { encoding: 'utf8' })
  }
}
