/**
 * `p2pchat demo`: a whole network on loopback in this one process, with no setup: a bootstrap node,
 * four relays, alice and bob, each with a temporary data directory (removed at the end). They
 * exchange a few messages through 3-hop onion paths, and the demo prints what each relay saw of each
 * packet (the previous and the next hop, the size: never the text), the messages as received, and
 * the delivery receipts. Every wait is bounded; a missing message or receipt is exit 1.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startBootstrapNode } from '../../bootstrap/index.ts'
import type { BootstrapNode } from '../../bootstrap/index.ts'
import { ChatNode } from '../../node/chat-node.ts'
import type { ChatEvent, ChatTiming } from '../../node/chat-node.ts'
import { ephemeralIdentity } from '../../node/identity.ts'
import type { CliOptions } from '../args.ts'
import { clock, MARK_DELIVERED, safeText, shortId, verifiedMark } from '../format.ts'
import { emit } from '../output.ts'
import type { CliIO } from '../output.ts'
import { watchSignals } from '../signals.ts'

const LOOPBACK = ['/ip4/127.0.0.1/tcp/0']
const LOOPBACK_ALLOW = ['/ip4/127.0.0.1/ipcidr/8']
const RELAY_COUNT = 4
/** Quick timers: a loopback network answers in milliseconds. */
const DEMO_TIMING: Partial<ChatTiming> = { announceIntervalMs: 500, receiptTimeoutMs: 5_000, retryIntervalMs: 1_000 }
const STARTUP_TIMEOUT_MS = 30_000
const RELAYS_TIMEOUT_MS = 15_000
const MESSAGE_TIMEOUT_MS = 15_000
const STOP_TIMEOUT_MS = 10_000

export const DEMO_SCRIPT: ReadonlyArray<{ from: 'alice' | 'bob', to: 'alice' | 'bob', text: string }> = [
  { from: 'alice', to: 'bob', text: 'Hi bob, it is alice. Can you read me?' },
  { from: 'bob', to: 'alice', text: 'Loud and clear, alice. No server in between!' },
  { from: 'alice', to: 'bob', text: 'And no relay knows that we are talking.' }
]

class DemoFailure extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'DemoFailure'
  }
}

interface Member {
  name: string
  chat: ChatNode
  events: ChatEvent[]
  waiters: Set<() => void>
}

/** Resolves with the first event of `m` (past or future) matching `pred`, or fails after `ms`. */
async function waitForEvent<T extends ChatEvent['type']> (m: Member, type: T, pred: (e: Extract<ChatEvent, { type: T }>) => boolean, ms: number, what: string): Promise<Extract<ChatEvent, { type: T }>> {
  return await new Promise((resolve, reject) => {
    const check = (): void => {
      const found = m.events.find((e): e is Extract<ChatEvent, { type: T }> => e.type === type && pred(e as Extract<ChatEvent, { type: T }>))
      if (found == null) return
      done()
      resolve(found)
    }
    const timer = setTimeout(() => { done(); reject(new DemoFailure(`${what} did not happen within ${ms / 1000} s`)) }, ms)
    const done = (): void => { clearTimeout(timer); m.waiters.delete(check) }
    m.waiters.add(check)
    check()
  })
}

async function waitUntil (pred: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  while (!pred()) {
    if (Date.now() > deadline) throw new DemoFailure(`${what} did not happen within ${ms / 1000} s`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

async function within<T> (p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  try {
    return await Promise.race([p, new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new DemoFailure(`${what} did not finish within ${ms / 1000} s`)) }, ms) })])
  } finally {
    clearTimeout(timer)
  }
}

interface Hop { relay: string, from: string, to: string, size: number }

class Demo {
  private readonly io: CliIO
  private readonly json: boolean
  readonly root = mkdtempSync(join(tmpdir(), 'p2pchat-demo-'))
  private boot: BootstrapNode | undefined
  readonly members: Member[] = []
  /** peer id -> alice, bob, relay1..4, bootstrap */
  private readonly names = new Map<string, string>()
  readonly hops: Hop[] = []

