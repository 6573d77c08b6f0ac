/** Where the CLI writes: results on stdout (one JSON object per line in --json mode), logs on stderr. */
import type { Writable } from 'node:stream'

export interface CliIO {
  stdout: Writable
  stderr: Writable
  env: NodeJS.ProcessEnv
}

export function emit (io: CliIO, event: Record<string, unknown>): void {
  io.stdout.write(JSON.stringify(event) + '\n')
}
