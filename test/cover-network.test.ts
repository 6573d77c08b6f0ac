/**
 * Cover traffic switched on, in process (issue 11, "What it must show"): an idle client's packet
 * stream at its guard is its cover schedule, and stays it while the client chats.
 *
 * One network: a bootstrap node, 4 relays (each records the submissions of its clients, as an entry
 * relay sees them), alice and bob at the `standard` level with shortened timers (20 ms per hop, loop
 * cover every 450 ms, drop cover every 150 ms on average, receipts after 300 ms; steady mailboxes turned
 * on, mailbox v2: a push every 300 ms, a SYNC every 600 ms on average) and seeded generators.
 *
 * What it shows, exactly (no timing tolerance, so it cannot flake):
 * - after `ready`, every packet alice hands her entry link is a cover tick (loop, drop, or a real
 *   packet in a drop tick's place): her packet count grows by exactly her ticks, idle and chatting;
 * - her guard receives exactly the packets she counted (never one more; all of them in the end);
 * - the gaps her schedule drew fit the configured exponential of each stream (Kolmogorov-Smirnov
 *   with the DKW-Massart bound, false alarm 1e-6 per test), idle and chatting alike;
 * - while chatting, real packets went in drop ticks' places, and every message arrived exactly once
 *   (with its receipt).
 * The wall-clock rate at the guard is printed, not asserted (timers fire late on a loaded machine).
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { privacyJson } from '../cli/json-session.ts'
import { privacyLevel, withOverrides } from '../node/privacy.ts'
import { seededUniform } from '../protocols/onion/delays.ts'
import { ChatNetwork, eventsOf } from './helpers/chat-network.ts'
import type { TestUser } from './helpers/chat-network.ts'
import { FALSE_ALARM, ksDistanceContinuous, ksThreshold } from './helpers/distribution.ts'
import { waitFor } from './helpers/wait.ts'

const LOOP_GAP_MS = 450
const DROP_GAP_MS = 150
const LEVEL = withOverrides(privacyLevel('standard'), { meanDelayMs: 20, loopGapMs: LOOP_GAP_MS, dropGapMs: DROP_GAP_MS, receiptDelayMs: 300, steadyMailbox: true, mailboxPushPeriodMs: 300, mailboxSyncGapMs: 600 })
/** Drop ticks per phase: enough gaps for the KS check to mean something (threshold ~0.24 at 120). */
const TICKS_PER_PHASE = 120
const MESSAGES = 12

const seed = (label: string): Uint8Array => new Uint8Array(createHash('sha256').update(`p2pchat cover-network ${label}`).digest())
type Tick = { stream: 'loop' | 'drop', sent: 'loop' | 'drop' | 'real', gapMs: number, ok: boolean, phase: string }

