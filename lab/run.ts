/**
 * `npm run lab [-- --quick]`: p2pchat beyond loopback. Builds a network of Linux namespaces
 * (lab/net.ts: a delaying, lossy "internet", relays and a bootstrap node each in its own /16 of
 * 172.16/12, users in private LANs behind NAT routers, one of them symmetric), runs every node as a
 * real `p2pchat` process inside its namespace, runs the scenarios, prints a table and writes
 * bench/results/lab-<quick|full>.json and .svg. Needs root, `ip netns`, iptables, python3 and
 * /dev/net/tun; refuses with a message saying what to run otherwise (exit 2). Tears everything down on
 * exit, on SIGINT/SIGTERM and on an exception; a lab killed with SIGKILL leaves namespaces that the next
 * run removes (lab/net.ts cleanupLeftovers).
 *
 * Scenario `nat-chat`: users behind NAT (no port forward, nothing listening) chat both ways through the
 * relays; every message is a unique token, so the lab counts what was sent, stored (✓), delivered (✓✓,
 * the receipt back), shown at the recipient, lost and duplicated, and the delay from the send command
 * to the recipient's `message` line (all lines timed on the lab's one clock). Links: 50 ms ± 10 ms one
 * way across the internet, 1 % loss (`--delay`, `--jitter`, `--loss` change them); the lab reports the
 * delay the forwarder applied and the TCP round trips it measured. Then, in this order:
 * `split-and-heal` (the internet cut in two halves for a while, messages sent across the cut, healed),
 * `bootstrap-lost` (the bootstrap node SIGKILLed, users chat on; it is started again afterwards) and
 * `churn` (relays and users SIGKILLed or SIGINTed and restarted at random, seeded, with messages in
 * flight; each message must be shown once over all of its recipient's processes). Users run at the
 * product's default privacy level (`standard`) unless --privacy says otherwise; the table names it.
 * Exit 0 when nothing was lost or duplicated (scenarios marked TODO, a known product fault, are
 * printed and counted apart unless --strict); 1 otherwise. `--relays n --users n --only nat-chat` runs
 * the chat alone at another size (lab/SCALE.md). Every user start prints its stages (spawn ->
 * connecting -> entry -> mailboxes -> publishing -> ready) and the report sums them per phase (first
 * starts, churn restarts); each relay's dial-back verdict (how many networks confirmed it) is logged.
 * LAB_USER_ENV='{"DEBUG":...}' or '{"NODE_OPTIONS":"--cpu-prof ..."}' adds variables to user processes; LAB_LOG_DIR=dir
 * keeps every process's output lines in dir/<name>.log (lab/proc.ts).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { freemem, loadavg, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'

import { fileURLToPath } from 'node:url'
import { LabNet, LabUnavailableError, MAX_SITES, NS_PREFIX, cleanupLeftovers, preflight } from './net.ts'
import type { Host, LinkShape, Site } from './net.ts'
import { BIN, LabProcess } from './proc.ts'
import type { Json } from './proc.ts'
import { machine } from '../bench/lib/machine.ts'
import { summarize } from '../bench/lib/stats.ts'
import type { Summary } from '../bench/lib/stats.ts'
import { svg } from '../bench/lib/report.ts'
import { DEFAULT_PRIVACY, PRIVACY_LEVELS } from '../node/privacy.ts'
import type { Panel } from '../bench/lib/report.ts'

const RESULTS = fileURLToPath(new URL('../bench/results/', import.meta.url))
const PROBE = fileURLToPath(new URL('./probe.ts', import.meta.url))
/** Relays and the bootstrap node listen here on their site address (a fixed port, as an operator would open). */
const PORT = 4001
/** Relays and the bootstrap node serve metrics here, inside their own namespace (the lab scrapes them there). */
const METRICS = '127.0.0.1:9464'
/**
 * Scenarios that fail for a known fault of the product, not of the lab: still run, counted and printed
 * (`TODO <name>: ...` and in the closing line), but they fail the run only with --strict. Churn: in 2 of
 * 4 quick runs on 2026-12-01 (seed 1, load 12-25) 10-14 of ~45 messages bob sent alice while relays
 * and alice were restarted were stored in a mailbox of alice (✓) and never shown to her (issue 15,
 * fixed the same day in node/mailboxes.ts); it then passed 3 of 3 quick runs, and 6 of 7 in the next
 * session (load 5-18). The 7th lost 1 of 44 in a new way: bob's message sent 1 s into the churn (relay1
 * just stopped, alice up for 8 s more, then restarted) came back delivered (✓✓, alice's receipt) but no
 * process of alice ever printed it. Probable cause, fixed then (node/mailboxes.ts): a push taken while
 * the user's process stopped (its output already detached) was stored and receipted, never printed.
 * The mark stays until churn passes every run. Next session (late answers for receipts and directory
 * requests, admission on, a start not waiting for a silent mailbox relay): 3 of 3 quick runs passed,
 * 45/45 each (load 2-14). 2026-12-02 (a start's REGISTER re-sent at once when a relay on its path is
 * found dead): 9 of 9 quick runs passed, 45/45 each, seed 1, 1-minute load average 1.2-12.2 at their
 * starts and ends, other sessions' tests running at times (1 run on the code before that change,
 * 8 with it). Since the last fix of a loss (a stopping client takes no push), every churn run seen
 * passed: 13 of 13 (1 + 3 + 9). The mark was dropped then (issue 14): churn now fails the run like any
 * other scenario. None is marked at present. 2026-12-03: CI's churn lost 10 of 45 again (stored, never
 * shown); with LAB_LOG_DIR and debug lines, 1 quick run of 10 here caught it: with too few exit relays a
 * mailbox had gone on alice's second guard; her first guard was down when she restarted, her link went
 * to the second, and a mailbox on the entry relay is neither registered nor fetched. Fixed in
 * node/mailboxes.ts (no new mailbox on a guard while another relay is left; test/mailbox-guards.test.ts).
 */
const TODO: Record<string, string> = {}
/** Users started at once in nat-chat: the full lab's 6 users in two waves, a scale run's dozens in several. */
const START_TOGETHER = 4
/**
 * Diagnostics: LAB_USER_ENV (a JSON object) is added to every user process's environment, e.g.
 * `{"DEBUG":"p2pchat:mailboxes"}` (each start then logs its p2pchat debug lines) or
 * `{"NODE_OPTIONS":"--cpu-prof --cpu-prof-dir=/tmp/prof"}` (a CPU profile per user process).
 */
const USER_ENV: Record<string, string> = JSON.parse(process.env.LAB_USER_ENV ?? '{}')
/**
 * How long the lab waits for one `whois` answer: a lookup no exit answered within the request timeout
 * (15 s plus `standard`'s round-trip allowance) waits as long again for late answers
 * (node/directory-client.ts), so an answer may take ~50 s on a loaded machine; the 30 s of other
 * commands failed the 18-process lab on it.
 */
const WHOIS_MS = 90_000
/** How many times a user's `p2pchat start` is run before the lab gives up on it. */
const START_ATTEMPTS = 3
/**
 * Timers for the lab's processes (P2PCHAT_TIMING): as the tests' (announce every second, outbox retried
 * every 2 s), so a run takes minutes, not hours; epochs stay hourly. An onion request gives up after
 * 15 s: a 4-hop request over 50 ms links with 1 % loss takes a few hundred ms, but a lost SYN costs TCP
 * 1 s, and on a loaded 2-core machine (load average 13 seen) 8 s left a user's first mailbox requests
 * unanswered (NO_MAILBOX at start).
 *
 * Cover traffic (mixing levels) is sped up with them: every real packet (a STOCK, an ACK, a message, a
 * receipt) leaves in the place of a drop-cover packet, and reply blocks re-stocked every 2 s instead of 5
 * minutes would alone take every one of `standard`'s 20 drop-cover packets a minute, so messages queued
 * behind them for minutes (nat-chat timed out, 2026-12-01). Drop cover every 200 ms and loop cover every
 * 2 s keep the product's proportion of cover to real packets at the lab's rates; the mean delay per hop
 * and the receipt delay stay the level's own. At a level with steady mailboxes (`--privacy high`), a
 * push every 1 s and a SYNC every 2 s (each takes a drop slot: 1 of the 5 a second) keep a mailbox's
 * 60 items a minute above the lab's pace, as 30 s keeps 2 a minute above a chat's.
 *
 * Relay admission (protocols/onion/admission.ts) is shortened with them: the product wants a day of
 * attested age (2,880 announce intervals); the lab's relays are minutes old, so with the day every user
 * warned "0 of 5 relays admitted" and ran on admission's fallback (every relay), never on admission.
 * 10 s is 10 of the lab's announce intervals: relays are admitted a little after they start, users
 * choose among admitted relays as the product's users do, and a restarted relay keeps its age (its
 * peer id is kept).
 */
