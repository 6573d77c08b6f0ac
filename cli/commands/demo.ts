/**
 * `p2pchat demo`: a whole protocol-v2 network on loopback in this one process, with no setup: a
 * bootstrap node, four relays, alice and bob (clients: they listen nowhere and keep one connection,
 * to their entry relay), each with a temporary data directory (removed at the end). They exchange a few
 * messages: each is sealed, sent through two mixes into a mailbox of the recipient (✓ stored), pushed
 * to the recipient through a reply block it stocked there, and receipted into a mailbox of the sender
 * (✓✓ delivered). The demo prints what each relay saw of each packet (the previous and the next hop,
 * the size; a user only as "client", to its own entry relay), which service each request reached, and
 * who sent the DHT requests (relays only). Every wait is bounded; a missing message or receipt is exit 1.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startBootstrapNode } from '../../bootstrap/index.ts'
import type { BootstrapNode } from '../../bootstrap/index.ts'
import { ChatNode } from '../../node/chat-node.ts'
import type { ChatEvent, ChatTiming } from '../../node/chat-node.ts'
import { observeDhtRequests } from '../../node/create.ts'
import type { DhtRequest } from '../../node/create.ts'
import { ephemeralIdentity } from '../../node/identity.ts'
import { RelayNode } from '../../node/relay-node.ts'
import type { RelayEvent } from '../../node/relay-node.ts'
import type { CliOptions } from '../args.ts'
import { clock, MARK_DELIVERED, MARK_STORED, safeText, shortId, trustMark } from '../format.ts'
import { emit } from '../output.ts'
import type { CliIO } from '../output.ts'
import { watchSignals } from '../signals.ts'
import { WebServer } from '../web-server.ts'

const LOOPBACK_ALLOW = ['/ip4/127.0.0.1/ipcidr/8']
const RELAY_COUNT = 4
/** Quick timers: a loopback network answers in milliseconds. */
const DEMO_TIMING: Partial<ChatTiming> = { announceIntervalMs: 500, requestTimeoutMs: 5_000, retryIntervalMs: 1_000, stockIntervalMs: 2_000 }
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

interface Relay { name: string, node: RelayNode }

