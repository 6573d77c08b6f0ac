/** The `p2pchat` command: dispatches to one command; a UserError is one line on stderr and exit 1. */
import { readFileSync } from 'node:fs'
import { UserError } from '../node/errors.ts'
import { commandUsage, parseCli, USAGE } from './args.ts'
import { runBootstrap } from './commands/bootstrap.ts'
import { runDemo } from './commands/demo.ts'
import { runId } from './commands/id.ts'
import { runRelayStatus } from './commands/relay-status.ts'
import { runStart } from './commands/start.ts'
import type { CliOptions } from './args.ts'
import type { CliIO } from './output.ts'

const commands: Record<string, (opts: CliOptions, io: CliIO) => Promise<number>> = {
  bootstrap: runBootstrap,
  demo: runDemo,
  id: runId,
  relay: runRelayStatus,
  start: runStart
}

/**
 * The version in p2pchat's package.json: the nearest one above this file (the checkout's root, or
 * the installed package's root when running the compiled dist/cli/main.js).
 */
export function packageVersion (): string {
  for (let url = new URL('../package.json', import.meta.url), up = 0; up < 4; up++, url = new URL('../package.json', url)) {
    try {
      const pkg = JSON.parse(readFileSync(url, 'utf8')) as { name?: unknown, version?: unknown }
      if (pkg.name === 'p2pchat' && typeof pkg.version === 'string') return pkg.version
    } catch {}
  }
  return 'unknown'
}

export async function main (argv: string[], io: CliIO): Promise<number> {
  try {
    const opts = parseCli(argv, io.env)
    if (opts.version) {
      io.stdout.write(`p2pchat ${packageVersion()} (Node ${process.version})\n`)
      return 0
    }
    if (opts.command === 'help') {
      io.stdout.write(opts.topic != null ? commandUsage(opts.topic) : USAGE)
      return 0
    }
    if (opts.help) {
      io.stdout.write(commandUsage(opts.command))
      return 0
    }
    const run = commands[opts.command]
    if (run == null) throw new UserError(`unknown command "${opts.command}"; try p2pchat --help`, 'USAGE')
    return await run(opts, io)
  } catch (err) {
    if (err instanceof UserError) {
      io.stderr.write(`p2pchat: ${err.message}\n`)
      return 1
    }
    throw err
  }
}