const TIMING = { announceIntervalMs: 1_000, relayMinAgeMs: 10_000, retryIntervalMs: 2_000, requestTimeoutMs: 15_000, stockIntervalMs: 2_000, crossCheckMaxDelayMs: 2_000, repushIntervalMs: 5_000, dropCoverGapMs: 200, loopCoverGapMs: 2_000, mailboxPushPeriodMs: 1_000, mailboxSyncGapMs: 2_000 }

interface Config {
  /** quick or full; a run of nat-chat alone (--only) is written as <name>-scale */
  name: string
  relays: number
  /** NAT LANs: how many users each, and whether its NAT is symmetric */
  lans: Array<{ users: number, symmetric: boolean }>
  /** messages each user sends to its partner */
  messages: number
  /** between two rounds of sends */
  intervalMs: number
  /** newcomers started one at a time after the chat, each timed from start to its first message shown */
  newcomers: number
  shape: LinkShape
  /** scenario churn: for durationMs, every ~eventEveryMs (0.5x..1.5x) one relay or user is killed (SIGKILL or SIGINT) and started again after 1..downMaxMs; every running user sends to its partner every sendEveryMs */
  churn: { durationMs: number, eventEveryMs: number, downMaxMs: number, sendEveryMs: number, maxRelaysDown: number, maxUsersDown: number }
  /** scenario split-and-heal: the internet is cut in two halves for durationMs; each user sends `rounds` messages to its partner during the cut */
  split: { durationMs: number, rounds: number }
  /** how long churn and split-and-heal wait, after the last send (churn) or the heal, for every message to be shown */
  settleMs: number
  /** seeds the churn's choices (printed, so a run can be replayed with --seed) */
  seed: number
  /** the users' privacy level (P2PCHAT_PRIVACY): the product's default unless --privacy says otherwise */
  privacy: string
  /** --strict: a scenario marked TODO fails the run like any other */
  strict?: boolean
  /** which scenarios after nat-chat run (--only nat-chat skips the others: scale runs) */
  only?: 'nat-chat'
}

const QUICK: Config = {
  name: 'quick',
  relays: 4,
  lans: [{ users: 1, symmetric: false }, { users: 1, symmetric: true }],
  messages: 10,
  intervalMs: 500,
  newcomers: 1,
  shape: { delayMs: 50, jitterMs: 10, loss: 0.01 },
  churn: { durationMs: 30_000, eventEveryMs: 5_000, downMaxMs: 4_000, sendEveryMs: 1_000, maxRelaysDown: 1, maxUsersDown: 1 },
  split: { durationMs: 20_000, rounds: 5 },
  settleMs: 90_000,
  seed: 1,
  privacy: DEFAULT_PRIVACY
}
const FULL: Config = {
  name: 'full',
  relays: 8,
  lans: [{ users: 2, symmetric: false }, { users: 2, symmetric: true }, { users: 2, symmetric: false }],
  messages: 40,
  intervalMs: 500,
  newcomers: 3,
  shape: { delayMs: 50, jitterMs: 10, loss: 0.01 },
  churn: { durationMs: 180_000, eventEveryMs: 8_000, downMaxMs: 8_000, sendEveryMs: 1_500, maxRelaysDown: 2, maxUsersDown: 2 },
  split: { durationMs: 60_000, rounds: 20 },
  settleMs: 180_000,
  seed: 1,
  privacy: DEFAULT_PRIVACY
}

const t0 = performance.now()
function log (msg: string): void {
  process.stderr.write(`[lab +${((performance.now() - t0) / 1000).toFixed(1)}s] ${msg}\n`)
}

function parseArgs (argv: string[]): Config {
  const c = structuredClone(argv.includes('--quick') ? QUICK : FULL)
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const num = (): number => {
      const v = Number(argv[++i])
      if (!Number.isFinite(v) || v < 0) throw new LabUsageError(`${a} needs a non-negative number`)
      return v
    }
    if (a === '--quick') continue
    else if (a === '--delay') c.shape.delayMs = num()
    else if (a === '--jitter') c.shape.jitterMs = num()
    else if (a === '--loss') c.shape.loss = num()
    else if (a === '--messages') c.messages = Math.max(1, Math.floor(num()))
    else if (a === '--seed') c.seed = Math.floor(num())
    else if (a === '--churn-s') c.churn.durationMs = num() * 1000
    else if (a === '--strict') c.strict = true
    else if (a === '--relays') c.relays = Math.max(1, Math.floor(num()))
    else if (a === '--users') {
      // spread over the LANs, one symmetric among them, partners across NATs
      const n = Math.max(2, Math.floor(num()))
      c.lans = c.lans.map((l, i) => ({ ...l, users: Math.floor(n / c.lans.length) + (i < n % c.lans.length ? 1 : 0) }))
    } else if (a === '--only') {
      if (argv[++i] !== 'nat-chat') throw new LabUsageError('--only takes nat-chat (the scale runs: nat-chat alone, no churn, split or bootstrap loss)')
      c.only = 'nat-chat'
      c.name = `${c.name}-scale`
    } else if (a === '--privacy') {
      const level = argv[++i] ?? ''
      if (!Object.hasOwn(PRIVACY_LEVELS, level)) throw new LabUsageError(`--privacy takes one of ${Object.keys(PRIVACY_LEVELS).join(', ')}`)
      c.privacy = level
    }
    else throw new LabUsageError(`unknown option ${a}; usage: npm run lab [-- --quick] [--delay ms] [--jitter ms] [--loss 0..1] [--messages n] [--seed n] [--churn-s seconds] [--privacy level] [--relays n] [--users n] [--only nat-chat] [--strict]`)
  }
  // sites (one /16 each of 172.16/12): the bootstrap node, the relays, the LANs and the relay behind NAT
  if (1 + c.relays + c.lans.length + 1 > MAX_SITES) throw new LabUsageError(`at most ${MAX_SITES - 2 - c.lans.length} relays: 172.16.0.0/12 holds ${MAX_SITES} sites`)
  if (c.lans.some(l => l.users > 200)) throw new LabUsageError('at most 200 users per LAN')
  if (c.shape.jitterMs > c.shape.delayMs) throw new LabUsageError('--jitter must not exceed --delay')
  if (c.shape.loss >= 1) throw new LabUsageError('--loss is a probability below 1')
  return c
}

export class LabUsageError extends Error {
  override name = 'LabUsageError'
}

/** The lab's processes and network, torn down once whatever happens. */
class Lab {
  readonly root = mkdtempSync(join(tmpdir(), `${NS_PREFIX}${process.pid}-`))
  readonly net = new LabNet(this.root)
  readonly procs: LabProcess[] = []
  readonly env: Record<string, string>

  constructor (privacy: string) {
    this.env = { P2PCHAT_TIMING: JSON.stringify(TIMING), P2PCHAT_PRIVACY: privacy }
  }

  spawn (name: string, ns: string, args: string[], env: Record<string, string> = {}): LabProcess {
    const p = new LabProcess(name, ns, args, { ...this.env, ...env })
    this.procs.push(p)
    return p
  }

  dataDir (name: string): string { return join(this.root, name) }

  /** Synchronous last resort (exit handlers): SIGKILL every process, delete every namespace. */
  killAll (): void {
    for (const p of this.procs) { try { p.child.kill('SIGKILL') } catch {} }
    this.net.teardown()
    rmSync(this.root, { recursive: true, force: true })
  }

  async stopAll (): Promise<void> {
    await Promise.all(this.procs.map(async p => await p.stop()))
  }
}

async function ready (p: LabProcess, timeoutMs = 120_000): Promise<{ obj: Json, at: number }> {
  const r = await p.waitFor(o => o.event === 'ready' || o.event === 'error', timeoutMs)
  if (r.obj.event !== 'ready') throw new Error(`${p.name} did not start: ${JSON.stringify(r.obj)}`)
  return r
}

async function until (pred: () => boolean | Promise<boolean>, what: string, timeoutMs: number, intervalMs = 250): Promise<void> {
  const deadline = performance.now() + timeoutMs
  while (!await pred()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, intervalMs))
  }
}

function probe (net: LabNet, ns: string, host: string, count: number): { connectMs: number[], failed: number } {
  const out = net.sh(ns, process.execPath, [PROBE, host, String(PORT), String(count)])
  return JSON.parse(out.trim().split('\n').pop() ?? '{}')
}

