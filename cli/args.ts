/**
 * Pure argument parsing for the `p2pchat` command: no I/O, so tests can table-drive it. Each command
 * declares its own flags (one table, which the help texts are printed from); every mistake is a
 * UserError in our own words that names the flag and where to look.
 */
import { UserError } from '../node/errors.ts'
import type { ChatTiming } from '../node/chat-node.ts'
import { MAX_TEXT_BYTES } from '../protocols/chat/index.ts'
import { DEFAULT_PRIVACY, PRIVACY_LEVELS, privacyLevel, STANDARD_MB_PER_DAY } from '../node/privacy.ts'
import { defaultRelaySphinxThreads, MAX_SPHINX_THREADS } from '../protocols/onion/sphinx-pool.ts'

/**
 * Default of --loop-cover: off. Users' own cover (5 loops and 17 drops a minute each at `standard`)
 * already keeps the links between relays busy whenever anyone is online; a relay's loops add traffic
 * when nobody is, and a check that its neighbours forward, at a cost to a volunteer's link (6 a minute:
 * ~55 MB a day sent and received, and as much again forwarding other relays' loops). An operator turns
 * it on; tests count packets at relays and keep it off.
 */
export const DEFAULT_RELAY_LOOP_COVER = 0
/** The most --loop-cover takes: ten a second (a relay's timers and its neighbours' queues, not a cap on privacy). */
export const MAX_RELAY_LOOP_COVER = 600

interface FlagSpec {
  /** the value's placeholder; a flag without one is a switch */
  value?: string
  multiple?: boolean
  short?: string
  help: string
}

const FLAGS = {
  nick: { value: '<nick>', help: 'the name to publish (1 to 32 of a-z, 0-9, _ and -)' },
  relay: { help: "run a relay (no nick): mix others' onion packets, keep mailboxes, answer directory requests" },
  'data-dir': { value: '<dir>', help: 'data directory (default: $P2PCHAT_HOME, else ~/.p2pchat)' },
  listen: { value: '<multiaddr>', multiple: true, help: 'listen address (repeatable; relays and bootstrap nodes: a user needs none)' },
  bootstrap: { value: '<multiaddr>', multiple: true, help: 'bootstrap peer with /p2p/<peer id> (repeatable; or P2PCHAT_BOOTSTRAP, comma-separated)' },
  privacy: { value: '<level>', help: `mixing: ${Object.keys(PRIVACY_LEVELS).join(', ')} (default ${DEFAULT_PRIVACY}; or $P2PCHAT_PRIVACY)` },
  announce: { value: '<multiaddr>', multiple: true, help: 'relays: the address to announce instead of the listen addresses (behind a port forward: /ip4/<public ip>/tcp/<port>); checked by dial-back like any' },
  family: { value: '<file>', help: "relays: the operator's family key file (created, mode 0600, if missing; copy it to each relay you run): clients put one of your relays per path" },
  'sphinx-threads': { value: '<n>', help: `relays: worker threads that unwrap onion packets (0: on the main thread; default ${defaultRelaySphinxThreads()} here, 2 with 2+ cores; or $P2PCHAT_SPHINX_THREADS)` },
  metrics: { value: '<host:port>', help: 'relays and bootstrap nodes: serve Prometheus metrics at http://<host:port>/metrics (host defaults to 127.0.0.1)' },
  'loop-cover': { value: '<per-minute>', help: `relays: send this many loop cover packets a minute through two other relays and back (default ${DEFAULT_RELAY_LOOP_COVER}: off; 6 costs the relay ~55 MB a day)` },
  json: { help: 'machine-readable output: one JSON object per line on stdout, logs on stderr' },
  web: { help: 'serve the web app on 127.0.0.1 and print a one-time login URL (start: instead of the terminal chat; demo: for alice and bob)' },
  'web-port': { value: '<port>', help: 'the web app\'s port (default: a free one)' },
  'web-host': { value: '<address>', help: 'serve the web app on this address instead of 127.0.0.1 (anyone who can reach it may try to log in)' },
  'accept-anyone': { help: "a stranger's first message makes it a contact (receipted at once) instead of a request (bots)" },
  help: { short: 'h', help: 'this help' }
} satisfies Record<string, FlagSpec>

type FlagName = keyof typeof FLAGS

interface CommandSpec {
  summary: string
  usage: string
  flags: FlagName[]
  /** printed after the flags in `p2pchat <command> --help` */
  more?: string
}