  constructor (io: CliIO, json: boolean) {
    this.io = io
    this.json = json
  }

  /** One line for a person, or one JSON object for a script. */
  say (text: string, event?: Record<string, unknown>): void {
    if (this.json) { if (event != null) emit(this.io, event) } else this.io.stdout.write(text + '\n')
  }

  name (peerId: string): string { return this.names.get(peerId) ?? `unknown peer ${peerId.slice(-6)}` }
  member (name: string): Member {
    const m = this.members.find(x => x.name === name)
    if (m == null) throw new Error(`no member ${name}`)
    return m
  }

  private async join (name: string, relay: boolean): Promise<Member> {
    const dataDir = join(this.root, name)
    const chat = await ChatNode.create({
      dataDir, nick: name, relay, listen: LOOPBACK, bootstrap: this.boot?.addrs() ?? [], allow: LOOPBACK_ALLOW, timing: DEMO_TIMING
    })
    const m: Member = { name, chat, events: [], waiters: new Set() }
    this.names.set(chat.peerId, name)
    this.members.push(m)
    chat.on(e => {
      m.events.push(e)
      if (e.type === 'hop') this.onHop(name, e)
      for (const w of m.waiters) w()
    })
    return m
  }

  private onHop (relay: string, e: Extract<ChatEvent, { type: 'hop' }>): void {
    const hop = { relay, from: this.name(e.from), to: this.name(e.to), size: e.size }
    this.hops.push(hop)
    this.say(`    ${hop.relay} saw a packet of ${hop.size} bytes: from ${hop.from.padEnd(6)} → to ${hop.to}`,
      { event: 'hop', relay: hop.relay, from: hop.from, to: hop.to, size: hop.size })
  }

  async setUp (): Promise<void> {
    const started = Date.now()
    this.say('p2pchat demo: a bootstrap node, 4 relays, alice and bob, all on 127.0.0.1 in this process')
    const bootIdentity = await ephemeralIdentity()
    this.boot = await startBootstrapNode({ identity: bootIdentity, listen: LOOPBACK, allow: LOOPBACK_ALLOW })
    this.names.set(bootIdentity.peerId.toString(), 'bootstrap')
    const relays = await Promise.all(Array.from({ length: RELAY_COUNT }, async (_x, i) => await this.join(`relay${i + 1}`, true)))
    await within(Promise.all(relays.map(async r => { await r.chat.start() })), STARTUP_TIMEOUT_MS, 'starting the relays')
    const users = [await this.join('alice', false), await this.join('bob', false)]
    await within(Promise.all(users.map(async u => { await u.chat.start() })), STARTUP_TIMEOUT_MS, 'starting alice and bob')
    await waitUntil(() => users.every(u => u.chat.relays().length >= RELAY_COUNT), RELAYS_TIMEOUT_MS, `alice and bob hearing of all ${RELAY_COUNT} relays`)
    for (const m of this.members) {
      this.say(`  ${m.name.padEnd(7)} peer ${m.chat.peerId}  fingerprint ${m.chat.fingerprint}`,
        { event: 'node', name: m.name, peerId: m.chat.peerId, fingerprint: m.chat.fingerprint, relay: m.chat.isRelay })
    }
    this.say(`ready in ${((Date.now() - started) / 1000).toFixed(1)} s: alice and bob published their names and know ${RELAY_COUNT} relays`,
      { event: 'ready', ms: Date.now() - started, relays: RELAY_COUNT })
  }