interface ScenarioResult {
  name: string
  users: number
  relays: number
  sent: number
  /** a mailbox held it (✓, or ✓✓ directly) */
  stored: number
  /** of which the sender saw ✓ before ✓✓ */
  storedShown: number
  delivered: number
  shown: number
  lost: number
  duplicated: number
  latencyMs: Summary
  receiptMs: Summary
  firstMessageMs: Summary
  startToReadyMs: Summary
  /** bytes through a user's link while messaging (rx + tx), per hour */
  bytesPerUserPerHour: number
  /** the same in the idle window before: online, sending nothing */
  idleBytesPerUserPerHour: number
  /** CPU a user process used per second (of one core), idle and while messaging (nat-chat only) */
  userCpu?: { idlePerUser: number, messagingPerUser: number }
  windowS: number
  /** relays' own figures over the scenario's window, from their Prometheus metrics */
  relayLoad: RelayLoad
  /** `p2pchat start` runs that exited with an error (and were run again) */
  startFailures: Array<{ user: string, code: string }>
  /** what else the scenario did, printed under the table */
  notes?: string
  /** checks of the scenario that failed besides lost and duplicated messages (a newcomer that never got through) */
  failures?: string[]
}

interface RelayLoad {
  /** onion packets all relays read per second in the idle window (users online, nobody sending) */
  idlePacketsPerSecond: number
  /** onion packets all relays read in the messaging window beyond the idle rate, per chat message sent */
  packetsPerMessage: number
  /** per relay: packets read, CPU seconds used, resident memory at the end */
  relays: Array<{ name: string, packetsIn: number, cpuSeconds: number, rssMiB: number, mailboxItems: number }>
}

/** One relay's metrics, scraped inside its namespace. */
function scrape (lab: Lab, ns: string): Map<string, number> {
  const text = lab.net.sh(ns, process.execPath, ['-e', `fetch('http://${METRICS}/metrics', { signal: AbortSignal.timeout(10000) }).then(r => r.text()).then(t => process.stdout.write(t))`])
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const i = line.lastIndexOf(' ')
    const name = line.slice(0, i).replace(/\{.*$/, '')
    out.set(name, (out.get(name) ?? 0) + Number(line.slice(i + 1)))
  }
  return out
}

/** CPU seconds (user + system) a running process has used, from /proc (USER_HZ 100 on Linux). */
function cpuSeconds (p: LabProcess): number {
  try {
    const f = readFileSync(`/proc/${String(p.child.pid)}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')
    return (Number(f[11]) + Number(f[12])) / 100
  } catch { return NaN }
}

/** A user: `proc` is its process now; `procs` every process it ran as (churn restarts it), oldest first. */
/** A running process's resident memory, MiB (from /proc: the lab's child is the p2pchat process itself, since `ip netns exec` execs it). */
function rssMiB (p: LabProcess): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${String(p.child.pid)}/status`, 'utf8'))
    return m == null ? NaN : Number(m[1]) / 1024
  } catch { return NaN }
}

/**
 * The figures only nat-chat measures (start times, bytes per user, relays' load), left empty by the
 * scenarios after it, and the scenario's window since `windowStart`.
 */
function onlyNatChatMeasures (windowStart: number): Pick<ScenarioResult, 'firstMessageMs' | 'startToReadyMs' | 'bytesPerUserPerHour' | 'idleBytesPerUserPerHour' | 'windowS' | 'relayLoad'> {
  const none = summarize([])
  return {
    firstMessageMs: none,
    startToReadyMs: none,
    bytesPerUserPerHour: NaN,
    idleBytesPerUserPerHour: NaN,
    windowS: (performance.now() - windowStart) / 1000,
    relayLoad: { idlePacketsPerSecond: NaN, packetsPerMessage: NaN, relays: [] }
  }
}

interface ChatUser { host: Host, nick: string, proc: LabProcess, procs: LabProcess[] }

interface Exchange {
  sent: number
  stored: number
  storedShown: number
  delivered: number
  shown: number
  duplicated: number
  latency: number[]
  receipt: number[]
}

/**
 * Each user sends `rounds` messages to its partner (0<->1, 2<->3, ...), one round every `intervalMs`;
 * waits (bounded) until every one is shown and its receipt is back, then counts. Every message is a
 * unique token; times are the lab's clock at the send command and at the recipient's line.
 */
let exchangeSeq = 0

async function exchange (users: ChatUser[], rounds: number, intervalMs: number, label = '', beforeSettle?: (shown: () => number) => Promise<void>, settleMs = 120_000): Promise<Exchange> {
  const partner = (i: number): number => (i % 2 === 0 ? i + 1 : i - 1)
  const sends: Array<{ token: string, tag: string, from: number, to: number, at: number, id?: string }> = []
  for (let round = 0; round < rounds; round++) {
    for (const [i, u] of users.entries()) {
      const to = partner(i)
      const token = `lab ${u.nick} to ${users[to].nick} ${label}#${round}`
      // the tag comes back on the `sent` line with the message's id
      const tag = `x${++exchangeSeq}`
      sends.push({ token, tag, from: i, to, at: performance.now() })
      u.proc.send({ cmd: 'send', to: users[to].nick, text: token, tag })
    }
    await new Promise(resolve => setTimeout(resolve, intervalMs))
  }
  log(`${sends.length} messages sent${label === '' ? '' : ` (${label.trim()})`}; waiting for them to be shown and their receipts`)
  const shownOf = (s: typeof sends[number]): Array<{ at: number }> =>
    users[s.to].proc.events.filter(e => e.obj.event === 'message' && e.obj.text === s.token)
  const idOf = (s: typeof sends[number]): string | undefined =>
    users[s.from].proc.events.find(e => e.obj.event === 'sent' && e.obj.tag === s.tag && typeof e.obj.id === 'string')?.obj.id as string | undefined
  if (beforeSettle != null) await beforeSettle(() => sends.filter(s => shownOf(s).length > 0).length)
  const settled = (): boolean => sends.every(s => {
    s.id ??= idOf(s)
    return shownOf(s).length > 0 && s.id != null && users[s.from].proc.events.some(e => e.obj.id === s.id && (e.obj.event === 'delivered' || e.obj.event === 'failed'))
  })
  await until(settled, 'every message shown and its receipt back', settleMs, 500).catch((err: Error) => {
    log(`${err.message}: counting what arrived`)
    for (const u of users) {
      if (!u.proc.running) log(`${u.nick} exited (${String(u.proc.child.exitCode ?? u.proc.child.signalCode)}): ${u.proc.stderr.slice(-500)}`)
      const errors = u.proc.events.filter(e => e.obj.event === 'error' || e.obj.event === 'failed' || e.obj.event === 'queued').map(e => `${String(e.obj.event)} ${String(e.obj.code ?? e.obj.reason ?? '')}`)
      if (errors.length > 0) log(`${u.nick}: ${errors.length} error/failed/queued lines, e.g. ${errors.slice(0, 3).join('; ')}`)
    }
    const missing = sends.filter(s => shownOf(s).length === 0)
    const byPair = new Map<string, number>()
    for (const s of missing) byPair.set(`${users[s.from].nick} -> ${users[s.to].nick}`, (byPair.get(`${users[s.from].nick} -> ${users[s.to].nick}`) ?? 0) + 1)
    if (missing.length > 0) log(`not shown: ${[...byPair].map(([k, v]) => `${k}: ${v}`).join(', ')}`)
  })
  const latency: number[] = []
  const receipt: number[] = []
  let stored = 0; let storedShown = 0; let delivered = 0; let shown = 0; let duplicated = 0
  for (const s of sends) {
    // settled() names ids only up to the first message not settled (every() stops there): a run that
    // timed out counted every later message as neither stored nor delivered (the 18-process lab: 0 of 80)
    s.id ??= idOf(s)
    const seen = shownOf(s)
    if (seen.length > 0) { shown++; latency.push(seen[0].at - s.at) }
    duplicated += Math.max(0, seen.length - 1)
    const evs = users[s.from].proc.events.filter(e => s.id != null && e.obj.id === s.id)
    // a mailbox held it: its ✓, or its ✓✓ when the receipt overtook the stored answer (then ✓ is not shown)
    if (evs.some(e => e.obj.event === 'stored' || e.obj.event === 'delivered')) stored++
    if (evs.some(e => e.obj.event === 'stored')) storedShown++
    const d = evs.find(e => e.obj.event === 'delivered')
    if (d != null) { delivered++; receipt.push(d.at - s.at) }
  }
  return { sent: sends.length, stored, storedShown, delivered, shown, duplicated, latency, receipt }
}

/**
 * Scenario bootstrap-lost: the bootstrap node is SIGKILLed after the network formed; the users online
 * go on chatting through the relays (a newcomer could not join until a bootstrap node is back: not
 * tried here).
 */
async function bootstrapLost (bootstrap: LabProcess, users: ChatUser[], relays: number, cfg: Config): Promise<ScenarioResult> {
  bootstrap.child.kill('SIGKILL')
  await bootstrap.exited
  log('bootstrap node SIGKILLed')
  const windowStart = performance.now()
  const ex = await exchange(users, Math.ceil(cfg.messages / 2), cfg.intervalMs, 'without bootstrap ')
  return {
    name: 'bootstrap-lost',
    users: users.length,
    relays,
    ...ex,
    lost: ex.sent - ex.shown,
    latencyMs: summarize(ex.latency),
    receiptMs: summarize(ex.receipt),
    ...onlyNatChatMeasures(windowStart),
    startFailures: []
  }
}