export const COMMANDS: Record<string, CommandSpec> = {
  start: {
    summary: 'join the network as --nick and chat (interactive; --json for scripts), or run a relay (--relay)',
    usage: 'p2pchat start --nick <nick> [--bootstrap <multiaddr>...] [--data-dir <dir>] [--privacy <level>] [--json] [--accept-anyone] [--web [--web-port <port>] [--web-host <address>]]\n       p2pchat start --relay [--bootstrap <multiaddr>...] [--listen <multiaddr>...] [--announce <multiaddr>...] [--family <file>] [--data-dir <dir>] [--metrics <host:port>] [--sphinx-threads <n>] [--loop-cover <per-minute>] [--json]',
    flags: ['nick', 'relay', 'bootstrap', 'listen', 'announce', 'family', 'data-dir', 'metrics', 'sphinx-threads', 'loop-cover', 'privacy', 'json', 'web', 'web-port', 'web-host', 'accept-anyone', 'help'],
    more: `Joins the network, publishes the nick and opens the chat; type /help there for the chat commands.
A user listens nowhere: it dials a bootstrap node once and keeps one entry relay. A message shows
✓ once a mailbox of the recipient stores it (online or not) and ✓✓ when the receipt comes back.
A message holds at most ${MAX_TEXT_BYTES} bytes of UTF-8 text: at the prompt longer text is sent as several
messages; --json refuses it (TOO_LONG). A stranger's first message is a contact request (no receipt
until you /accept it); --accept-anyone makes strangers contacts at once (bots).
Only one process may use a data directory at a time.
--web serves the chat as a web page on 127.0.0.1 instead (printing a link that works once), until Ctrl-C;
with --json as well, the web app runs beside the JSON session and its link is a {"event":"web","url"} line.
--relay runs a relay instead: it has no nick (chat from a separate start --nick with its own --data-dir).
--loop-cover N (relays): N packets a minute, a Poisson stream, from the relay through two others and back
(Loopix's mix loops): links between relays carry traffic when no user's does, and loops that do not
come back show a relay or link that drops packets (counted; the relay's status command shows them).

--privacy sets how long each relay holds your packets (an exponential delay of this mean per hop; a
message to someone online crosses 5 such hops, ~5 means on average) and your cover traffic:
${Object.values(PRIVACY_LEVELS).map(l => `  ${l.summary}${l.name === DEFAULT_PRIVACY ? ' (default)' : ''}\n`).join('')}With cover, your packets leave as one steady random (Poisson) stream whether you chat or not (at low
it speeds up while a burst waits, which shows): loop packets come back to you through three relays
(checking your paths), drop packets are discarded by a relay, and each real packet waits for the next
cover packet's turn, loop or drop (2.7 s on average at standard's 22/min; your messages before queued
upkeep and receipts).
Receipts leave after a random delay; retries come at random intervals. Default: ~${STANDARD_MB_PER_DAY} MB a day.
Request timeouts grow by 18 mean delays. A relay (--relay) applies whatever delays its senders chose.

--json reads one command per line on stdin and writes one JSON object per line on stdout, e.g.
  {"cmd":"send","to":"bob","text":"hi"}  {"cmd":"whois","nick":"bob"}  {"cmd":"quit"}
At end of input it answers every command already read, waits (bounded) until each message sent in
the session is stored in a mailbox, delivered, failed or queued for the next start, then exits 0.
`
  },
  demo: {
    summary: 'a whole network on loopback in one process: 4 relays, alice and bob, what each relay sees',
    usage: 'p2pchat demo [--json] [--web]',
    flags: ['json', 'web', 'help'],
    more: 'Uses throwaway keys in temporary directories; exits 0 when every message and receipt arrived.\n'
  },
  bootstrap: {
    summary: 'run a bootstrap node (stable peer id, TCP 4001 and WebSockets 4002, DHT server)',
    usage: 'p2pchat bootstrap [--data-dir <dir>] [--listen <multiaddr>...] [--bootstrap <multiaddr>...] [--metrics <host:port>] [--json]',
    flags: ['data-dir', 'listen', 'bootstrap', 'metrics', 'json', 'help'],
    more: 'Prints its full multiaddrs (ending in /p2p/<peer id>) to paste into --bootstrap. Ctrl-C stops it.\n'
  },
  relay: {
    summary: "a running relay's health at a glance: p2pchat relay status (read from its --metrics endpoint)",
    usage: 'p2pchat relay status [--metrics <host:port>] [--json]',
    flags: ['metrics', 'json', 'help'],
    more: `Reads the Prometheus endpoint the relay serves (p2pchat start --relay --metrics <host:port>; default
127.0.0.1:9464) and shows its uptime, the reachability verdict it started with, connections, packets
in and out, drops by reason, packets held for mixing, mailbox items and bytes, and its memory and CPU.
Exits 1 when nothing answers there or the endpoint is not a relay's (a bootstrap node's, say).
`
  },
  id: {
    summary: "print this data directory's peer id, onion key and fingerprint",
    usage: 'p2pchat id [--data-dir <dir>] [--json]',
    flags: ['data-dir', 'json', 'help'],
    more: 'Creates the keys if the data directory has none yet.\n'
  },
  help: {
    summary: "this help, or a command's: p2pchat help <command>",
    usage: 'p2pchat help [<command>]',
    flags: ['help']
  }
}

