/**
 * Steady mailbox traffic (issue 11 item 2, mailbox version 2, protocols/mailbox/SPEC.md section 11):
 * what a mailbox relay sees of its owner is the same whether mail arrives or not.
 *
 * The real owner side (node/mailboxes.ts MailboxClient) against the real relay side (protocols/mailbox
 * MailboxService on a SQLite store), with an in-memory stand-in for the onion (a request reaches the
 * service at once; a reply block hands the relay's answer or push back at once) and one fake clock for
 * both sides' timers, so six simulated hours run in seconds and every figure is exact.
 *
 * The relay's view, recorded at the service: every owner request (time, op byte, size with its reply
 * block) and every push it sends (time; on the wire every reply packet has one size, Sphinx pads its
 * payload). Deposits are the senders' traffic, which the relay sees anyway, and are left out.
 * Runs: an ACTIVE owner (a sender deposits at the times of a Poisson process, mean 2 min) and an IDLE
 * one (no mail), each for 6 simulated hours after its start.
 * - Version 2 (push every 30 s, SYNC every 60 s on average): under the same seed the two views are
 *   identical (times, ops, sizes, pushes); under different seeds they pass a two-sample
 *   Kolmogorov-Smirnov test on the gaps between requests, on the request ops and on the gaps between
 *   pushes, with the DKW-Massart bound: a false alarm (rejecting the same distribution) at most 1e-6
 *   in all, so it cannot flake. Every item is delivered exactly once; the extra wait is printed.
 * - Version 1 (the behaviour before: STOCK and ACK as needed, a push as mail arrives) FAILS the same
 *   test: the active owner's ACKs and refills show.
 * - A version 2 owner whose relay speaks version 1 only: the probe gets no answer, the fallback is
 *   counted and said, and the mail still arrives (through version 1 stocking).
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, it } from 'node:test'
import { MailboxKeys } from '../node/mailbox-keys.ts'
import { MailboxClient } from '../node/mailboxes.ts'
import type { MailboxTiming } from '../node/mailboxes.ts'
import { buildDeposit } from '../protocols/mailbox/client.ts'
import { OP_DEPOSIT, OP_REGISTER, OP_SYNC, SURB_SIZE, SYNC_BYTES } from '../protocols/mailbox/constants.ts'
import { MailboxService } from '../protocols/mailbox/service.ts'
import { MailboxStore } from '../protocols/mailbox/store.ts'
import type { OnionClient } from '../protocols/onion/client.ts'
import { seededUniform } from '../protocols/onion/delays.ts'
import type { PathRelay } from '../protocols/onion/paths.ts'
import { FakeClock } from './helpers/fake-clock.ts'
import { FALSE_ALARM, ksThreshold } from './helpers/distribution.ts'
import { mailboxKeysDb } from './helpers/mailbox-keys-db.ts'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const seed = (label: string): Uint8Array => new Uint8Array(createHash('sha256').update(`p2pchat mixing-mailbox ${label}`).digest())

const HOURS = 6
const WARM_UP_MS = 10 * 60_000
const MAIL_GAP_MS = 2 * 60_000
const STEADY = { pushPeriodMs: 30_000, syncGapMs: 60_000 }
/** The start of the simulated clock: a real epoch time, so signed timestamps are ordinary. */
const T0 = 1_800_000_000_000

interface View { requests: Array<{ at: number, op: number, size: number }>, pushes: number[] }
interface Run { view: View, deposited: Map<string, number>, received: Map<string, number[]>, client: MailboxClient, warnings: string[], service: MailboxService }

/** sup |F1 - F2| of two samples' empirical CDFs (taken at every sample value). */
function ks2 (a: number[], b: number[]): number {
  const x = [...a].sort((p, q) => p - q)
  const y = [...b].sort((p, q) => p - q)
  let i = 0
  let j = 0
  let d = 0
  while (i < x.length && j < y.length) {
    const v = Math.min(x[i], y[j])
    while (i < x.length && x[i] === v) i++
    while (j < y.length && y[j] === v) j++
    d = Math.max(d, Math.abs(i / x.length - j / y.length))
  }
  return d
}

