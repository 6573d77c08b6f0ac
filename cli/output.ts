/** Where the CLI writes: results on stdout (one JSON object per line in --json mode), logs on stderr. */
import type { Readable, Writable } from 'node:stream'

export interface CliIO {
  /** Commands for `start` (default: process.stdin). */
  stdin?: Readable
  stdout: Writable
  stderr: Writable
  env: NodeJS.ProcessEnv
}

export function emit (io: CliIO, event: Record<string, unknown>): void {
  io.stdout.write(JSON.stringify(event) + '\n')
}
