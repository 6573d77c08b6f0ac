/** The `p2pchat` command: dispatches to one command; a UserError is one line on stderr and exit 1. */
import { readFileSync } from 'node:fs'
import { UserError } from '../node/errors.ts'
import { commandUsage, parseCli, USAGE } from './args.ts'
import type { CliOptions } from './args.ts'
import type { CliIO } from './output.ts'

type Command = (opts: CliOptions, io: CliIO) => Promise<number>

/**
 * Each command's module, imported when that command runs: a process loads only the code of the
 * command it runs (a user's `start` does not load the bootstrap node, the demo, relay status or their
 * dependencies: each module loaded stays in memory as source, bytecode and module records for the
 * life of the process; idle user RSS, bench/idle.ts).
 */
const commands: Record<string, () => Promise<Command>> = {
  bootstrap: async () => (await import('./commands/bootstrap.ts')).runBootstrap,
  demo: async () => (await import('./commands/demo.ts')).runDemo,
  id: async () => (await import('./commands/id.ts')).runId,
  relay: async () => (await import('./commands/relay-status.ts')).runRelayStatus,
  start: async () => (await import('./commands/start.ts')).runStart
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
    const load = Object.hasOwn(commands, opts.command) ? commands[opts.command] : undefined
    if (load == null) throw new UserError(`unknown command "${opts.command}"; try p2pchat --help`, 'USAGE')
    return await (await load())(opts, io)
  } catch (err) {
    if (err instanceof UserError) {
      io.stderr.write(`p2pchat: ${err.message}\n`)
      return 1
    }
    throw err
  }
}