/**
 * Two-sample check with a stated false-alarm rate: if both samples come from one distribution F,
 * D(a, b) <= D(a, F) + D(b, F), and each exceeds ksThreshold(n, alpha / 2) with probability at most
 * alpha / 2 (DKW-Massart): so D(a, b) exceeds the sum with probability at most alpha.
 */
function sameDistribution (a: number[], b: number[], alpha: number): { d: number, threshold: number, same: boolean } {
  const d = ks2(a, b)
  const threshold = ksThreshold(a.length, alpha / 2) + ksThreshold(b.length, alpha / 2)
  return { d, threshold, same: d <= threshold }
}

const gaps = (times: number[]): number[] => times.slice(1).map((t, i) => t - times[i])

/** The three statistics of a view after the warm-up: request gaps, request ops, push gaps. */
function statistics (v: View): { requestGaps: number[], ops: number[], pushGaps: number[] } {
  const requests = v.requests.filter(r => r.at >= T0 + WARM_UP_MS)
  return { requestGaps: gaps(requests.map(r => r.at)), ops: requests.map(r => r.op * 10_000 + r.size), pushGaps: gaps(v.pushes.filter(t => t >= T0 + WARM_UP_MS)) }
}

/** Each of the three statistics at a third of the false-alarm budget: 1e-6 in all. */
function compare (a: View, b: View): Array<{ name: string, d: number, threshold: number, same: boolean, n: [number, number] }> {
  const sa = statistics(a)
  const sb = statistics(b)
  return (['requestGaps', 'ops', 'pushGaps'] as const).map(name => ({ name, ...sameDistribution(sa[name], sb[name], FALSE_ALARM / 3), n: [sa[name].length, sb[name].length] as [number, number] }))
}

const cleanups: Array<() => void> = []
afterEach(() => { while (cleanups.length > 0) cleanups.pop()?.() })

/**
 * One owner with one mailbox on one relay, for HOURS simulated hours. `steady`: the owner's level has
 * steady mailboxes; `relayV1`: the relay drops SYNC as a version 1 relay does (unknown op).
 */