/** What `m` last said of its sending and its relays (deposits sent, the last queued, failed or warning), for a failure's message. */
function lastWord (m: Member): string {
  const sent = m.events.filter(e => e.type === 'sent').length
  const last = m.events.findLast(e => e.type === 'queued' || e.type === 'failed' || e.type === 'warning')
  const said = last == null ? '' : `; its last ${last.type}: ${last.type === 'warning' ? last.message : last.reason}`
  return ` (${m.name}: ${sent} deposits sent${said})`
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
    const timer = setTimeout(() => { done(); reject(new DemoFailure(`${what} did not happen within ${ms / 1000} s${lastWord(m)}`)) }, ms)
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
  readonly relays: Relay[] = []
  /** peer id -> relay1..4, bootstrap (users are never named by a peer id: relays see them as "client") */
  private readonly names = new Map<string, string>()
  readonly hops: Hop[] = []
  readonly services: Array<{ relay: string, service: string, from: string }> = []
  readonly dht: DhtRequest[] = []
  /** --web: alice's and bob's web apps, after the script */
  readonly webs: WebServer[] = []

  constructor (io: CliIO, json: boolean) {
    this.io = io
    this.json = json
  }

  /** Set when the script is over: what the nodes still do (stocking mailboxes) is not printed. */
  quiet = false
  /** Set at the summary: hops after it are not the script's. */
  private over = false

  /** One line for a person, or one JSON object for a script. */
  say (text: string, event?: Record<string, unknown>): void {
    if (this.quiet) return
    if (this.json) { if (event != null) emit(this.io, event) } else this.io.stdout.write(text + '\n')
  }

  name (peerId: string): string { return peerId === 'client' ? 'a client' : this.names.get(peerId) ?? `unknown peer ${peerId.slice(-6)}` }
  member (name: string): Member {
    const m = this.members.find(x => x.name === name)
    if (m == null) throw new Error(`no member ${name}`)
    return m
  }

  private async relay (n: number): Promise<Relay> {
    const name = `relay${n}`
    const node = await RelayNode.create({
      dataDir: join(this.root, name),
      listen: [`/ip4/127.${n}.0.1/tcp/0`],
      bootstrap: this.boot?.addrs() ?? [],
      allow: LOOPBACK_ALLOW,
      announceIntervalMs: 500,
      logHops: true
    })
    this.names.set(node.peerId, name)
    node.on((e: RelayEvent) => {
      if (e.type === 'hop') this.onHop(name, e)
      if (e.type === 'service' && !this.over) {
        this.services.push({ relay: name, service: e.service, from: this.name(e.from) })
        this.say(`    ${name} got a ${e.service} request from ${this.name(e.from)} (it cannot tell who sent it)`,
          { event: 'service', relay: name, service: e.service, from: this.name(e.from) })
      }
    })
    observeDhtRequests(node.node, r => this.dht.push(r))
    const r = { name, node }
    this.relays.push(r)
    return r
  }

  private async user (name: string): Promise<Member> {
    const chat = await ChatNode.create({ dataDir: join(this.root, name), nick: name, bootstrap: this.boot?.addrs() ?? [], allow: LOOPBACK_ALLOW, timing: DEMO_TIMING, privacy: 'fast' })
    const m: Member = { name, chat, events: [], waiters: new Set() }
    this.members.push(m)
    chat.on(e => {
      m.events.push(e)
      for (const w of m.waiters) w()
    })
    return m
  }

  private onHop (relay: string, e: Extract<RelayEvent, { type: 'hop' }>): void {
    if (this.over) return
    const hop = { relay, from: this.name(e.from), to: e.to === 'client' ? 'its client' : this.name(e.to), size: e.size }
    this.hops.push(hop)
    this.say(`    ${hop.relay} passed a packet of ${hop.size} bytes: from ${hop.from.padEnd(9)} → to ${hop.to}`,
      { event: 'hop', relay: hop.relay, from: hop.from, to: hop.to, size: hop.size })
  }

  async setUp (): Promise<void> {
    const started = Date.now()
    this.say('p2pchat demo: a bootstrap node, 4 relays (127.1.0.1 .. 127.4.0.1), alice and bob (listening nowhere), in this process')
    const bootIdentity = await ephemeralIdentity()
    this.boot = await startBootstrapNode({ identity: bootIdentity, listen: ['/ip4/127.0.0.1/tcp/0'], allow: LOOPBACK_ALLOW })
    this.names.set(bootIdentity.peerId.toString(), 'bootstrap')
    observeDhtRequests(this.boot.node, r => this.dht.push(r))
    for (let i = 1; i <= RELAY_COUNT; i++) {
      const r = await this.relay(i)
      await within(r.node.start(), STARTUP_TIMEOUT_MS, `starting ${r.name}`)
    }
    await waitUntil(() => (this.boot?.relays.size ?? 0) >= RELAY_COUNT && this.relays.every(r => r.node.relays.size >= RELAY_COUNT), RELAYS_TIMEOUT_MS, 'the relays hearing of each other')
    const users = [await this.user('alice'), await this.user('bob')]
    await within(Promise.all(users.map(async u => { await u.chat.start() })), STARTUP_TIMEOUT_MS, 'starting alice and bob')
    for (const u of users) {
      const entry = this.name(u.chat.entry.relay?.peerId ?? '')
      const boxes = u.chat.mailboxes.addresses().map(a => this.name(this.relays.find(r => Buffer.compare(r.node.node.peerId.publicKey?.raw ?? new Uint8Array(), a.relay) === 0)?.node.peerId ?? '')).join(' and ')
      this.say(`  ${u.name.padEnd(5)} fingerprint ${u.chat.fingerprint}; entry relay ${entry} (its only connection); mailboxes at ${boxes}`,
        { event: 'node', name: u.name, fingerprint: u.chat.fingerprint, entry, mailboxes: boxes })
    }
    this.say(`ready in ${((Date.now() - started) / 1000).toFixed(1)} s: alice and bob registered their mailboxes and published their names, all through onions`,
      { event: 'ready', ms: Date.now() - started, relays: RELAY_COUNT })
  }

  async exchange (n: number, from: string, to: string, text: string): Promise<void> {
    const sender = this.member(from)
    const recipient = this.member(to)
    const t0 = Date.now()
    const hopsBefore = this.hops.length
    const { id } = sender.chat.send(to, text)
    this.say(`\nmessage ${n}: ${from} → ${to} [${shortId(id)}] (${text.length} characters, sealed to ${to} and wrapped in a 3,072-byte onion)`,
      { event: 'send', n, id, from, to, text })
    await waitForEvent(sender, 'stored', e => e.id === id, MESSAGE_TIMEOUT_MS, `a mailbox of ${to} storing message ${n}`)
    this.say(`  ${from}: [${shortId(id)}] ${MARK_STORED} stored in a mailbox of ${to}, whether or not ${to} is online`, { event: 'stored', n, id, at: from })
    const got = await waitForEvent(recipient, 'message', e => e.id === id, MESSAGE_TIMEOUT_MS, `${to} receiving message ${n}`)
    this.say(`  ${to} received: ${clock(got.ts)} ${got.from} ${trustMark(got.trust, got.verified, got.reason, got.request)}: ${safeText(got.text)}`,
      { event: 'message', n, id, at: to, from: got.from, verified: got.verified, trust: got.trust, request: got.request, reason: got.reason, text: got.text, fingerprint: got.fingerprint })
    if (got.request) {
      // a first message from someone not yet a contact gets no receipt until the recipient accepts it
      this.say(`  ${to}: ${from} is not a contact yet, so no receipt went back; ${to} accepts the request (/accept ${from})`, { event: 'accept', n, at: to, nick: from })
      recipient.chat.accept(from)
    }
    await waitForEvent(sender, 'delivered', e => e.id === id, MESSAGE_TIMEOUT_MS, `${from} getting the receipt of message ${n}`)
    const mine = this.hops.slice(hopsBefore)
    this.say(`  ${from}: [${shortId(id)}] ${MARK_DELIVERED} delivered in ${Date.now() - t0} ms: ${to}'s signed receipt came back through a mailbox of ${from} (${mine.length} relay hops in all)`,
      { event: 'delivered', n, id, at: from, ms: Date.now() - t0, hops: mine.length })
    if (!got.verified) throw new DemoFailure(`${to} could not verify ${from}: ${got.reason ?? '?'}`)
  }

  summary (): void {
    this.over = true
    const sizes = new Set(this.hops.map(h => h.size))
    this.say('\nwhat each relay saw, in all:')
    for (const r of this.relays) {
      const seen = this.hops.filter(h => h.relay === r.name)
      const neighbours = [...new Set(seen.flatMap(h => [h.from, h.to]))].sort()
      const services = this.services.filter(x => x.relay === r.name)
      this.say(`  ${r.name}  passed ${seen.length} packets, served ${services.filter(x => x.service === 'mailbox').length} mailbox and ${services.filter(x => x.service === 'directory').length} directory requests; neighbours: ${neighbours.join(', ') || 'none'}`,
        { event: 'relay-summary', relay: r.name, packets: seen.length, neighbours, services: services.length })
    }
    const userIds = new Set(this.members.map(m => m.chat.peerId))
    const fromUsers = this.dht.filter(d => userIds.has(d.from)).length
    const fromRelays = this.dht.filter(d => this.names.has(d.from)).length
    this.say(`  every packet had the same size (${[...sizes].join(', ')} bytes); relays saw users only as "client", and only their own`, { event: 'summary', sizes: [...sizes], hops: this.hops.length })
    this.say(`  DHT requests served: ${this.dht.length}, ${fromRelays} from relays and the bootstrap node, ${fromUsers} from alice or bob`,
      { event: 'dht-summary', requests: this.dht.length, fromRelays, fromUsers })
    if (fromUsers > 0) throw new DemoFailure('a user sent a DHT request')
  }

  /**
   * --web: serves alice's and bob's web apps on 127.0.0.1 and prints a login URL for each (each
   * works once; a new one is printed when it is used).
   */
  async serveWeb (): Promise<void> {
    for (const m of this.members) {
      const web = new WebServer({ chat: m.chat, onLoginUrl: url => { this.say(`  ${m.name}'s link was used; a new one: ${url}`, { event: 'web', name: m.name, url }) } })
      this.webs.push(web)
      await web.start()
    }
    this.say('\nthe web apps: open each link in a browser (each works once; keep them to yourself)')
    for (const [i, web] of this.webs.entries()) {
      const name = this.members[i].name
      this.say(`  ${name.padEnd(5)} ${web.loginUrl()}`, { event: 'web', name, url: web.loginUrl() })
    }
    this.say('Ctrl-C stops the demo.', { event: 'serving' })
  }

  async tearDown (): Promise<void> {
    this.quiet = true
    await Promise.all(this.webs.map(async w => { await w.stop() }))
    await Promise.all(this.members.map(async m => await within(m.chat.stop(), STOP_TIMEOUT_MS, `stopping ${m.name}`).catch(() => {})))
    await Promise.all(this.relays.map(async r => await within(r.node.stop(), STOP_TIMEOUT_MS, `stopping ${r.name}`).catch(() => {})))
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
    if (opts.web) {
      await demo.serveWeb()
      await signals.received
    }
  }
  let code = 0
  try {
    const interrupted = await Promise.race([script().then(() => false), signals.received.then(() => true)])
    if (interrupted && opts.web && demo.webs.length > 0) {
      demo.say('\ndone: stopping every node and removing the temporary data directories', { event: 'done', ok: true })
    } else if (interrupted) {
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
