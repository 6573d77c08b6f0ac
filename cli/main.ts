/** The `p2pchat` command: dispatches to one command; a UserError is one line on stderr and exit 1. */
import { UserError } from '../node/errors.ts'
import { parseCli, USAGE } from './args.ts'
import { runBootstrap } from './commands/bootstrap.ts'
import { runDemo } from './commands/demo.ts'
import { runId } from './commands/id.ts'
import { runStart } from './commands/start.ts'
import type { CliOptions } from './args.ts'
import type { CliIO } from './output.ts'

const commands: Record<string, (opts: CliOptions, io: CliIO) => Promise<number>> = {
  bootstrap: runBootstrap,
  demo: runDemo,
  id: runId,
  start: runStart
}

export async function main (argv: string[], io: CliIO): Promise<number> {
  try {
    const opts = parseCli(argv, io.env)
    if (opts.help || opts.command === 'help') {
      io.stdout.write(USAGE)
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