type StartUser = (h: Host) => Promise<{ proc: LabProcess, readyAt: number }>

/** The start-up stages a user prints (node/chat-node.ts `status` events), in order. */
const START_STAGES = ['connecting', 'entry', 'mailboxes', 'publishing', 'ready'] as const
/**
 * One successful `p2pchat start` of a user: ms from the process's spawn to each stage's `status` line
 * (`connecting` is when the node is up and asks a bootstrap node for relays: before it, the runtime
 * loads and compiles; `entry`: relay list in hand, connecting to an entry relay; `mailboxes`: entry
 * link up, registering mailboxes; `publishing`: the name's publication left, beside the REGISTERs still
 * unanswered (or after them when a mailbox had to be replaced); `ready`: both done).
 */
interface StartStages { user: string, phase: string, at: Partial<Record<typeof START_STAGES[number], number>> }
const startStages: StartStages[] = []
/** Each lab relay's dial-back verdict as it printed it (how many networks confirmed it). */
const reachability: string[] = []

function stagesOf (user: string, phase: string, p: LabProcess): StartStages {
  const at: StartStages['at'] = {}
  for (const e of p.events) {
    const stage = e.obj.event === 'status' ? e.obj.stage : e.obj.event === 'ready' ? 'ready' : undefined
    if (typeof stage === 'string' && (START_STAGES as readonly string[]).includes(stage) && at[stage as typeof START_STAGES[number]] == null) at[stage as typeof START_STAGES[number]] = e.at - p.startedAt
  }
  return { user, phase, at }
}

/** Per phase (first starts, churn restarts): the median time spent in each stage, from the previous stage's line. */
function stageSummary (all: StartStages[]): Record<string, Record<string, Summary>> {
  const out: Record<string, Record<string, Summary>> = {}
  for (const phase of new Set(all.map(s => s.phase))) {
    const of = all.filter(s => s.phase === phase)
    const row: Record<string, Summary> = {}
    let prev: string | undefined
    for (const st of START_STAGES) {
      row[prev == null ? `spawn->${st}` : `${prev}->${st}`] = summarize(of.flatMap(s => {
        const a = s.at[st]
        const b = prev == null ? 0 : s.at[prev as typeof START_STAGES[number]]
        return a == null || b == null ? [] : [a - b]
      }))
      prev = st
    }
    out[phase] = row
  }
  return out
}

function stageLine (s: StartStages): string {
  return START_STAGES.map(st => `${st} ${s.at[st] == null ? '-' : (s.at[st] / 1000).toFixed(1)}`).join(', ')
}

/**
 * `p2pchat start` as a person runs it: when it exits with an error at startup (a loaded machine has
 * made a name publish time out), the user runs it again, at most START_ATTEMPTS times; each failure is
 * pushed to `failures`. Times are from the successful attempt's start.
 */
function userStarter (lab: Lab, bootstrapAddr: string, failures: Array<{ user: string, code: string }>, phase = 'first start'): StartUser {
  return async (h: Host) => {
    for (let attempt = 1; ; attempt++) {
      const proc = lab.spawn(h.name, h.ns, ['start', '--json', '--nick', h.name, '--bootstrap', bootstrapAddr, '--data-dir', lab.dataDir(h.name)], USER_ENV)
      const r = await proc.waitFor(o => o.event === 'ready' || o.event === 'error', 120_000)
      if (r.obj.event === 'ready') {
        const stages = stagesOf(h.name, phase, proc)
        startStages.push(stages)
        // what the start warned of on the way (relays by peer id only: no nick, no message text)
        const warnings = proc.events.filter(e => e.obj.event === 'warning').map(e => `+${((e.at - proc.startedAt) / 1000).toFixed(1)}s ${String(e.obj.message).slice(0, 120)}`)
        log(`${h.name} (${phase}) stages, s from spawn: ${stageLine(stages)}${warnings.length === 0 ? '' : `; warnings: ${warnings.join(' | ')}`}`)
        if (USER_ENV.DEBUG != null) log(`${h.name} stderr:\n  ${proc.stderr.split('\n').filter(l => l.includes('p2pchat:')).slice(0, 40).join('\n  ')}`)
        return { proc, readyAt: r.at }
      }
      failures.push({ user: h.name, code: String(r.obj.code) })
      log(`${h.name} failed to start (${String(r.obj.code)}: ${String(r.obj.message)})${attempt < START_ATTEMPTS ? ', starting it again' : ''}`)
      await proc.stop()
      if (attempt >= START_ATTEMPTS) throw new Error(`${h.name} did not start in ${START_ATTEMPTS} attempts: ${JSON.stringify(r.obj)}`)
    }
  }
}

async function natChat (lab: Lab, cfg: Config, bootstrapAddr: string, relaySites: Array<{ name: string, ns: string }>, hosts: Host[], newcomers: Host[]): Promise<{ result: ScenarioResult, users: ChatUser[] }> {
  const startFailures: Array<{ user: string, code: string }> = []
  const startUser = userStarter(lab, bootstrapAddr, startFailures)
  const readyAt = new Map<string, number>()
  // at most START_TOGETHER users start at once (people do not all start in the same second, and a
  // loaded 2-core machine misses start-up timeouts when a dozen Node processes start together)
  const users: ChatUser[] = new Array(hosts.length)
  let next = 0
  await Promise.all(Array.from({ length: Math.min(START_TOGETHER, hosts.length) }, async () => {
    while (next < hosts.length) {
      const i = next++
      const { proc, readyAt: at } = await startUser(hosts[i])
      readyAt.set(hosts[i].name, at)
      users[i] = { host: hosts[i], nick: hosts[i].name, proc, procs: [proc] }
    }
  }))
  log(`${users.length} users ready (behind NAT, listening nowhere)`)
  // partners: 0<->1, 2<->3, ... (each pair in different LANs where the layout allows)
  const partner = (i: number): number => (i % 2 === 0 ? i + 1 : i - 1)
  await Promise.all(users.map(async (u, i) => {
    const to = users[partner(i)].nick
    await until(async () => (await u.proc.ask({ cmd: 'whois', nick: to }, WHOIS_MS)).found === true, `${u.nick} to find ${to}`, 2 * WHOIS_MS, 500)
  }))
  log('every user found its partner in the directory')
  // an idle window as long as the sending phase: the baseline of background traffic (reply-block
  // stocking, announcements) that the messaging window is compared with
  const userBytes = (): number => users.reduce((n, u) => { const c = lab.net.counters(u.host.ns); return n + c.rx + c.tx }, 0)
  const relayPackets = (m: Map<string, number>): number => (m.get('p2pchat_onion_packets_in_total') ?? 0) + (m.get('p2pchat_client_packets_in_total') ?? 0)
  const userCpu = (): number => users.reduce((n, u) => n + cpuSeconds(u.proc), 0)
  const idle0 = { at: performance.now(), bytes: userBytes(), relays: relaySites.map(r => scrape(lab, r.ns)), cpu: userCpu() }
  await new Promise(resolve => setTimeout(resolve, cfg.messages * cfg.intervalMs))
  const idle1 = { at: performance.now(), bytes: userBytes(), relays: relaySites.map(r => scrape(lab, r.ns)), cpu: userCpu() }
  const idleS = (idle1.at - idle0.at) / 1000
  log(`idle baseline over ${idleS.toFixed(1)} s measured`)
  const windowStart = performance.now()
  const ex = await exchange(users, cfg.messages, cfg.intervalMs)
  const windowS = (performance.now() - windowStart) / 1000
  const { stored, storedShown, delivered, shown, duplicated, latency, receipt } = ex
  const startToReady = users.map(u => (readyAt.get(u.nick) ?? NaN) - u.proc.startedAt)
  const relaysAtEnd = relaySites.map(r => scrape(lab, r.ns))
  const cpuAtEnd = userCpu()
  const delta = (i: number, name: string): number => (relaysAtEnd[i].get(name) ?? 0) - (idle1.relays[i].get(name) ?? 0)
  const idlePackets = relaySites.reduce((n, _r, i) => n + relayPackets(idle1.relays[i]) - relayPackets(idle0.relays[i]), 0)
  const chatPackets = relaySites.reduce((n, _r, i) => n + relayPackets(relaysAtEnd[i]) - relayPackets(idle1.relays[i]), 0)
  const relayLoad: RelayLoad = {
    idlePacketsPerSecond: idlePackets / idleS,
    packetsPerMessage: (chatPackets - idlePackets / idleS * windowS) / Math.max(1, ex.sent),
    relays: relaySites.map((r, i) => ({
      name: r.name,
      packetsIn: relayPackets(relaysAtEnd[i]) - relayPackets(idle1.relays[i]),
      cpuSeconds: delta(i, 'process_cpu_seconds_total'),
      rssMiB: (relaysAtEnd[i].get('process_resident_memory_bytes') ?? 0) / 2 ** 20,
      mailboxItems: relaysAtEnd[i].get('p2pchat_mailbox_items') ?? 0
    }))
  }
  const bytes = userBytes() - idle1.bytes
  // time to first message: a newcomer at a time starts, looks the first user up at once and writes to it
  const first: number[] = []
  const newcomerFailures: string[] = []
  for (const h of newcomers) {
    // a newcomer that cannot join or whose first message is not shown is counted, not fatal to the lab
    try {
      const { proc: p, readyAt: at } = await startUser(h)
      startToReady.push(at - p.startedAt)
      try {
        await until(async () => (await p.ask({ cmd: 'whois', nick: users[0].nick }, WHOIS_MS)).found === true, `${h.name} to find ${users[0].nick}`, 2 * WHOIS_MS, 100)
        const token = `lab ${h.name} says hello`
        const from = users[0].proc.events.length
        p.send({ cmd: 'send', to: users[0].nick, text: token })
        const shown = await users[0].proc.waitFor(o => o.event === 'message' && o.text === token, 120_000, from)
        first.push(shown.at - p.startedAt)
        log(`newcomer ${h.name}: start -> ready ${fmt(at - p.startedAt)} ms, -> its first message shown ${fmt(shown.at - p.startedAt)} ms`)
      } finally {
        await p.stop()
      }
    } catch (err) {
      newcomerFailures.push(`${h.name}: ${(err as Error).message.slice(0, 200)}`)
      log(`newcomer ${h.name} failed: ${(err as Error).message.slice(0, 300)}`)
    }
  }
  const result: ScenarioResult = {
    name: 'nat-chat',
    users: users.length,
    relays: relaySites.length,
    sent: ex.sent,
    stored,
    storedShown,
    delivered,
    shown,
    lost: ex.sent - shown,
    duplicated,
    latencyMs: summarize(latency),
    receiptMs: summarize(receipt),
    firstMessageMs: summarize(first),
    startToReadyMs: summarize(startToReady),
    bytesPerUserPerHour: bytes / users.length / windowS * 3600,
    idleBytesPerUserPerHour: (idle1.bytes - idle0.bytes) / users.length / idleS * 3600,
    userCpu: { idlePerUser: (idle1.cpu - idle0.cpu) / users.length / idleS, messagingPerUser: (cpuAtEnd - idle1.cpu) / users.length / windowS },
    windowS,
    relayLoad,
    startFailures,
    ...(newcomerFailures.length === 0 ? {} : { failures: newcomerFailures, notes: `nat-chat: ${newcomerFailures.length} newcomer${newcomerFailures.length === 1 ? '' : 's'} failed: ${newcomerFailures.join('; ')}` })
  }
  return { result, users }
}

