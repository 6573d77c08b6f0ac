/**
 * Time to first message for a new user, with every node its own `p2pchat` process, as people run it
 * (test/helpers/cli-network.ts spawns them): a bootstrap node, relays as `p2pchat start --relay --json`
 * (no nick), users as `p2pchat start --json --nick <nick>` (no listening address: protocol v2 users only
 * dial out), then one newcomer at a time as the last node of the network. For each newcomer, from
 * the parent's clock (each JSON line is stamped when it arrives):
 * - boot: spawning `p2pchat start` until its first status line (Node, modules, identity, database; it
 *   is about to ask the bootstrap node for relays);
 * - start: that line until 'ready' (relay list, entry relay, two mailboxes, the name published through
 *   an exit);
 * - lookup: {"cmd":"whois","nick":"bob"} until its answer;
 * - send -> shown: {"cmd":"send"} until bob's process prints the message;
 * - shown -> receipt: until the newcomer prints 'delivered' (bob's signed receipt came back).
 * The in-process network of bench/chat.ts shares one event loop among all its nodes, so the DHT
 * work of a newcomer waits behind everyone else's; here each node has its own.
 *
 * Every process runs from the sources (`node cli/bin.ts`: Node strips the types of ~80 files and loads
 * ~760 modules one by one). With `installed`, each round also starts a newcomer as an installed user
 * runs it: the package built as `npm pack` builds it (bench/lib/package.ts), through its launcher
 * bin/p2pchat.cjs (a user's V8 flags, the bundled dist/cli/): same network, same steps, the two kinds
 * taking turns to go first.
 */
import { CliNetwork, LOOPBACK_LISTEN } from '../test/helpers/cli-network.ts'
import { waitFor } from '../test/helpers/wait.ts'
import { CliProcess } from '../test/helpers/cli.ts'
import { rmSync } from 'node:fs'
import { buildPackage, launcherIn } from './lib/package.ts'
import { summarize } from './lib/stats.ts'
import type { Summary } from './lib/stats.ts'

export interface FirstMessageOptions {
  newcomers: number
  relays: number
  /** users besides the newcomer (bob among them) */
  users: number
  /** also one newcomer a round from a built package through its launcher, as installed (module comment) */
  installed?: boolean
  log: (line: string) => void
}

export interface NewcomerTimes {
  bootMs: number
  startMs: number
  lookupMs: number
  sendToShownMs: number
  shownToReceiptMs: number
  /** first status line -> 'delivered': the protocol's part */
  fromListeningMs: number
  /** spawn -> 'delivered': what the user waits for */
  totalMs: number
  relaysKnown: number
  /** ms from the first status line to each status line of start() (connecting, entry, mailboxes, publishing, ready) */
  startStages: Record<string, number>
  /**
   * Sphinx packets the relays received (the sum of their `status` counters) between the send and bob
   * showing the message: the relay hops of the message, plus those of any other packet in that
   * interval (the deposit's 'stored' answer, other users' traffic: the network is otherwise idle)
   */
  relayHopsToShown: number
  /** the same, from the send to the newcomer's 'delivered' (the receipt's packets too) */
  relayHopsToReceipt: number
}

/** The newcomers of one kind (from the sources, or installed) and their summaries. */
export interface NewcomerRuns {
  newcomers: NewcomerTimes[]
  total: Summary
  fromListening: Summary
  stages: Record<'boot' | 'start' | 'lookup' | 'sendToShown' | 'shownToReceipt', Summary>
  relayHopsToShown: Summary
  relayHopsToReceipt: Summary
}

export interface FirstMessageResult extends NewcomerRuns {
  nodes: number
  processes: number
  buildSeconds: number
  /** newcomers run as installed (options.installed), beside the sources' in the same network */
  installed?: NewcomerRuns
}

function runsOf (newcomers: NewcomerTimes[]): NewcomerRuns {
  const of = (f: (n: NewcomerTimes) => number): Summary => summarize(newcomers.map(f))
  return {
    newcomers,
    total: of(n => n.totalMs),
    fromListening: of(n => n.fromListeningMs),
    stages: {
      boot: of(n => n.bootMs),
      start: of(n => n.startMs),
      lookup: of(n => n.lookupMs),
      sendToShown: of(n => n.sendToShownMs),
      shownToReceipt: of(n => n.shownToReceiptMs)
    },
    relayHopsToShown: of(n => n.relayHopsToShown),
    relayHopsToReceipt: of(n => n.relayHopsToReceipt)
  }
}

/** ms after `from` at which each status line arrived, keyed by stage and the first words of its detail */
function statusTimes (proc: CliProcess, from: number): Record<string, number> {
  const out: Record<string, number> = {}
  proc.lines.forEach((line, i) => {
    try {
      const o = JSON.parse(line)
      if (o.event === 'status' || o.event === 'ready') out[o.event === 'ready' ? 'ready' : `${o.stage}: ${String(o.detail).split(' ').slice(0, 3).join(' ')}`] = Math.round(proc.lineTimes[i] - from)
    } catch {}
  })
  return out
}

/** Timers for a loopback network of processes (P2PCHAT_TIMING): seconds instead of minutes. */
const TIMING = { announceIntervalMs: 5_000, retryIntervalMs: 2_000, requestTimeoutMs: 10_000, stockIntervalMs: 5_000 }

/** A relay process: no nick (PROTOCOL-V2.md: a relay's public peer id is never a chat identity). */
function spawnRelay (net: CliNetwork, name: string): CliProcess {
  return net.spawn(['start', '--relay', '--json', ...LOOPBACK_LISTEN, '--bootstrap', net.bootstrapAddr, '--data-dir', net.dataDir(name)])
}