const ENVIRONMENT = `environment:
  P2PCHAT_HOME       default data directory
  P2PCHAT_BOOTSTRAP  default bootstrap multiaddrs, comma-separated
  P2PCHAT_PRIVACY    default privacy level of start (--privacy overrides it)
  P2PCHAT_SPHINX_THREADS  default worker threads of start --relay (--sphinx-threads overrides it)
  P2PCHAT_TIMING     JSON overriding timers in ms, e.g. {"requestTimeoutMs":5000,"relayEpochMs":60000,"hopDelayMs":50}
                     (tests, demos; also loopCoverGapMs, dropCoverGapMs, receiptDelayMs, mailboxPushPeriodMs, mailboxSyncGapMs)
`

function flagLines (names: FlagName[]): string {
  return names.map(name => {
    const f: FlagSpec = FLAGS[name]
    const left = `${f.short != null ? `-${f.short}, ` : ''}--${name}${f.value != null ? ` ${f.value}` : ''}`
    return `  ${left.padEnd(25)}${f.help}\n`
  }).join('')
}

export const USAGE = `usage: p2pchat <command> [options]

commands:
${Object.entries(COMMANDS).filter(([name]) => name !== 'help').map(([name, c]) => `  ${name.padEnd(12)}${c.summary}\n`).join('')}
options:
${flagLines(['nick', 'relay', 'data-dir', 'listen', 'announce', 'bootstrap', 'metrics', 'json', 'help'])}  --version                this program's version

p2pchat <command> --help (or p2pchat help <command>) describes one command.
in start, type /help for the chat commands. --json reads one command per line on stdin, e.g.
  {"cmd":"send","to":"bob","text":"hi"}  {"cmd":"whois","nick":"bob"}  {"cmd":"quit"}

${ENVIRONMENT}`

/** `p2pchat <command> --help`. */
export function commandUsage (command: string): string {
  const c = COMMANDS[command]
  if (c == null) throw unknownCommand(command)
  return `usage: ${c.usage}\n\n${c.summary}\n\noptions:\n${flagLines(c.flags)}${c.more != null ? `\n${c.more}` : ''}` +
    (command === 'help' ? '' : `\n${ENVIRONMENT}`)
}

function unknownCommand (command: string): UserError {
  return new UserError(`unknown command "${command.slice(0, 40)}"; the commands are ${Object.keys(COMMANDS).join(', ')} (p2pchat --help)`, 'USAGE')
}

export interface CliOptions {
  command: string
  /** `help <command>`: the command whose help was asked for */
  topic?: string
  /** `relay status`: the relay command's subcommand */
  subcommand?: string
  dataDir?: string
  listen?: string[]
  bootstrap: string[]
  json: boolean
  help: boolean
  version: boolean
  nick?: string
  relay: boolean
  /** --web: serve the web app; webPort (0: a free port) and webHost (default 127.0.0.1) */
  web: boolean
  webPort?: number
  webHost?: string
  /** start: strangers become contacts at their first message instead of requests */
  acceptAnyone: boolean
  /** --privacy, else $P2PCHAT_PRIVACY, else undefined (the default level); checked to be a level's name. */
  privacy?: string
  /** --loop-cover: a relay's own loop cover packets a minute (node/relay-cover.ts) */
  loopCover?: number
  /** --metrics: where a relay or bootstrap node serves Prometheus metrics */
  metrics?: string
  /** --announce: a relay's public addresses behind a port forward */
  announce?: string[]
  /** --family: a relay operator's family key file (protocols/directory/FAMILY.md) */
  family?: string
  /** --sphinx-threads, else $P2PCHAT_SPHINX_THREADS (start --relay only), else undefined (the relay's default); 0..MAX_SPHINX_THREADS. */
  sphinxThreads?: number
}