/** mulberry32: a small seeded generator, so that a churn run's choices can be replayed (--seed). */
function seeded (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }
}

/** A relay of the lab that churn may kill and start again (same data directory: same peer id and keys). */
interface LabRelay { site: Site, proc: LabProcess, args: string[] }

/**
 * Scenario churn: for cfg.churn.durationMs, at random times (seeded), one relay or one user is killed,
 * by SIGKILL (a crash: nothing saved on the way out) or by SIGINT (a clean stop), and started again
 * from the same data directory after 1..downMaxMs; at most maxRelaysDown relays and maxUsersDown users
 * are down at once. Meanwhile every user that is up sends its partner a message every sendEveryMs, so
 * messages are always in flight when something dies. A message counts as sent once its sender printed
 * `sent` (the outbox holds it from then on); it is delivered once when exactly one `message` line with
 * its id shows it at the recipient, over all the processes the recipient ran as. After the churn every
 * process is up again and the lab waits (bounded) until every message sent was shown.
 */
async function churn (lab: Lab, cfg: Config, users: ChatUser[], relays: LabRelay[], relayCount: number, startUser: StartUser): Promise<ScenarioResult> {
  const c = cfg.churn
  const random = seeded(cfg.seed)
  const startFailures: Array<{ user: string, code: string }> = []
  const partner = (i: number): number => (i % 2 === 0 ? i + 1 : i - 1)
  const upUser = users.map(() => true)
  const upRelay = relays.map(() => true)
  const actions: string[] = []
  const kills = { SIGKILL: 0, SIGINT: 0, relays: 0, users: 0 }
  const sends: Array<{ token: string, tag: string, from: number, to: number, at: number, proc: LabProcess }> = []
  const restarts: Array<Promise<void>> = []
  let seq = 0
  const windowStart = performance.now()
  const end = windowStart + c.durationMs
  const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

  const sender = (async () => {
    while (performance.now() < end) {
      for (const [i, u] of users.entries()) {
        if (!upUser[i] || !u.proc.running) continue
        const to = partner(i)
        const token = `lab ${u.nick} to ${users[to].nick} churn#${++seq}`
        const tag = `c${seq}`
        sends.push({ token, tag, from: i, to, at: performance.now(), proc: u.proc })
        u.proc.send({ cmd: 'send', to: users[to].nick, text: token, tag })
      }
      await sleep(c.sendEveryMs)
    }
  })()

  const kill = async (p: LabProcess, how: 'SIGKILL' | 'SIGINT'): Promise<void> => {
    kills[how]++
    if (how === 'SIGKILL') {
      p.child.kill('SIGKILL')
      await p.exited
    } else {
      await p.stop()
    }
  }

  while (true) {
    await sleep(c.eventEveryMs * (0.5 + random()))
    if (performance.now() >= end) break
    const candidates: Array<{ kind: 'relay' | 'user', i: number }> = []
    if (upRelay.filter(x => !x).length < c.maxRelaysDown) relays.forEach((_r, i) => { if (upRelay[i]) candidates.push({ kind: 'relay', i }) })
    if (upUser.filter(x => !x).length < c.maxUsersDown) users.forEach((_u, i) => { if (upUser[i]) candidates.push({ kind: 'user', i }) })
    if (candidates.length === 0) continue
    const pick = candidates[Math.floor(random() * candidates.length)]
    const how = random() < 0.5 ? 'SIGKILL' : 'SIGINT'
    const downMs = 1000 + random() * Math.max(0, c.downMaxMs - 1000)
    const at = ((performance.now() - windowStart) / 1000).toFixed(1)
    if (pick.kind === 'relay') {
      const r = relays[pick.i]
      upRelay[pick.i] = false
      kills.relays++
      actions.push(`${at}s ${r.site.name} ${how}`)
      log(`churn: ${how} ${r.site.name}, back in ${(downMs / 1000).toFixed(1)} s`)
      await kill(r.proc, how)
      restarts.push((async () => {
        await sleep(downMs)
        r.proc = lab.spawn(r.site.name, r.site.ns, r.args)
        await ready(r.proc)
        upRelay[pick.i] = true
        log(`churn: ${r.site.name} back`)
      })())
    } else {
      const u = users[pick.i]
      upUser[pick.i] = false
      kills.users++
      actions.push(`${at}s ${u.nick} ${how}`)
      log(`churn: ${how} ${u.nick}, back in ${(downMs / 1000).toFixed(1)} s`)
      await kill(u.proc, how)
      restarts.push((async () => {
        await sleep(downMs)
        const { proc } = await startUser(u.host)
        u.proc = proc
        u.procs.push(proc)
        upUser[pick.i] = true
        log(`churn: ${u.nick} back`)
      })())
    }
  }
  await sender
  await Promise.all(restarts)
  const confirmed = sends.filter(s => s.proc.events.some(e => e.obj.event === 'sent' && e.obj.tag === s.tag))
  const idOf = (s: typeof sends[number]): string => String(s.proc.events.find(e => e.obj.event === 'sent' && e.obj.tag === s.tag)?.obj.id)
  const shownOf = (s: typeof sends[number]): Array<{ at: number }> => {
    const id = idOf(s)
    return users[s.to].procs.flatMap(p => p.events.filter(e => e.obj.event === 'message' && (e.obj.id === id || e.obj.text === s.token)))
  }
  const receiptOf = (s: typeof sends[number]): { at: number } | undefined => {
    const id = idOf(s)
    for (const p of users[s.from].procs) {
      const d = p.events.find(e => e.obj.event === 'delivered' && e.obj.id === id)
      if (d != null) return d
    }
    return undefined
  }
  log(`churn over: ${kills.relays} relay and ${kills.users} user kills (${kills.SIGKILL} SIGKILL, ${kills.SIGINT} SIGINT), everything up again; ${confirmed.length} of ${sends.length} sends confirmed (the rest went to a process as it died); waiting for them to be shown`)
  await until(() => confirmed.every(s => shownOf(s).length > 0), 'every message sent during the churn shown', cfg.settleMs, 500).catch((err: Error) => { log(`${err.message}: counting what arrived`) })
  // receipts: informational; bounded
  await until(() => confirmed.every(s => receiptOf(s) != null), 'their receipts', 30_000, 500).catch(() => {})
  const latency: number[] = []
  const receipt: number[] = []
  let shown = 0; let duplicated = 0; let delivered = 0; let stored = 0; let storedShown = 0
  for (const s of confirmed) {
    const seen = shownOf(s)
    if (seen.length > 0) { shown++; latency.push(seen[0].at - s.at) }
    duplicated += Math.max(0, seen.length - 1)
    const id = idOf(s)
    const evs = users[s.from].procs.flatMap(p => p.events.filter(e => e.obj.id === id))
    if (evs.some(e => e.obj.event === 'stored' || e.obj.event === 'delivered')) stored++
    if (evs.some(e => e.obj.event === 'stored')) storedShown++
    const d = receiptOf(s)
    if (d != null) { delivered++; receipt.push(d.at - s.at) }
  }
  const lostOnes = confirmed.filter(s => shownOf(s).length === 0)
  const dupOnes = confirmed.filter(s => shownOf(s).length > 1)
  if (dupOnes.length > 0) log(`churn: ${dupOnes.length} shown more than once: ${dupOnes.map(s => s.token).slice(0, 10).join('; ')}`)
  // where each lost one got to: the sender's lines for its id (sent, stored = a mailbox held it, queued, failed), and when it was sent
  const fate = (s: typeof sends[number]): string => {
    const id = idOf(s)
    const evs = users[s.from].procs.flatMap(p => p.events.filter(e => e.obj.id === id).map(e => String(e.obj.event)))
    return `${s.token.replace(/^lab /, '')} at ${((s.at - windowStart) / 1000).toFixed(1)}s: ${[...new Set(evs)].join('/')}`
  }
  if (lostOnes.length > 0) log(`churn: ${lostOnes.length} not shown: ${lostOnes.map(fate).join('; ')}`)
  return {
    name: 'churn',
    users: users.length,
    relays: relayCount,
    sent: confirmed.length,
    stored,
    storedShown,
    delivered,
    shown,
    lost: confirmed.length - shown,
    duplicated,
    latencyMs: summarize(latency),
    receiptMs: summarize(receipt),
    ...onlyNatChatMeasures(windowStart),
    startFailures,
    notes: `churn (seed ${cfg.seed}, ${(c.durationMs / 1000).toFixed(0)} s): ${kills.relays} relay kills, ${kills.users} user kills (${kills.SIGKILL} SIGKILL, ${kills.SIGINT} SIGINT), each back after 1..${(c.downMaxMs / 1000).toFixed(0)} s: ${actions.join(', ')}; ` +
      `${sends.length - confirmed.length} sends written to a process as it died were never confirmed and are not counted`
  }
}