  async exchange (n: number, from: string, to: string, text: string): Promise<void> {
    const sender = this.member(from)
    const recipient = this.member(to)
    const t0 = Date.now()
    const hopsBefore = this.hops.length
    const { id } = sender.chat.send(to, text)
    this.say(`\nmessage ${n}: ${from} → ${to} [${shortId(id)}] (${text.length} characters of text, sealed in a fixed-size onion)`,
      { event: 'send', n, id, from, to, text })
    const got = await waitForEvent(recipient, 'message', e => e.id === id, MESSAGE_TIMEOUT_MS, `${to} receiving message ${n}`)
    this.say(`  ${to} received: ${clock(got.ts)} ${got.from} ${verifiedMark(got.verified, got.reason)}: ${safeText(got.text)}`,
      { event: 'message', n, id, at: to, from: got.from, verified: got.verified, reason: got.reason, text: got.text, fingerprint: got.fingerprint })
    this.say(`  ${to} answers with a signed receipt through the reply block in the message (a path ${from} chose; ${to} never learns where ${from} is):`)
    await waitForEvent(sender, 'delivered', e => e.id === id, MESSAGE_TIMEOUT_MS, `${from} getting the receipt of message ${n}`)
    const mine = this.hops.slice(hopsBefore)
    this.say(`  ${from}: [${shortId(id)}] ${MARK_DELIVERED} delivered in ${Date.now() - t0} ms (${mine.length} relay hops in all)`,
      { event: 'delivered', n, id, at: from, ms: Date.now() - t0, hops: mine.length })
    if (!got.verified) throw new DemoFailure(`${to} could not verify ${from}: ${got.reason ?? '?'}`)
  }

  summary (): void {
    const users = new Set(['alice', 'bob'])
    const sizes = new Set(this.hops.map(h => h.size))
    const bothEnds = this.hops.filter(h => users.has(h.from) && users.has(h.to))
    this.say('\nwhat each relay saw, in all:')
    for (const m of this.members.filter(x => x.chat.isRelay)) {
      const seen = this.hops.filter(h => h.relay === m.name)
      const neighbours = [...new Set(seen.flatMap(h => [h.from, h.to]))].sort()
      this.say(`  ${m.name}  forwarded ${seen.length} packets; neighbours: ${neighbours.join(', ') || 'none'}`,
        { event: 'relay-summary', relay: m.name, packets: seen.length, neighbours })
    }
    this.say(`  every packet on the wire had the same size (${[...sizes].join(', ')} bytes); ` +
      `${bothEnds.length === 0 ? 'no relay saw both alice and bob on one packet' : `${bothEnds.length} hops linked alice and bob!`}; ` +
      'relays learn neighbours and sizes, never the text', { event: 'summary', sizes: [...sizes], hops: this.hops.length, bothEnds: bothEnds.length })
  }

  async tearDown (): Promise<void> {
    await Promise.all(this.members.map(async m => await within(m.chat.stop(), STOP_TIMEOUT_MS, `stopping ${m.name}`).catch(() => {})))
    if (this.boot != null) await within(this.boot.stop(), STOP_TIMEOUT_MS, 'stopping the bootstrap node').catch(() => {})
    rmSync(this.root, { recursive: true, force: true })
  }
}

export async function runDemo (opts: CliOptions, io: CliIO): Promise<number> {
  const signals = watchSignals()
  const demo = new Demo(io, opts.json)
  const script = async (): Promise<void> => {
    await demo.setUp()
    let n = 0
    for (const step of DEMO_SCRIPT) await demo.exchange(++n, step.from, step.to, step.text)
    demo.summary()
  }
  let code = 0
  try {
    const interrupted = await Promise.race([script().then(() => false), signals.received.then(() => true)])
    if (interrupted) {
      io.stderr.write('p2pchat demo: interrupted, stopping\n')
      code = 130
    } else {
      demo.say('\ndone: stopping every node and removing the temporary data directories', { event: 'done', ok: true })
    }
  } catch (err) {
    if (!(err instanceof DemoFailure)) throw err
    io.stderr.write(`p2pchat demo: FAILED: ${err.message}\n`)
    if (opts.json) emit(io, { event: 'error', code: 'DEMO_FAILED', message: err.message })
    code = 1
  } finally {
    await demo.tearDown()
  }
  return code
}
