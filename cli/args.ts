/** Pure argument parsing for the `p2pchat` command: no I/O, so tests can table-drive it. */
import { parseArgs } from 'node:util'
import { UserError } from '../node/errors.ts'

export const USAGE = `usage: p2pchat <command> [options]

commands:
  bootstrap   run a bootstrap node (stable peer id, TCP 4001 and WebSockets 4002, DHT server)
  id          print this data directory's peer id, onion key and fingerprint

options:
  --data-dir <dir>         data directory (default: $P2PCHAT_HOME, else ~/.p2pchat)
  --listen <multiaddr>     listen address (repeatable)
  --bootstrap <multiaddr>  bootstrap peer with /p2p/<peer id> (repeatable; or P2PCHAT_BOOTSTRAP, comma-separated)
  --json                   machine-readable output: one JSON object per line on stdout, logs on stderr
  -h, --help               this help
`

export interface CliOptions {
  command: string
  dataDir?: string
  listen?: string[]
  bootstrap: string[]
  json: boolean
  help: boolean
  nick?: string
  relay: boolean
}

export function parseCli (argv: string[], env: NodeJS.ProcessEnv = {}): CliOptions {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        'data-dir': { type: 'string' },
        listen: { type: 'string', multiple: true },
        bootstrap: { type: 'string', multiple: true },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
        nick: { type: 'string' },
        relay: { type: 'boolean', default: false }
      }
    })
  } catch (err) {
    throw new UserError((err as Error).message.split('\n')[0], 'USAGE')
  }
  const { values, positionals } = parsed
  if (positionals.length > 1) throw new UserError(`unexpected argument: ${positionals[1]}`, 'USAGE')
  const fromEnv = (env.P2PCHAT_BOOTSTRAP ?? '').split(',').map(s => s.trim()).filter(s => s !== '')
  return {
    command: positionals[0] ?? 'help',
    dataDir: values['data-dir'],
    listen: values.listen,
    bootstrap: values.bootstrap ?? fromEnv,
    json: values.json,
    help: values.help,
    nick: values.nick,
    relay: values.relay
  }
}