/**
 * Scenario split-and-heal: the internet is cut in two halves (lab/net.ts split: every packet between
 * them dropped, open connections included); each user sends cfg.split.rounds messages to its partner
 * during the cut (partners in different halves cannot reach each other's mailboxes); the cut heals
 * after cfg.split.durationMs, and the lab waits (bounded) until every message is shown exactly once.
 */
async function splitHeal (lab: Lab, cfg: Config, users: ChatUser[], relays: number, halves: { a: Site[], b: Site[] }): Promise<ScenarioResult> {
  const windowStart = performance.now()
  lab.net.split(halves.a, halves.b)
  const names = (x: Site[]): string => x.map(s => s.name).join(' ')
  log(`split: ${names(halves.a)} | ${names(halves.b)}`)
  let dropped = 0
  let shownBeforeHeal = 0
  const ex = await exchange(users, cfg.split.rounds, cfg.intervalMs, 'during the split ', async (shown) => {
    const left = cfg.split.durationMs - (performance.now() - windowStart)
    if (left > 0) await new Promise(resolve => setTimeout(resolve, left))
    shownBeforeHeal = shown()
    dropped = lab.net.heal()
    log(`healed after ${((performance.now() - windowStart) / 1000).toFixed(1)} s (the split dropped ${dropped} packets; ${shownBeforeHeal} messages shown before the heal)`)
  }, cfg.settleMs)
  const cross = users.filter((u, i) => {
    const p = users[i % 2 === 0 ? i + 1 : i - 1]
    const side = (h: Host): boolean => halves.a.some(x => x.index === h.lan.router.index)
    return side(u.host) !== side(p.host)
  }).length
  return {
    name: 'split-and-heal',
    users: users.length,
    relays,
    ...ex,
    lost: ex.sent - ex.shown,
    latencyMs: summarize(ex.latency),
    receiptMs: summarize(ex.receipt),
    ...onlyNatChatMeasures(windowStart),
    startFailures: [],
    notes: `split-and-heal: internet cut for ${(cfg.split.durationMs / 1000).toFixed(0)} s into [${names(halves.a)}] and [${names(halves.b)}] (${dropped} packets dropped); ` +
      `${cross} of ${users.length} users had their partner across the cut; ${shownBeforeHeal} of ${ex.sent} messages shown before the heal, the rest after it`
  }
}

interface RelayBehindNat {
  /** a relay in a private LAN, no port forward: expected to refuse (exit 1, UNREACHABLE) */
  withoutForward: { outcome: 'refused' | 'became a relay' | 'failed otherwise', message: string, ms: number }
  /** the same relay after a port forward on the router and --announce <router's public address>: expected to become a relay */
  withForward: { outcome: 'became a relay' | 'refused' | 'failed otherwise', announced: string[], message: string, ms: number }
}

/** Scenario relay-behind-nat: reachability before volunteering, checked by dial-back from relays in other /16s. */
async function relayBehindNat (lab: Lab, bootstrapAddr: string, host: Host): Promise<RelayBehindNat> {
  const args = ['start', '--relay', '--json', '--listen', `/ip4/${host.addr}/tcp/${PORT}`, '--bootstrap', bootstrapAddr, '--metrics', METRICS, '--data-dir', lab.dataDir(host.name)]
  // a relay that comes up stays: it is a relay of the network from then on
  const attempt = async (extra: string[]): Promise<{ outcome: 'refused' | 'became a relay' | 'failed otherwise', obj: Json, ms: number }> => {
    const p = lab.spawn(host.name, host.ns, [...args, ...extra])
    const r = await p.waitFor(o => o.event === 'ready' || o.event === 'error', 120_000)
    const ms = r.at - p.startedAt
    if (r.obj.event !== 'ready') await p.stop()
    if (r.obj.event === 'ready') return { outcome: 'became a relay', obj: r.obj, ms }
    return { outcome: r.obj.code === 'UNREACHABLE' ? 'refused' : 'failed otherwise', obj: r.obj, ms }
  }
  const without = await attempt([])
  log(`relay behind NAT, no port forward: ${without.outcome}${without.obj.message != null ? ` (${String(without.obj.message).slice(0, 160)}...)` : ''}`)
  lab.net.portForward(host.lan, host, PORT)
  const withFwd = await attempt(['--announce', `/ip4/${host.lan.router.addr}/tcp/${PORT}`])
  log(`relay behind NAT with a port forward and --announce /ip4/${host.lan.router.addr}/tcp/${PORT}: ${withFwd.outcome}`)
  return {
    withoutForward: { outcome: without.outcome, message: String(without.obj.message ?? ''), ms: without.ms },
    withForward: { outcome: withFwd.outcome, announced: (withFwd.obj.announced as string[] | undefined) ?? [], message: String(withFwd.obj.message ?? ''), ms: withFwd.ms }
  }
}

function fmt (v: number): string {
  if (!Number.isFinite(v)) return '-'
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)
}

function mib (bytes: number): string { return Number.isFinite(bytes) ? `${(bytes / 2 ** 20).toFixed(2)} MiB` : '-' }

