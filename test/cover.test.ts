/**
 * Client cover traffic (node/cover.ts), on a hand-driven clock and a seeded schedule: the packets a
 * client hands its entry relay form a Poisson stream of the configured total rate (gaps exponential,
 * Kolmogorov-Smirnov with the DKW-Massart bound at a false-alarm rate of 1e-6), idle and while it
 * chats, because a real packet takes the place of the next cover packet (loop or drop) instead of
 * adding one; a loop tick it takes leaves its loop owed, sent at the next drop tick no real packet
 * takes, so the loops sent are the loops drawn and a real packet waits 60/(loop + drop) s on average.
 * Also: the privacy levels' rates (every mixing level has cover, `fast` none), a real packet waiting
 * when cover stops is abandoned, and a request's timeout starts when its packet leaves (not while it
 * waits for its tick). test/cover-network.test.ts checks the same stream at a real client's guard.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, it } from 'node:test'
import { randomBytes } from 'node:crypto'
import { CoverTraffic, MAX_WAITING } from '../node/cover.ts'
import type { CoverInit } from '../node/cover.ts'
import { DEFAULT_PRIVACY, PRIVACY_LEVELS, privacyLevel, withOverrides } from '../node/privacy.ts'
import { Receiver } from '../node/receiving.ts'
import type { ReceiverInit } from '../node/receiving.ts'
import { OnionClient } from '../protocols/onion/client.ts'
import type { EntryLink } from '../protocols/onion/client.ts'
import { seededUniform } from '../protocols/onion/delays.ts'
import { generateOnionKey } from '../protocols/onion/sphinx.ts'
import { SERVICE_DROP } from '../protocols/onion/service-body.ts'
import { FALSE_ALARM, ksDistanceContinuous, ksThreshold } from './helpers/distribution.ts'
import { FakeClock } from './helpers/fake-clock.ts'

const seed = (label: string): Uint8Array => new Uint8Array(createHash('sha256').update(`p2pchat cover test ${label}`).digest())
const LOOP_PER_MINUTE = 30
const DROP_PER_MINUTE = 90
/** Mean gap of the merged stream: 60 s / (30 + 90). */
const MEAN_GAP_MS = 60_000 / (LOOP_PER_MINUTE + DROP_PER_MINUTE)

type Kind = 'loop' | 'drop' | 'real'

function rig (label: string, onTick?: CoverInit['onTick']): { clock: FakeClock, cover: CoverTraffic, link: Array<{ at: number, kind: Kind }> } {
  const clock = new FakeClock()
  const link: Array<{ at: number, kind: Kind }> = []
  const cover = new CoverTraffic({
    onTick,
    loopPerMinute: LOOP_PER_MINUTE,
    dropPerMinute: DROP_PER_MINUTE,
    sendLoop: () => link.push({ at: clock.now(), kind: 'loop' }),
    sendDrop: () => link.push({ at: clock.now(), kind: 'drop' }),
    clock,
    uniform: seededUniform(seed(label))
  })
  return { clock, cover, link }
}

function gapsFit (link: Array<{ at: number }>): { d: number, threshold: number, mean: number } {
  const gaps = link.slice(1).map((p, i) => p.at - link[i].at)
  const cdf = (x: number): number => x <= 0 ? 0 : 1 - Math.exp(-x / MEAN_GAP_MS)
  return { d: ksDistanceContinuous(gaps, cdf), threshold: ksThreshold(gaps.length, FALSE_ALARM), mean: gaps.reduce((a, b) => a + b, 0) / gaps.length }
}