/** A user process: a nick, no listening address; `program` another command than the sources' (a launcher). */
function spawnUser (net: CliNetwork, nick: string, program?: string): CliProcess {
  const args = ['start', '--json', '--nick', nick, '--bootstrap', net.bootstrapAddr, '--data-dir', net.dataDir(nick), '--accept-anyone']
  if (program == null) return net.spawn(args)
  const p = new CliProcess(args, net.env, program)
  net.procs.push(p) // stopped by teardown if the bench fails half-way
  return p
}

async function ready (proc: CliProcess, what: string): Promise<void> {
  const line = await proc.waitForJson(o => o.event === 'ready' || o.event === 'error', 90_000)
  if (line.event !== 'ready') throw new Error(`${what} did not start: ${JSON.stringify(line)}; stderr: ${proc.stderr}`)
}

export async function firstMessageBench (opts: FirstMessageOptions): Promise<FirstMessageResult> {
  const net = new CliNetwork()
  net.env.P2PCHAT_TIMING = JSON.stringify(TIMING)
  let pkg: string | undefined
  try {
    if (opts.installed === true) pkg = await buildPackage('p2pchat-first-pkg-')
    const t0 = performance.now()
    await net.bootstrap()
    await Promise.all(Array.from({ length: opts.relays }, async (_, i) => { await ready(spawnRelay(net, `relay${i}`), `relay${i}`) }))
    // users need every relay in the bootstrap node's list: a relay list of one relay cannot give mixes
    await waitFor(async () => {
      const probe = await Promise.all(net.procs.slice(1, 1 + opts.relays).map(async p => Number((await p.ask({ cmd: 'relays' })).count)))
      return probe.every(n => n >= opts.relays)
    }, `every relay to know ${opts.relays} relays`, 60_000, 250)
    const users: CliProcess[] = []
    for (let i = 0; i < opts.users; i += 4) { // in batches: a dozen processes booting at once on two cores time out
      const batch = Array.from({ length: Math.min(4, opts.users - i) }, (_, j) => i + j === 0 ? 'bob' : `user${i + j}`)
      users.push(...await Promise.all(batch.map(async nick => { const p = spawnUser(net, nick); await ready(p, nick); return p })))
    }
    const bob = users[0]
    await net.waitForRelays(bob, opts.relays)
    const relayProcs = net.procs.slice(1, 1 + opts.relays)
    const relayReceived = async (): Promise<number> => {
      const all = await Promise.all(relayProcs.map(async p => await p.ask({ cmd: 'status' })))
      return all.reduce((n, st) => n + Number((st.onion as { received?: unknown } | undefined)?.received ?? NaN), 0)
    }
    const buildSeconds = (performance.now() - t0) / 1000
    opts.log(`  ${1 + opts.relays + opts.users} processes up in ${buildSeconds.toFixed(1)} s; ${opts.newcomers} newcomers, one at a time`)

    const newcomer = async (nick: string, program?: string): Promise<NewcomerTimes> => {
      const text = `hello from ${nick}`
      const spawned = performance.now()
      const proc = spawnUser(net, nick, program)
      const listening = await proc.waitForLine(o => o.event === 'status', 30_000)
      const ready = await proc.waitForLine(o => o.event === 'ready' || o.event === 'error', 60_000)
      if (ready.obj.event !== 'ready') throw new Error(`${nick} did not start: ${JSON.stringify(ready.obj)}`)
      const whois = await proc.ask({ cmd: 'whois', nick: 'bob' })
      if (whois.found !== true) throw new Error(`${nick} could not find bob: ${JSON.stringify(whois)}`)
      const r0 = await relayReceived()
      const looked = performance.now()
      proc.send({ cmd: 'send', to: 'bob', text })
      const shown = await bob.waitForLine(o => o.event === 'message' && o.text === text, 30_000)
      const r1 = await relayReceived()
      const delivered = await proc.waitForLine(o => o.event === 'delivered', 30_000)
      const r2 = await relayReceived()
      const times: NewcomerTimes = {
        bootMs: listening.at - spawned,
        startMs: ready.at - listening.at,
        lookupMs: looked - ready.at,
        sendToShownMs: shown.at - looked,
        shownToReceiptMs: delivered.at - shown.at,
        fromListeningMs: delivered.at - listening.at,
        totalMs: delivered.at - spawned,
        relaysKnown: Number(ready.obj.relays),
        startStages: statusTimes(proc, listening.at),
        relayHopsToShown: r1 - r0,
        relayHopsToReceipt: r2 - r0
      }
      await proc.stop()
      return times
    }
    const newcomers: NewcomerTimes[] = []
    const installed: NewcomerTimes[] = []
    for (let k = 0; k < opts.newcomers; k++) {
      // the two kinds take turns to go first: a network warmed by the one before favours the second
      const fromSources = async (): Promise<void> => { newcomers.push(await newcomer(`newcomer${k}`)) }
      const asInstalled = async (): Promise<void> => { if (pkg != null) installed.push(await newcomer(`installed${k}`, launcherIn(pkg))) }
      for (const run of k % 2 === 0 ? [fromSources, asInstalled] : [asInstalled, fromSources]) await run()
    }
    return {
      nodes: 1 + opts.relays + opts.users + 1,
      processes: net.procs.length,
      buildSeconds,
      ...runsOf(newcomers),
      ...(pkg != null ? { installed: runsOf(installed) } : {})
    }
  } finally {
    await net.teardown()
    if (pkg != null) rmSync(pkg, { recursive: true, force: true })
  }
}

if (import.meta.main) {
  const r = await firstMessageBench({ newcomers: 3, relays: 5, users: 13, installed: process.argv.includes('--installed'), log: console.log })
  console.log(JSON.stringify(r, null, 1))
  process.exit(0)
}