function tableOf (results: ScenarioResult[], privacy: string): string {
  const head = ['scenario', 'privacy', 'users', 'relays', 'sent', 'stored', 'delivered', 'shown', 'lost', 'duplicated', 'latency p50 ms', 'p95 ms', 'receipt p50 ms', 'start -> ready ms', 'newcomer: start -> first message shown ms', 'bytes/user/hour messaging', 'idle']
  const rows = results.map(r => [r.name, privacy === DEFAULT_PRIVACY ? `${privacy} (default)` : privacy, r.users, r.relays, r.sent, r.stored, r.delivered, r.shown, r.lost, r.duplicated,
    fmt(r.latencyMs.median), fmt(r.latencyMs.p95), fmt(r.receiptMs.median), fmt(r.startToReadyMs.median), fmt(r.firstMessageMs.median), mib(r.bytesPerUserPerHour), mib(r.idleBytesPerUserPerHour)].map(String))
  return [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`, ...rows.map(r => `| ${r.join(' | ')} |`)].join('\n')
}

async function runLab (cfg: Config): Promise<number> {
  const loadAtStart = loadavg()[0]
  const lab = new Lab(cfg.privacy)
  const onSignal = (sig: string): void => {
    log(`${sig}: tearing the lab down`)
    lab.killAll()
    process.exit(130)
  }
  const onExit = (): void => { lab.killAll() }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  process.once('exit', onExit)
  try {
    const net = lab.net
    let site = 0
    const bsSite = net.site('bootstrap', site++)
    const relaySites = Array.from({ length: cfg.relays }, (_, i) => net.site(`relay${i + 1}`, site++))
    const hosts: Host[] = []
    const names = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi']
    let u = 0
    const lans = cfg.lans.map((l, i) => net.natLan(`nat${i + 1}`, site++, i + 1, l.symmetric))
    const relayLan = net.natLan('natrelay', site++, 9, false)
    const relayHost = net.host('natrelay-host', relayLan)
    const newcomers = Array.from({ length: cfg.newcomers }, (_, i) => net.host(`newcomer${i + 1}`, lans[i % lans.length]))
    // users alternate between LANs, so that partners (0<->1, 2<->3) sit behind different NATs
    for (let k = 0; k < Math.max(...cfg.lans.map(l => l.users)); k++) {
      for (const [i, l] of cfg.lans.entries()) if (k < l.users) { hosts.push(net.host(names[u] ?? `user${u + 1}`, lans[i])); u++ }
    }
    log(`network: bootstrap ${bsSite.addr}, relays ${relaySites.map(r => r.addr).join(' ')}, NAT LANs ${lans.map(l => `${l.router.addr}${l.symmetric ? ' (symmetric)' : ''}`).join(' ')}; users ${hosts.map(h => `${h.name} ${h.addr}`).join(', ')}`)
    await net.startDelay(cfg.shape, 1)
    log(`internet links: ${cfg.shape.delayMs} ± ${cfg.shape.jitterMs} ms one way, ${(cfg.shape.loss * 100).toFixed(1)} % loss (user-space forwarder)`)

    const bsArgs = ['bootstrap', '--json', '--listen', `/ip4/${bsSite.addr}/tcp/${PORT}`, '--metrics', METRICS, '--data-dir', lab.dataDir('bootstrap')]
    const bs = lab.spawn('bootstrap', bsSite.ns, bsArgs)
    const bootstrapAddr = ((await ready(bs)).obj.addrs as string[])[0]
    const labRelays: LabRelay[] = relaySites.map(site => {
      const args = ['start', '--relay', '--json', '--listen', `/ip4/${site.addr}/tcp/${PORT}`, '--bootstrap', bootstrapAddr, '--metrics', METRICS, '--data-dir', lab.dataDir(site.name)]
      return { site, args, proc: lab.spawn(site.name, site.ns, args) }
    })
    const relays = labRelays.map(r => r.proc)
    await Promise.all(relays.map(async r => await ready(r)))
    // how many networks dialled each relay back before it announced itself (protocols/reachability/SPEC.md)
    const checked = relays.map(r => `${r.name}: ${String(r.events.filter(e => e.obj.event === 'status' && e.obj.stage === 'checking').at(-1)?.obj.detail ?? 'no check')}`)
    log(`dial-back checks: ${checked.join('; ')}`)
    reachability.push(...checked)
    await Promise.all(relays.map(async r => {
      await until(async () => Number((await r.ask({ cmd: 'relays' })).count) >= relays.length, `${r.name} to know ${relays.length} relays`, 90_000, 500)
    }))
    log(`bootstrap and ${relays.length} relays ready; each knows every relay`)

    const direct = probe(net, bsSite.ns, relaySites[0].addr, 20)
    const natted = probe(net, hosts[0].ns, relaySites[1 % relaySites.length].addr, 20)
    log(`measured TCP round trip, site to site: p50 ${fmt(summarize(direct.connectMs).median)} ms; user behind NAT to a relay: p50 ${fmt(summarize(natted.connectMs).median)} ms`)

    const natRelay = await relayBehindNat(lab, bootstrapAddr, relayHost)
    const allRelays = [...relaySites, ...(natRelay.withForward.outcome === 'became a relay' ? [{ name: 'natrelay', ns: relayHost.ns }] : [])]
    const chat = await natChat(lab, cfg, bootstrapAddr, allRelays, hosts, newcomers)
    // what an operator sees: `p2pchat relay status` run beside the first relay, reading its metrics
    let relayStatus = ''
    try {
      relayStatus = net.sh(relaySites[0].ns, process.execPath, [BIN, 'relay', 'status', '--metrics', METRICS])
    } catch (err) {
      relayStatus = `p2pchat relay status failed: ${(err as Error).message}\n`
    }
    // resident memory of every process, with all users online after the chat (scale estimates start here)
    const running = lab.procs.filter(p => p.running)
    const relayNames = new Set(allRelays.map(r => r.name))
    const memory = {
      bootstrapMiB: running.filter(p => p.name === 'bootstrap').map(rssMiB)[0] ?? NaN,
      relaysMiB: summarize(running.filter(p => relayNames.has(p.name) || p.name === 'natrelay-host').map(rssMiB)),
      usersMiB: summarize(chat.users.map(u => rssMiB(u.proc))),
      processes: running.length,
      machineUsedGiB: (totalmem() - freemem()) / 2 ** 30
    }
    log(`memory (RSS) with ${chat.users.length} users online: relays p50 ${fmt(memory.relaysMiB.median)} MiB (max ${fmt(memory.relaysMiB.max)}), users p50 ${fmt(memory.usersMiB.median)} MiB, bootstrap ${fmt(memory.bootstrapMiB)} MiB; machine: ${memory.machineUsedGiB.toFixed(1)} GiB used of ${(totalmem() / 2 ** 30).toFixed(0)} (other work included)`)
    const results = [chat.result]
    if (cfg.only !== 'nat-chat') {
      // the cut: the bootstrap node, the first half of the relays, the first NAT LAN and the relay behind
      // NAT on one side; the other relays and LANs on the other (partners 0<->1 always sit across it)
      const half = Math.ceil(relaySites.length / 2)
      results.push(await splitHeal(lab, cfg, chat.users, allRelays.length, {
        a: [bsSite, ...relaySites.slice(0, half), lans[0].router, relayLan.router],
        b: [...relaySites.slice(half), ...lans.slice(1).map(l => l.router)]
      }))
      results.push(await bootstrapLost(bs, chat.users, allRelays.length, cfg))
      // the bootstrap node back (same data directory: same peer id and address), which users restarted
      // by the churn need; churn runs last, since what it breaks would show in the scenarios after it
      await ready(lab.spawn('bootstrap', bsSite.ns, bsArgs))
      log('bootstrap node started again')
      const restartFailures: Array<{ user: string, code: string }> = []
      results.push(await churn(lab, cfg, chat.users, labRelays, allRelays.length, userStarter(lab, bootstrapAddr, restartFailures, 'churn restart')))
      results[results.length - 1].startFailures.push(...restartFailures)
    }
    await lab.stopAll()
    const link = await net.stopDelay()
    const report = {
      lab: cfg.name,
      machine: machine(),
      loadAverage: { start: loadAtStart, end: loadavg()[0] },
      config: { ...cfg, timing: TIMING },
      processes: lab.procs.length,
      link: {
        configured: cfg.shape,
        forwarder: link,
        measuredLoss: Number(link.packets) > 0 ? Number(link.dropped) / Number(link.packets) : null,
        tcpRoundTripMs: { siteToSite: summarize(direct.connectMs), userBehindNatToRelay: summarize(natted.connectMs), failed: direct.failed + natted.failed }
      },
      scenarios: results,
      startStages: { starts: startStages, summary: stageSummary(startStages) },
      memory,
      relayBehindNat: natRelay,
      reachability
    }
    const table = tableOf(results, cfg.privacy)
    process.stdout.write(`\np2pchat lab (${cfg.name}): ${lab.procs.length} p2pchat processes in ${net.size} namespaces; load average ${loadAtStart.toFixed(1)} at the start, ${report.loadAverage.end.toFixed(1)} at the end (2 cores)\n` +
      `users at privacy level ${cfg.privacy}${cfg.privacy === DEFAULT_PRIVACY ? ', the product\'s default' : ''} (${PRIVACY_LEVELS[cfg.privacy as keyof typeof PRIVACY_LEVELS].summary}); relays apply whatever delay the sender chose\n` +
      `links: configured ${cfg.shape.delayMs} ± ${cfg.shape.jitterMs} ms one way, ${(cfg.shape.loss * 100).toFixed(1)} % loss; applied by the forwarder: p50 ${fmt(Number(link.delay_p50_ms))} ms (p5 ${fmt(Number(link.delay_p05_ms))}, p95 ${fmt(Number(link.delay_p95_ms))}), ` +
      `dropped ${String(link.dropped)} of ${String(link.packets)} packets (${((report.link.measuredLoss ?? 0) * 100).toFixed(2)} %); TCP handshake round trip p50 ${fmt(report.link.tcpRoundTripMs.siteToSite.median)} ms site to site, ${fmt(report.link.tcpRoundTripMs.userBehindNatToRelay.median)} ms from behind NAT\n\n${table}\n`)
    mkdirSync(RESULTS, { recursive: true })
    writeFileSync(join(RESULTS, `lab-${cfg.name}.json`), JSON.stringify(report, null, 2) + '\n')
    writeFileSync(join(RESULTS, `lab-${cfg.name}.svg`), drawing(report.link.tcpRoundTripMs.siteToSite, results, cfg))
    process.stdout.write(`(timers are the lab's, P2PCHAT_TIMING ${JSON.stringify(TIMING)}: users re-stock reply blocks every 2 s where the product does every 5 min, and send drop cover every 200 ms and loop cover every 2 s at a mixing level, so the idle bytes are far above a real user's)\n`)
    for (const r of results) if (r.notes != null) process.stdout.write(`${r.notes}\n`)
    for (const [phase, row] of Object.entries(stageSummary(startStages))) {
      process.stdout.write(`user start-up stages (${phase}, ${startStages.filter(s => s.phase === phase).length} starts), median s (max): ${Object.entries(row).map(([k, v]) => `${k} ${fmt(v.median / 1000)} (${fmt(v.max / 1000)})`).join(', ')}\n`)
    }
    process.stdout.write(`memory (RSS) after nat-chat, ${memory.processes} processes running: relays p50 ${fmt(memory.relaysMiB.median)} MiB (max ${fmt(memory.relaysMiB.max)}), users p50 ${fmt(memory.usersMiB.median)} MiB, bootstrap ${fmt(memory.bootstrapMiB)} MiB\n`)
    for (const r of results) {
      if (r.relayLoad.relays.length === 0) continue
      if (r.startFailures.length > 0) process.stdout.write(`${r.name}: ${r.startFailures.length} start${r.startFailures.length === 1 ? '' : 's'} failed and ran again: ${r.startFailures.map(f => `${f.user} ${f.code}`).join(', ')}\n`)
      const l = r.relayLoad
      if (r.userCpu != null) process.stdout.write(`\nuser processes over ${r.name}: ${(r.userCpu.idlePerUser * 100).toFixed(1)} % of a core each idle, ${(r.userCpu.messagingPerUser * 100).toFixed(1)} % while messaging\n`)
      process.stdout.write(`\nrelays over ${r.name} (${r.windowS.toFixed(0)} s): ${fmt(l.packetsPerMessage)} onion packets read by relays per chat message sent, beyond the idle rate of ${fmt(l.idlePacketsPerSecond)}/s; per relay ` +
        l.relays.map(x => `${x.name} ${x.packetsIn} packets, ${x.cpuSeconds.toFixed(2)} CPU s, ${x.rssMiB.toFixed(0)} MiB RSS`).join('; ') + '\n')
    }
    process.stdout.write(`\nrelay behind NAT (${relayHost.addr}, router ${relayLan.router.addr}): without a port forward it ${natRelay.withoutForward.outcome === 'refused' ? 'refused to announce itself (UNREACHABLE)' : natRelay.withoutForward.outcome}; ` +
      `with a port forward and --announce it ${natRelay.withForward.outcome === 'became a relay' ? `became a relay announcing ${natRelay.withForward.announced.map(a => a.replace(/\/p2p\/.*$/, '')).join(' ')}` : natRelay.withForward.outcome}\n`)
    process.stdout.write(`\n\`p2pchat relay status\` on ${relaySites[0].name} after nat-chat:\n${relayStatus}`)
    process.stdout.write(`wrote bench/results/lab-${cfg.name}.json and .svg\n`)
    const bad = results.filter(r => r.lost > 0 || r.duplicated > 0 || r.shown === 0 || (r.failures?.length ?? 0) > 0)
    for (const r of bad) process.stderr.write(`p2pchat lab: scenario ${r.name}: ${r.lost} lost, ${r.duplicated} duplicated of ${r.sent}${r.failures == null ? '' : `; ${r.failures.join('; ')}`}\n`)
    const natOk = natRelay.withoutForward.outcome === 'refused' && natRelay.withForward.outcome === 'became a relay' &&
      natRelay.withForward.announced.every(a => a.startsWith(`/ip4/${relayLan.router.addr}/`)) && natRelay.withForward.announced.length > 0
    if (!natOk) process.stderr.write(`p2pchat lab: scenario relay-behind-nat: ${JSON.stringify(natRelay)}\n`)
    // one closing line a CI reads: each scenario is a check (nothing lost or duplicated; the relay behind NAT refused, then accepted)
    // a scenario marked TODO (a known product fault, reported) is printed and counted apart: it does not
    // fail the run unless --strict; one that passes says its mark can go
    const checks = results.length + 1
    const todo = bad.filter(r => TODO[r.name] != null && !cfg.strict)
    const failed = bad.length - todo.length + (natOk ? 0 : 1)
    for (const r of todo) process.stdout.write(`TODO ${r.name}: ${r.lost} lost, ${r.duplicated} duplicated of ${r.sent}: ${TODO[r.name]}\n`)
    for (const r of results) if (TODO[r.name] != null && !bad.includes(r)) process.stdout.write(`${r.name} passed this time; it is marked TODO in lab/run.ts (${TODO[r.name]}): remove the mark once it passes every run\n`)
    process.stdout.write(`lab: ${checks - failed - todo.length} passed, ${failed} failed${todo.length > 0 ? `, ${todo.length} todo (${todo.map(r => r.name).join(', ')})` : ''}\n`)
    return failed === 0 ? 0 : 1
  } finally {
    await lab.stopAll().catch(() => {})
    lab.killAll()
    process.removeListener('SIGINT', onSignal)
    process.removeListener('SIGTERM', onSignal)
    process.removeListener('exit', onExit)
  }
}