async function run (opts: { active: boolean, steady: boolean, ownerSeed: string, mailSeed?: string, relayV1?: boolean }): Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), 'p2pchat-mixing-mailbox-'))
  const store = MailboxStore.open(MailboxStore.pathIn(dir))
  const db = mailboxKeysDb()
  const clock = new FakeClock()
  clock.t = T0
  const timers = { set: clock.setTimer, clear: clock.clearTimer }
  const view: View = { requests: [], pushes: [] }
  const blocks = new Map<string, (payload: Uint8Array) => void>()
  const deposited = new Map<string, number>()
  const received = new Map<string, number[]>()
  const warnings: string[] = []
  const relaySeed = seededUniform(seed('relay phase'))
  const service = new MailboxService({
    store,
    now: clock.now,
    timers,
    uniform: relaySeed,
    // an item pushed and not acknowledged goes again after 10 min: SYNCs (mean 60 s) carry the ACKs long before
    limits: { repushIntervalMs: 10 * 60_000 },
    sendThroughReplyBlock: (block, payload) => {
      const to = blocks.get(hex(block))
      blocks.delete(hex(block))
      if (payload[1] !== 0x01 && payload[1] !== 0x02 && payload[1] !== 0x03 && payload[1] !== 0x04) view.pushes.push(clock.now())
      to?.(payload)
    }
  })
  const relay: PathRelay = { address: new Uint8Array(randomBytes(32)), onionKey: new Uint8Array(randomBytes(32)), peerId: 'mailbox-relay' }
  const atRelay = (request: Uint8Array, replyBlock: Uint8Array | undefined): void => {
    if (request[0] !== OP_DEPOSIT) view.requests.push({ at: clock.now(), op: request[0], size: request.length + (replyBlock == null ? 0 : SURB_SIZE) })
    // a version 1 relay's decoder refuses the unknown op: dropped, no answer
    if (opts.relayV1 === true && request[0] === OP_SYNC) return
    service.handle(request, replyBlock)
  }
  const replyBlock = (onReply: (payload: Uint8Array) => void): { surb: Uint8Array, id: Uint8Array, path: string[] } => {
    const surb = new Uint8Array(randomBytes(SURB_SIZE))
    blocks.set(hex(surb), onReply)
    return { surb, id: new Uint8Array(randomBytes(16)), path: ['mix'] }
  }
  const timing: Partial<MailboxTiming> = { stockIntervalMs: 5 * 60_000, requestTimeoutMs: 30_000, ...(opts.steady ? STEADY : {}) }
  const onion = {
    replyBlock,
    request: async (_final: PathRelay, _service: number, request: Uint8Array, o: { timeoutMs: number }): Promise<Uint8Array> => await new Promise<Uint8Array>((resolve, reject) => {
      const timer = clock.setTimer(() => { reject(Object.assign(new Error('no answer'), { name: 'AnswerTimeoutError' })) }, o.timeoutMs)
      atRelay(request, replyBlock((payload) => { clock.clearTimer(timer); resolve(payload) }).surb)
    }),
    send: (_final: PathRelay, _service: number, request: Uint8Array, o: { departed?: (ok: boolean) => void } = {}): void => {
      atRelay(request, undefined)
      o.departed?.(true)
    }
  }
  const client = new MailboxClient({
    now: clock.now,
    timers,
    uniform: seededUniform(seed(`owner ${opts.ownerSeed}`)),
    onion: onion as unknown as OnionClient,
    keys: new MailboxKeys(db),
    relays: () => [relay],
    entryPeerId: () => 'entry',
    record: () => new Uint8Array(100).fill(7),
    onItem: async (item) => { const k = hex(item); received.set(k, [...(received.get(k) ?? []), clock.now()]); return true },
    want: 1,
    timing,
    onWarning: (m) => warnings.push(m)
  })
  cleanups.push(() => { client.stop(); service.stop(); store.close(); db.close(); rmSync(dir, { recursive: true, force: true }) })

  /** Moves the clock by `ms` in 1 s steps, letting promises settle after each (bounded). */
  const advance = async (ms: number): Promise<void> => {
    for (let t = 0; t < ms; t += 1000) {
      clock.advance(Math.min(1000, ms - t))
      await new Promise<void>(resolve => setImmediate(resolve))
    }
  }
  const starting = client.start()
  await advance(60_000)
  assert.equal((await starting).length, 1)
  // the sender's deposits: a Poisson process of mean MAIL_GAP_MS (items of one size: the chat layer's job)
  const mail = seededUniform(seed(`mail ${opts.mailSeed ?? 'one'}`))
  let nextMail = clock.now() + (-Math.log(1 - mail()) * MAIL_GAP_MS)
  let lastSweep = clock.now()
  const end = T0 + HOURS * 3600_000
  for (let guard = 0; clock.now() < end && guard < HOURS * 3600; guard++) {
    await advance(1000)
    if (opts.active && clock.now() >= nextMail) {
      const item = new Uint8Array(createHash('sha256').update(`item ${deposited.size}`).digest())
      deposited.set(hex(item), clock.now())
      service.handle(buildDeposit(client.addresses()[0].mailboxId, item), undefined)
      nextMail += -Math.log(1 - mail()) * MAIL_GAP_MS
    }
    if (clock.now() - lastSweep >= 60_000) { service.sweep(); lastSweep = clock.now() }
  }
  // after the last deposit: long enough for every item to be pushed and acknowledged
  await advance(20 * 60_000)
  return { view, deposited, received, client, warnings, service }
}

function latency (r: Run): { mean: number, max: number } {
  const waits = [...r.deposited].map(([k, at]) => (r.received.get(k)?.[0] ?? Number.NaN) - at)
  return { mean: waits.reduce((a, b) => a + b, 0) / waits.length, max: Math.max(...waits) }
}