describe('cover traffic on: the stream at the guard is the client\'s Poisson schedule, idle and chatting', { timeout: 600_000 }, () => {
  const net = new ChatNetwork()
  const atGuard = new Map<string, number>()
  const ticks: Tick[] = []
  let phase = 'start'
  let alice: TestUser
  let bob: TestUser
  const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
  const aliceKey = (): string => hex((alice.chat.node.peerId.publicKey as { raw: Uint8Array }).raw)
  const guardCount = (): number => atGuard.get(aliceKey()) ?? 0
  const okTicks = (): number => ticks.filter(t => t.ok).length

  before(async () => {
    await net.bootstrap()
    await net.startRelays(4, { onClientEvent: (e) => { if (e.type === 'submit') atGuard.set(hex(e.client), (atGuard.get(hex(e.client)) ?? 0) + 1) } })
    // a loaded machine answers slowly: 20 s per request (as the hardening load test), not the tests' 5
    const timing = { requestTimeoutMs: 20_000 }
    alice = await net.user('alice', { privacy: LEVEL, uniform: seededUniform(seed('alice')), onCoverTick: (t) => ticks.push({ ...t, phase }), timing })
    bob = await net.user('bob', { privacy: LEVEL, uniform: seededUniform(seed('bob')), timing })
  })

  after(async () => { await net.teardown() })

  /** Checks, at one synchronous moment, that alice's packets since `base` are exactly her ticks since then. */
  function exact (base: { packets: number, ticks: number }, what: string): void {
    const packets = alice.chat.packetsSubmitted - base.packets
    const ticked = okTicks() - base.ticks
    assert.equal(packets, ticked, `${what}: ${packets} packets handed to the entry link, ${ticked} cover ticks`)
    assert.ok(guardCount() <= alice.chat.packetsSubmitted, `${what}: the guard saw ${guardCount()} packets, alice sent ${alice.chat.packetsSubmitted}`)
  }

  function gapsFit (which: string): void {
    for (const [stream, mean] of [['drop', DROP_GAP_MS], ['loop', LOOP_GAP_MS]] as const) {
      const gaps = ticks.filter(t => t.phase === which && t.stream === stream).map(t => t.gapMs)
      const d = ksDistanceContinuous(gaps, x => x <= 0 ? 0 : 1 - Math.exp(-x / mean))
      const threshold = ksThreshold(gaps.length, FALSE_ALARM)
      assert.ok(d <= threshold, `${which} ${stream}: KS ${d.toFixed(3)} > ${threshold.toFixed(3)} over ${gaps.length} gaps`)
      process.stdout.write(`# ${which} ${stream}: ${gaps.length} gaps, mean ${(gaps.reduce((a, b) => a + b, 0) / gaps.length).toFixed(0)} ms (configured ${mean}), KS ${d.toFixed(3)} <= ${threshold.toFixed(3)}\n`)
    }
  }

  it('idle: every packet after ready is a cover tick, the guard sees exactly those, the schedule fits the rates', async () => {
    // start at a tick boundary: both counters read in one synchronous moment
    phase = 'idle'
    const base = { packets: alice.chat.packetsSubmitted, ticks: okTicks() }
    const startedAt = performance.now()
    await waitFor(() => {
      exact(base, 'idle')
      return ticks.filter(t => t.phase === 'idle' && t.stream === 'drop').length >= TICKS_PER_PHASE
    }, 'alice\'s idle drop ticks', 300_000, 20)
    const seconds = (performance.now() - startedAt) / 1000
    const idle = ticks.filter(t => t.phase === 'idle')
    gapsFit('idle')
    process.stdout.write(`# idle: ${idle.length} ticks in ${seconds.toFixed(1)} s (${(idle.length / seconds).toFixed(2)}/s; configured ${(1000 / LOOP_GAP_MS + 1000 / DROP_GAP_MS).toFixed(2)}/s); ${idle.filter(t => t.sent === 'real').length} real (mailbox upkeep)\n`)
    const snapshot = alice.chat.packetsSubmitted
    await waitFor(() => guardCount() >= snapshot, () => `the guard to receive alice's ${snapshot} packets (has ${guardCount()})`, 60_000)
  })

  it('chatting: real packets take drop ticks\' places, the stream stays the schedule, every message arrives once', async () => {
    phase = 'chat'
    const base = { packets: alice.chat.packetsSubmitted, ticks: okTicks() }
    const ids: string[] = []
    const u = seededUniform(seed('workload'))
    for (let i = 0; i < MESSAGES; i++) {
      ids.push(alice.chat.send('bob', `cover ${i}`).id)
      // the next send after a few drop gaps (a workload, checked at every poll)
      const until = okTicks() + 1 + Math.floor(u() * 6)
      await waitFor(() => { exact(base, 'chat'); return okTicks() >= until }, 'alice\'s next ticks', 60_000, 20)
    }
    await waitFor(() => {
      exact(base, 'chat')
      return ids.every(id => eventsOf(alice, 'delivered').some(e => e.id === id)) && ticks.filter(t => t.phase === 'chat' && t.stream === 'drop').length >= TICKS_PER_PHASE
    }, () => `${ids.filter(id => !eventsOf(alice, 'delivered').some(e => e.id === id)).length} of ${MESSAGES} receipts, and the chat phase's drop ticks`, 300_000, 20)
    exact(base, 'chat')
    const chat = ticks.filter(t => t.phase === 'chat')
    const real = chat.filter(t => t.sent === 'real').length
    assert.ok(real >= MESSAGES, `${real} real packets went in drop ticks' places (at least one per message)`)
    gapsFit('chat')
    const got = eventsOf(bob, 'message').filter(e => e.text.startsWith('cover '))
    assert.equal(got.length, MESSAGES, 'each message arrived once')
    assert.equal(new Set(got.map(e => e.id)).size, MESSAGES)
    const snapshot = alice.chat.packetsSubmitted
    await waitFor(() => guardCount() >= snapshot, () => `the guard to receive alice's ${snapshot} packets (has ${guardCount()})`, 60_000)
    const status = alice.chat.privacyStatus()
    assert.ok(status.cover != null && status.cover.loopsReturned > 0, 'loop cover came back')
    // answer cover (node/answer-cover.ts): each message's first deposit expected its STORED and its
    // receipt when it left, and loops were waived for them (a drop in their ticks: the counts above held);
    // bob's receipts expected their STOREDs
    const answers = status.cover.answers
    assert.ok(answers != null)
    assert.equal(answers.expected.receipt, MESSAGES)
    assert.ok(answers.expected.stored >= MESSAGES, `${answers.expected.stored} STOREDs expected`)
    assert.ok(answers.waived > 0 && status.cover.loopsWaived === answers.waived, `${answers.waived} loops waived`)
    assert.ok((bob.chat.privacyStatus().cover?.answers?.expected.stored ?? 0) >= 1, 'bob\'s receipts expected their STOREDs')
    // what --json status shows (and /status prints): the level's figures and the cover counts
    const json = privacyJson(alice.chat)
    assert.deepEqual([json.level, json.meanDelayMsPerHop, json.loopPerMinute, json.dropPerMinute, json.receiptDelayMs], ['standard', 20, 60_000 / LOOP_GAP_MS, 60_000 / DROP_GAP_MS, 300])
    assert.ok((json.cover as { real: number }).real >= real)
    process.stdout.write(`# chat: ${chat.length} ticks, ${real} real; loops sent ${status.cover?.loops}, back ${status.cover?.loopsReturned}, waived ${answers.waived} for ${answers.expected.stored} STOREDs and ${answers.expected.receipt} receipts expected\n`)
  })
})