function drawing (rtt: Summary, results: ScenarioResult[], cfg: Config): string {
  const panels: Panel[] = results.flatMap(r => [
    {
      type: 'bars' as const,
      title: `${r.name}: ${r.users} users behind NAT, ${r.relays} relays; ${r.sent} sent, ${r.shown} shown, ${r.lost} lost, ${r.duplicated} duplicated`,
      unit: 'ms',
      bars: [
        { label: 'send -> shown at the recipient', median: r.latencyMs.median, p95: r.latencyMs.p95, kind: 'figure' as const },
        { label: 'send -> receipt back (✓✓)', median: r.receiptMs.median, p95: r.receiptMs.p95, kind: 'figure' as const },
        { label: 'TCP round trip across the lab internet', median: rtt.median, p95: rtt.p95, kind: 'baseline' as const }
      ]
    },
    {
      type: 'bars' as const,
      title: 'users: process start -> ready; a newcomer: start -> its first message shown',
      unit: 'ms',
      bars: [
        { label: 'start -> ready', median: r.startToReadyMs.median, p95: r.startToReadyMs.p95, kind: 'figure' as const },
        { label: 'start -> first message shown', median: r.firstMessageMs.median, p95: r.firstMessageMs.p95, kind: 'figure' as const }
      ]
    }
  ].filter(p => p.bars.every(b => Number.isFinite(b.median))))
  return svg(panels, `p2pchat lab (${cfg.name}): ${cfg.shape.delayMs} ± ${cfg.shape.jitterMs} ms links, ${(cfg.shape.loss * 100).toFixed(1)} % loss, real processes in network namespaces`)
}

export async function main (argv: string[]): Promise<number> {
  let cfg: Config
  try {
    cfg = parseArgs(argv)
    preflight()
  } catch (err) {
    if (err instanceof LabUnavailableError || err instanceof LabUsageError) {
      process.stderr.write(`p2pchat lab: ${err.message}\n`)
      return 2
    }
    throw err
  }
  const gone = cleanupLeftovers()
  if (gone.length > 0) log(`removed ${gone.length} namespaces left by an earlier lab: ${gone.join(' ')}`)
  return await runLab(cfg)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    process.exitCode = await main(process.argv.slice(2))
  } catch (err) {
    process.stderr.write(`p2pchat lab failed: ${(err as Error).stack ?? String(err)}\n`)
    process.exitCode = 1
  }
  // every child was stopped and every namespace deleted; a stray handle must not keep the lab alive
  setTimeout(() => { process.exit() }, 2000).unref()
}