describe('steady mailbox traffic: the mailbox relay\'s view of an active and an idle owner', { timeout: 600_000 }, () => {
  it('version 2: the same seed gives the same view; other seeds pass the two-sample test (false alarm <= 1e-6); every item arrives once', async () => {
    const active = await run({ active: true, steady: true, ownerSeed: 'A' })
    const idle = await run({ active: false, steady: true, ownerSeed: 'A' })
    assert.ok(active.deposited.size >= 150, `mail arrived (${active.deposited.size} items)`)
    assert.ok(active.view.requests.length >= 300, `requests seen (${active.view.requests.length})`)
    // identical: when the owner asks, what it asks (op and size), and when the relay pushes
    assert.deepEqual(active.view.requests, idle.view.requests)
    assert.deepEqual(active.view.pushes, idle.view.pushes)
    // what the owner sends: REGISTERs (at start and every 6 h, active or not), each followed by its probe
    // (a SYNC with a reply block), and steady SYNCs, all of one size
    const registers = active.view.requests.filter(r => r.op === OP_REGISTER).length
    assert.ok(active.view.requests.every(r => r.op === OP_REGISTER || r.op === OP_SYNC))
    assert.equal(active.view.requests.filter(r => r.op === OP_SYNC && r.size === SYNC_BYTES + SURB_SIZE).length, registers, 'one probe per REGISTER')
    assert.ok(active.view.requests.every(r => r.op !== OP_SYNC || r.size === SYNC_BYTES || r.size === SYNC_BYTES + SURB_SIZE))
    // exactly once, all of it
    for (const [k] of active.deposited) assert.equal(active.received.get(k)?.length, 1, 'each item handed over exactly once')
    assert.equal(active.client.stats.fallbackV1, 0)
    assert.ok(idle.client.stats.padding > 0 && active.client.stats.padding > 0)
    const l = latency(active)
    const s = active.service.stats()
    console.log(`# v2: ${active.deposited.size} items, ${active.view.requests.length} SYNCs, ${active.view.pushes.length} pushes (${s.pushes} items, ${s.paddingPushes} padding, ${s.steadyIdle} ticks without a block); ` +
      `wait at the relay for a push: mean ${(l.mean / 1000).toFixed(1)} s, max ${(l.max / 1000).toFixed(1)} s (push period ${STEADY.pushPeriodMs / 1000} s)`)

    // other seeds: the owner's SYNC schedule and the mail differ, the distributions do not
    const idle2 = await run({ active: false, steady: true, ownerSeed: 'B' })
    const active2 = await run({ active: true, steady: true, ownerSeed: 'C', mailSeed: 'two' })
    for (const c of compare(active2.view, idle2.view)) {
      console.log(`# v2 ${c.name}: D = ${c.d.toFixed(3)} (threshold ${c.threshold.toFixed(3)}, n = ${c.n.join(' / ')})`)
      assert.ok(c.same, `${c.name}: D = ${c.d} above ${c.threshold}`)
    }
  })

  it('version 1 (the behaviour before) fails the same test: the active owner\'s ACKs and refills show', async () => {
    const active = await run({ active: true, steady: false, ownerSeed: 'C', mailSeed: 'two' })
    const idle = await run({ active: false, steady: false, ownerSeed: 'B' })
    for (const [k] of active.deposited) assert.ok((active.received.get(k)?.length ?? 0) >= 1, 'delivered')
    const results = compare(active.view, idle.view)
    for (const c of results) console.log(`# v1 ${c.name}: D = ${c.d.toFixed(3)} (threshold ${c.threshold.toFixed(3)}, n = ${c.n.join(' / ')})`)
    assert.ok(results.some(c => !c.same), 'version 1 is told apart')
    const l = latency(active)
    console.log(`# v1: wait at the relay for a push: mean ${(l.mean / 1000).toFixed(1)} s, max ${(l.max / 1000).toFixed(1)} s`)
  })

  it('a version 2 owner at a version 1 relay: the probe goes unanswered, the fallback is counted and said, mail still arrives', async () => {
    const r = await run({ active: true, steady: true, ownerSeed: 'D', relayV1: true })
    assert.ok(r.client.stats.fallbackV1 >= 1)
    assert.equal(r.warnings.filter(w => /version 2 SYNC/.test(w)).length, 1, 'said once for the relay')
    assert.equal(r.service.stats().steadyMailboxes, 0)
    assert.ok(r.deposited.size > 0)
    for (const [k] of r.deposited) assert.ok((r.received.get(k)?.length ?? 0) >= 1, 'delivered through version 1 stocking')
  })
})