describe('cover traffic: a Poisson stream at the entry relay, idle or chatting', () => {
  it('idle: loop + drop packets at the configured total rate with exponential gaps (KS, alpha 1e-6); the check rejects a 10 % wrong rate', () => {
    const { clock, cover, link } = rig('idle')
    cover.start()
    clock.advance(10_000 * MEAN_GAP_MS)
    cover.stop()
    const { d, threshold, mean } = gapsFit(link)
    assert.ok(link.length > 9_000 && link.length < 11_000, `${link.length} packets in 10,000 mean gaps`)
    assert.ok(d <= threshold, `KS ${d.toFixed(4)} > ${threshold.toFixed(4)}`)
    const loops = link.filter(p => p.kind === 'loop').length
    assert.ok(Math.abs(loops / link.length - 0.25) < 0.03, `loop share ${loops / link.length}`)
    const gaps = link.slice(1).map((p, i) => p.at - link[i].at)
    assert.ok(ksDistanceContinuous(gaps, x => 1 - Math.exp(-x / (MEAN_GAP_MS * 1.1))) > threshold, 'a 10 % slower rate is rejected')
    process.stdout.write(`# idle: ${link.length} packets, mean gap ${mean.toFixed(1)} ms (configured ${MEAN_GAP_MS}), KS ${d.toFixed(4)} <= ${threshold.toFixed(4)}\n`)
  })

  it('chatting: real packets go in place of cover, so the stream keeps its rate and gaps; every real packet is sent once', () => {
    const { clock, cover, link } = rig('chatting')
    const u = seededUniform(seed('real traffic'))
    cover.start()
    let made = 0
    // real packets arrive in bursts (a message: a lookup, a deposit, a receipt) at random times
    for (let burst = 0; burst < 1500; burst++) {
      clock.advance(-4 * MEAN_GAP_MS * Math.log1p(-u()))
      const n = 1 + Math.floor(u() * 3)
      for (let i = 0; i < n; i++) {
        const id = made++
        assert.ok(cover.send(() => link.push({ at: clock.now(), kind: 'real' })), `real ${id} taken`)
      }
    }
    // let the last real packets leave
    for (let i = 0; i < 10_000 && cover.queued > 0; i++) clock.advance(MEAN_GAP_MS)
    cover.stop()
    assert.equal(cover.queued, 0)
    assert.equal(link.filter(p => p.kind === 'real').length, made, 'every real packet sent once')
    assert.equal(cover.stats.real, made)
    const { d, threshold, mean } = gapsFit(link)
    assert.ok(d <= threshold, `KS ${d.toFixed(4)} > ${threshold.toFixed(4)}`)
    const reals = link.filter(p => p.kind === 'real').length
    assert.ok(reals > link.length / 3, 'a large share of the stream was real')
    process.stdout.write(`# chatting: ${link.length} packets (${reals} real), mean gap ${mean.toFixed(1)} ms, KS ${d.toFixed(4)} <= ${threshold.toFixed(4)}\n`)
  })

  it('a real packet takes the next tick of either stream (mean wait 60/(loop + drop) s); a loop tick it takes owes its loop, sent at the next free drop tick: loops sent = loop ticks drawn', () => {
    let loopTicks = 0
    const { clock, cover, link } = rig('either stream', t => { if (t.stream === 'loop') loopTicks++ })
    const u = seededUniform(seed('either stream traffic'))
    cover.start()
    const waits: number[] = []
    // one real packet at a time at random moments, each well after the last left (the wait of a packet
    // that finds the queue empty: memoryless, the gap of the merged stream)
    for (let i = 0; i < 4000; i++) {
      clock.advance(-3 * MEAN_GAP_MS * Math.log1p(-u()))
      const at = clock.now()
      let left = -1
      assert.ok(cover.send(() => { left = clock.now() - at; link.push({ at: clock.now(), kind: 'real' }) }))
      for (let j = 0; j < 10_000 && left < 0; j++) clock.advance(MEAN_GAP_MS / 10)
      assert.ok(left >= 0, 'it left')
      waits.push(left)
    }
    clock.advance(100 * MEAN_GAP_MS)
    cover.stop()
    const mean = waits.reduce((a, b) => a + b, 0) / waits.length
    const dropGap = 60_000 / DROP_PER_MINUTE
    // 4,000 exponential waits: the mean's standard error is 1.6 %; drop ticks alone would give +33 %
    assert.ok(Math.abs(mean / MEAN_GAP_MS - 1) < 0.08, `mean wait ${mean.toFixed(0)} ms, expected ${MEAN_GAP_MS} (drop ticks only: ${dropGap})`)
    const st = cover.stats
    assert.ok(st.realInLoopTicks > 0.2 * 4000 * 0.8 && st.realInLoopTicks < 0.3 * 4000 * 1.2, `${st.realInLoopTicks} of 4000 took a loop tick (a quarter expected)`)
    assert.equal(st.owedLoopsSent, st.realInLoopTicks, 'every owed loop was sent (the queue emptied after each)')
    assert.equal(st.loops + st.failed.loop, loopTicks, 'as many loops sent as the loop stream drew')
    assert.equal(link.filter(p => p.kind === 'loop').length, st.loops)
    assert.equal(cover.owed, 0)
    const { d, threshold } = gapsFit(link)
    assert.ok(d <= threshold, `the stream's gaps: KS ${d.toFixed(4)} > ${threshold.toFixed(4)}`)
    process.stdout.write(`# either stream: 4000 real packets waited ${mean.toFixed(0)} ms on average (merged gap ${MEAN_GAP_MS} ms, drop gap ${dropGap.toFixed(0)} ms); ${st.realInLoopTicks} took a loop tick, their loops sent later; ${st.loops} loops for ${loopTicks} loop ticks\n`)
  })

  it('bounds the real packets waiting (queue-full, counted); without drop cover a real packet goes at once; a failing send is counted', () => {
    const { cover } = rig('bound')
    cover.start()
    for (let i = 0; i < MAX_WAITING; i++) assert.ok(cover.send(() => {}))
    assert.equal(cover.send(() => {}), false)
    assert.equal(cover.stats.queueFull, 1)
    cover.stop()
    const clock = new FakeClock()
    const sent: number[] = []
    const none = new CoverTraffic({ loopPerMinute: 0, dropPerMinute: 0, sendLoop: () => { throw new Error('no loop') }, sendDrop: () => { throw new Error('no drop') }, clock })
    none.start()
    assert.ok(none.send(() => sent.push(clock.now())))
    assert.deepEqual(sent, [0], 'at once')
    assert.equal(clock.timers.size, 0, 'no timers at rate 0')
    const failing = new CoverTraffic({ loopPerMinute: 60, dropPerMinute: 60, sendLoop: () => { throw new Error('no entry relay') }, sendDrop: () => { throw new Error('no entry relay') }, clock, uniform: seededUniform(seed('fail')) })
    failing.start()
    clock.advance(60_000)
    failing.stop()
    assert.ok(failing.stats.failed.loop > 20 && failing.stats.failed.drop > 20)
    assert.equal(clock.timers.size, 0)
  })
})