/**
 * Reads `p2pchat <command> [flags]`. Flags may come before or after the command, as `--flag value`
 * or `--flag=value`; a flag the command does not take, a missing value, a value given to a switch,
 * a repeated single flag or a stray argument is a UserError saying so.
 */
export function parseCli (argv: string[], env: NodeJS.ProcessEnv = {}): CliOptions {
  const positionals: string[] = []
  const seen: Array<{ name: FlagName, value?: string, as: string }> = []
  let version = false
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '--version' || arg === '-V') { version = true; continue }
    if (arg === '--') { positionals.push(...argv.slice(i + 1)); break }
    if (!arg.startsWith('-') || arg === '-') { positionals.push(arg); continue }
    let name: string
    let inline: string | undefined
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=')
      name = eq === -1 ? arg.slice(2) : arg.slice(2, eq)
      inline = eq === -1 ? undefined : arg.slice(eq + 1)
    } else {
      const short = Object.entries(FLAGS).find(([, f]) => (f as FlagSpec).short === arg.slice(1))
      if (short == null) throw new UserError(`unknown option ${shown(arg)} (p2pchat --help lists the options)`, 'USAGE')
      name = short[0]
    }
    if (!Object.hasOwn(FLAGS, name)) throw new UserError(`unknown option --${shown(name)} (p2pchat --help lists the options)`, 'USAGE')
    const flag: FlagSpec = FLAGS[name as FlagName]
    if (flag.value == null) {
      if (inline != null) throw new UserError(`--${name} is a switch and takes no value (got "${shown(inline)}")`, 'USAGE')
      seen.push({ name: name as FlagName, as: arg })
      continue
    }
    let value = inline
    if (value == null) {
      const next = argv[i + 1]
      if (next == null || next.startsWith('--') || (next.startsWith('-') && next.length === 2)) {
        throw new UserError(`--${name} needs a value: --${name} ${flag.value}`, 'USAGE')
      }
      value = next
      i++
    }
    if (value === '') throw new UserError(`--${name} needs a value: --${name} ${flag.value}`, 'USAGE')
    seen.push({ name: name as FlagName, value, as: `--${name}` })
  }

  const command = positionals[0] ?? 'help'
  const spec = COMMANDS[command]
  if (spec == null) {
    if (version) return { command: 'help', bootstrap: [], json: false, help: false, version, relay: false, web: false, acceptAnyone: false }
    throw unknownCommand(command)
  }
  const extra = positionals.slice(1)
  let topic: string | undefined
  if (command === 'help' && extra.length > 0) {
    topic = extra.shift()
    if (!Object.hasOwn(COMMANDS, topic as string)) throw unknownCommand(topic as string)
  }
  let subcommand: string | undefined
  if (command === 'relay') {
    subcommand = extra.shift()
    if (subcommand !== 'status' && !(subcommand == null && seen.some(s => s.name === 'help'))) {
      throw new UserError(`${subcommand == null ? 'relay needs a subcommand' : `unknown relay subcommand "${shown(subcommand)}"`}: p2pchat relay status (to run a relay: p2pchat start --relay)`, 'USAGE')
    }
  }
  if (extra.length > 0) throw new UserError(`unexpected argument "${shown(extra[0])}": ${command} takes only options (p2pchat ${command} --help)`, 'USAGE')

  const values: Partial<Record<FlagName, string[]>> = {}
  let help = false
  for (const s of seen) {
    if (s.name === 'help') { help = true; continue }
    if (!spec.flags.includes(s.name)) throw new UserError(`${command} does not take --${s.name} (p2pchat ${command} --help lists its options)`, 'USAGE')
    const list = values[s.name] ??= []
    if (s.value == null) { list.push(''); continue }
    const f: FlagSpec = FLAGS[s.name]
    if (f.multiple !== true && list.length > 0) throw new UserError(`--${s.name} given twice; give it once`, 'USAGE')
    list.push(s.value)
  }
  const fromEnv = (env.P2PCHAT_BOOTSTRAP ?? '').split(',').map(s => s.trim()).filter(s => s !== '')
  const privacyEnv = (env.P2PCHAT_PRIVACY ?? '').trim()
  const privacy = values.privacy?.[0] ?? (command === 'start' && privacyEnv !== '' ? privacyEnv : undefined)
  if (privacy != null) privacyLevel(privacy) // a UserError naming the levels
  const threadsEnv = (env.P2PCHAT_SPHINX_THREADS ?? '').trim()
  const sphinxThreads = values['sphinx-threads'] != null
    ? threadCount(values['sphinx-threads'][0], '--sphinx-threads')
    : command === 'start' && values.relay != null && threadsEnv !== '' ? threadCount(threadsEnv, 'P2PCHAT_SPHINX_THREADS') : undefined
  return {
    command,
    topic,
    subcommand,
    dataDir: values['data-dir']?.[0],
    listen: values.listen,
    bootstrap: values.bootstrap ?? fromEnv,
    json: values.json != null,
    help,
    version,
    nick: values.nick?.[0],
    relay: values.relay != null,
    web: values.web != null,
    webPort: webPort(values['web-port']?.[0]),
    webHost: values['web-host']?.[0],
    acceptAnyone: values['accept-anyone'] != null,
    privacy,
    metrics: values.metrics?.[0],
    announce: values.announce,
    family: values.family?.[0],
    sphinxThreads,
    loopCover: loopCover(values['loop-cover']?.[0])
  }
}

