/** Pure argument parsing for the `p2pchat` command: no I/O, so tests can table-drive it. */
import { parseArgs } from 'node:util'
import { UserError } from '../node/errors.ts'
import type { ChatTiming } from '../node/chat-node.ts'

export const USAGE = `usage: p2pchat <command> [options]

commands:
  start       join the network as --nick and chat (interactive; --json for scripts)
  demo        a whole network on loopback in one process: 4 relays, alice and bob, what each relay sees
  bootstrap   run a bootstrap node (stable peer id, TCP 4001 and WebSockets 4002, DHT server)
  id          print this data directory's peer id, onion key and fingerprint

options:
  --nick <nick>            start: the name to publish (1 to 32 of a-z, 0-9, _ and -)
  --relay                  start: also relay other people's onion packets
  --data-dir <dir>         data directory (default: $P2PCHAT_HOME, else ~/.p2pchat)
  --listen <multiaddr>     listen address (repeatable)
  --bootstrap <multiaddr>  bootstrap peer with /p2p/<peer id> (repeatable; or P2PCHAT_BOOTSTRAP, comma-separated)
  --json                   machine-readable output: one JSON object per line on stdout, logs on stderr
  -h, --help               this help

in start, type /help for the chat commands. --json reads one command per line on stdin, e.g.
  {"cmd":"send","to":"bob","text":"hi"}  {"cmd":"whois","nick":"bob"}  {"cmd":"quit"}

environment:
  P2PCHAT_HOME       default data directory
  P2PCHAT_BOOTSTRAP  default bootstrap multiaddrs, comma-separated
  P2PCHAT_TIMING     JSON overriding chat timers in ms, e.g. {"retryIntervalMs":2000} (tests, demos)
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

/** ChatNode's timers, plus the CLI's own: how long `start` tries to reach a bootstrap peer. */
export type CliTiming = ChatTiming & { connectTimeoutMs: number }

const TIMING_KEYS: Array<keyof CliTiming> = ['receiptTimeoutMs', 'maxAttempts', 'messageTtlMs', 'retryIntervalMs', 'announceIntervalMs', 'recordCacheMs', 'connectTimeoutMs']

/** P2PCHAT_TIMING: a JSON object of positive integers overriding ChatNode's timers (and connectTimeoutMs). */
export function parseTiming (env: NodeJS.ProcessEnv = {}): Partial<CliTiming> {
  const raw = env.P2PCHAT_TIMING ?? ''
  if (raw.trim() === '') return {}
  let value: unknown
  try { value = JSON.parse(raw) } catch { throw new UserError('P2PCHAT_TIMING is not JSON', 'USAGE') }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new UserError('P2PCHAT_TIMING must be a JSON object', 'USAGE')
  const out: Partial<CliTiming> = {}
  for (const [k, v] of Object.entries(value)) {
    if (!(TIMING_KEYS as string[]).includes(k)) throw new UserError(`P2PCHAT_TIMING: unknown timer "${k}" (known: ${TIMING_KEYS.join(', ')})`, 'USAGE')
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) throw new UserError(`P2PCHAT_TIMING: ${k} must be a positive integer`, 'USAGE')
    out[k as keyof CliTiming] = v
  }
  return out
}

const LOCAL_RANGES: Array<{ test: (octets: number[]) => boolean, allow: string }> = [
  { test: o => o[0] === 127, allow: '/ip4/127.0.0.1/ipcidr/8' },
  { test: o => o[0] === 10, allow: '/ip4/10.0.0.0/ipcidr/8' },
  { test: o => o[0] === 172 && o[1] >= 16 && o[1] < 32, allow: '/ip4/172.16.0.0/ipcidr/12' },
  { test: o => o[0] === 192 && o[1] === 168, allow: '/ip4/192.168.0.0/ipcidr/16' }
]

/**
 * The address ranges to exempt from libp2p's inbound connection rate limit: on a loopback or LAN
 * network every peer dials from the same few hosts, and the limit (5 per second per host) resets them.
 * Derived from addresses that say the network is local: a user's bootstrap addresses, a bootstrap
 * node's own listen addresses (loopback or a private range; 0.0.0.0 and public addresses add nothing).
 */
export function localAllowList (addrs: string[]): string[] {
  const out = new Set<string>()
  for (const addr of addrs) {
    const m = /^\/ip4\/(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(\/|$)/.exec(addr)
    if (m == null) {
      if (/^\/ip6\/::1(\/|$)/.test(addr)) out.add('/ip6/::1/ipcidr/128')
      continue
    }
    const octets = m.slice(1, 5).map(Number)
    for (const r of LOCAL_RANGES) if (r.test(octets)) out.add(r.allow)
  }
  return [...out]
}