describe('privacy levels: cover rates', () => {
  it('every mixing level sends loop and drop cover, the default within the bandwidth target by arithmetic; fast sends none and says so', () => {
    const fast = privacyLevel('fast')
    assert.equal(fast.loopPerMinute + fast.dropPerMinute + fast.receiptDelayMs, 0)
    assert.match(fast.summary, /no cover traffic/)
    for (const l of Object.values(PRIVACY_LEVELS).filter(l => l.name !== 'fast')) {
      assert.ok(l.loopPerMinute > 0 && l.dropPerMinute > 0 && l.receiptDelayMs > 0, l.name)
      assert.match(l.summary, new RegExp(`cover ${l.loopPerMinute} loop \\+ ${l.dropPerMinute} drop`))
    }
    // 3,105-byte frames plus framing: the cover alone (loops come back) stays well under 150 MB a day
    const std = privacyLevel(DEFAULT_PRIVACY)
    assert.ok((2 * std.loopPerMinute + std.dropPerMinute) * 3200 * 1440 < 130e6)
  })

  it('overrides (P2PCHAT_TIMING) change the rates and the summary says so; none leaves the level as it is', () => {
    const std = privacyLevel('standard')
    assert.equal(withOverrides(std, {}), std)
    const o = withOverrides(std, { meanDelayMs: 20, loopGapMs: 600, dropGapMs: 200, receiptDelayMs: 300 })
    assert.deepEqual([o.meanDelayMs, o.loopPerMinute, o.dropPerMinute, o.receiptDelayMs], [20, 100, 300, 300])
    assert.match(o.summary, /timers overridden/)
  })
})