function threadCount (value: string, where: string): number {
  if (!/^\d{1,3}$/.test(value) || Number(value) > MAX_SPHINX_THREADS) {
    throw new UserError(`${where} must be a whole number of threads from 0 to ${MAX_SPHINX_THREADS} (got "${shown(value)}")`, 'USAGE')
  }
  return Number(value)
}

function loopCover (value: string | undefined): number | undefined {
  if (value == null) return undefined
  const n = Number(value)
  if (!/^\d+(\.\d+)?$/.test(value) || !(n >= 0 && n <= MAX_RELAY_LOOP_COVER)) throw new UserError(`--loop-cover must be a number of packets a minute from 0 to ${MAX_RELAY_LOOP_COVER} (got "${shown(value)}")`, 'USAGE')
  return n
}

function webPort (value: string | undefined): number | undefined {
  if (value == null) return undefined
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65535) throw new UserError(`--web-port must be a port number from 0 to 65535 (got "${shown(value)}")`, 'USAGE')
  return Number(value)
}

/** A user's argument in an error message: bounded and with control characters shown as '?'. */
function shown (arg: string): string {
  // eslint-disable-next-line no-control-regex
  return arg.slice(0, 60).replace(/[\x00-\x1f\x7f]/g, '?')
}

/** The message for text longer than a message may hold: its size, the limit, what to do. */
export function textTooLong (text: string): UserError | undefined {
  const bytes = Buffer.byteLength(text, 'utf8')
  if (bytes <= MAX_TEXT_BYTES) return undefined
  return new UserError(`message too long: ${bytes} bytes of UTF-8 text, at most ${MAX_TEXT_BYTES} per message; send it as several messages`, 'TOO_LONG')
}

/** ChatNode's timers, plus the CLI's own: how long `start` tries to reach a bootstrap peer. */
export type CliTiming = ChatTiming & {
  connectTimeoutMs: number
  /** A relay's onion key epoch and the grace after it (tests shorten them: mailboxes must outlive epochs). */
  relayEpochMs: number
  relayGraceMs: number
  /** A relay's mailboxes: how long an item pushed and not acknowledged waits before it goes again (through a newer block). */
  repushIntervalMs: number
  /** Replaces the privacy level's mean delay per hop (tests and demos shorten it; node/privacy.ts). */
  hopDelayMs: number
  /** Replace the privacy level's mean gap between loop / drop cover packets, and its mean receipt delay. */
  loopCoverGapMs: number
  dropCoverGapMs: number
  receiptDelayMs: number
  /** Replace the level's steady mailbox push period and SYNC gap (mailbox v2; only at a level that has them). */
  mailboxPushPeriodMs: number
  mailboxSyncGapMs: number
}

const TIMING_KEYS: Array<keyof CliTiming> = ['retryIntervalMs', 'messageTtlMs', 'announceIntervalMs', 'recordCacheMs', 'maxInFlight',
  'requestTimeoutMs', 'onionEpochMs', 'stockIntervalMs', 'stockTtlMs', 'crossCheckMaxDelayMs', 'connectTimeoutMs', 'relayEpochMs', 'relayGraceMs', 'repushIntervalMs', 'hopDelayMs', 'relayMinAgeMs',
  'loopCoverGapMs', 'dropCoverGapMs', 'receiptDelayMs', 'mailboxPushPeriodMs', 'mailboxSyncGapMs']

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