describe('cover traffic: stopping, and timeouts that start when a packet leaves', () => {
  it('a real packet still waiting when cover stops is abandoned (counted), never sent later', () => {
    const { clock, cover, link } = rig('abandon')
    cover.start()
    const abandoned: number[] = []
    for (let i = 0; i < 5; i++) assert.ok(cover.send(() => link.push({ at: clock.now(), kind: 'real' }), () => abandoned.push(i)))
    cover.stop()
    assert.deepEqual(abandoned, [0, 1, 2, 3, 4])
    assert.equal(cover.stats.abandoned, 5)
    clock.advance(100 * MEAN_GAP_MS)
    assert.equal(link.filter(p => p.kind === 'real').length, 0)
  })

  it('a request through a deferring link times out `timeoutMs` after its packet left, not after it was queued; a packet given up rejects at once', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] })
    const relays = [0, 1, 2, 3, 4].map(i => ({ address: new Uint8Array(randomBytes(32)), onionKey: generateOnionKey().publicKey, peerId: `relay-${i}` }))
    const held: Array<{ departed?: (ok: boolean) => void }> = []
    const link: EntryLink = { relay: relays[0], defers: true, submit: (_to, _packet, departed) => { held.push({ departed }); return true } }
    const onion = new OnionClient({ self: new Uint8Array(randomBytes(32)), relays: () => relays, entry: () => link })
    let settled: string | undefined
    const outcome = onion.request(relays[1], SERVICE_DROP, new Uint8Array(1), { timeoutMs: 50 }).then(() => 'answered', (err: Error) => err.name)
    void outcome.then(r => { settled = r })
    // held back far longer than its timeout (mock time): no timeout, because it has not left
    t.mock.timers.tick(10_000)
    await Promise.resolve()
    assert.equal(settled, undefined, 'no timeout while the packet waits for its tick')
    held[0].departed?.(true)
    t.mock.timers.tick(49)
    await Promise.resolve()
    assert.equal(settled, undefined, 'not before timeoutMs after it left')
    t.mock.timers.tick(1)
    assert.equal(await outcome, 'AnswerTimeoutError')
    const given = onion.request(relays[1], SERVICE_DROP, new Uint8Array(1), { timeoutMs: 60_000 }).then(() => 'answered', (err: Error) => err.name)
    held[1].departed?.(false)
    assert.equal(await given, 'SubmitFailedError')
    assert.equal(onion.pendingBlocks, 0, 'both reply blocks forgotten')
  })
})

describe('receipts at a mixing level', () => {
  /** A Receiver whose sending is only recorded (the delay before it is what is tested). */
  class Recorder extends Receiver {
    readonly sentAt: number[] = []
    now = 0
    override async sendReceipts (): Promise<void> { this.sentAt.push(this.now) }
  }
  const init = (receiptDelayMs: number, uniform: () => number): ReceiverInit => ({ receiptDelayMs, uniform }) as unknown as ReceiverInit

  it('leave after an exponential delay of the level\'s mean (KS, false alarm 1e-6), one delay at a time; at fast at once', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] })
    const mean = privacyLevel('standard').receiptDelayMs
    const r = new Recorder(init(mean, seededUniform(seed('receipts'))))
    const delays: number[] = []
    for (let i = 0; i < 2000; i++) {
      const from = r.now
      r.receiptsLater()
      r.receiptsLater() // a second message meanwhile: no second timer, its receipt goes with the first
      const before = r.sentAt.length
      for (let step = 0; step < 100_000 && r.sentAt.length === before; step++) { r.now += 10; t.mock.timers.tick(10) }
      assert.equal(r.sentAt.length, before + 1, 'one send per delay')
      delays.push(r.now - from)
    }
    const d = ksDistanceContinuous(delays, x => x <= 0 ? 0 : 1 - Math.exp(-x / mean))
    // 10 ms steps: the observed delay is the draw rounded up to a step; compare with the CDF 10 ms on
    const dShift = ksDistanceContinuous(delays.map(x => x - 10), x => x <= 0 ? 0 : 1 - Math.exp(-x / mean))
    const threshold = ksThreshold(delays.length, FALSE_ALARM)
    assert.ok(Math.min(d, dShift) <= threshold, `KS ${Math.min(d, dShift).toFixed(4)} > ${threshold.toFixed(4)}`)
    process.stdout.write(`# receipts: ${delays.length} delays, mean ${(delays.reduce((a, b) => a + b, 0) / delays.length).toFixed(0)} ms (configured ${mean}), KS ${Math.min(d, dShift).toFixed(4)} <= ${threshold.toFixed(4)}\n`)
    const fast = new Recorder(init(0, seededUniform(seed('fast'))))
    fast.receiptsLater()
    assert.deepEqual(fast.sentAt, [0], 'at once at fast')
  })
})
