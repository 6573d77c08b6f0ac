/**
 * The backlog behind cover ticks (node/cover.ts; SPEC.md section 15.4), measured on a hand-driven
 * clock and seeded schedules at `standard`'s rates (5 loop + 17 drop packets a minute; `low`'s, 1 + 20, for its raise), so every figure
 * is exact and the test cannot flake:
 *
 * - a burst of 20 real packets (a pasted 20-line message, a start's upkeep) drains one per tick of
 *   either stream: the k-th leaves at the k-th tick after the burst, and the ticks are exactly the ones
 *   an idle client draws (same seed): the rate a relay sees does not change with the backlog. Over 300
 *   bursts the mean wait is 60/22 s x (20 + 1) / 2 = 28.6 s and the last packet's ~55 s (printed;
 *   asserted within 10 %, far wider than the seeded sample's own spread, far narrower than a wrong rate);
 * - lanes: a message's packet sent behind a backlog of 20 upkeep packets leaves at the very next tick
 *   (lane `first`), where in one FIFO (the code before lanes, every packet `next`) it waits for
 *   the whole backlog; upkeep keeps its own order and the tick times stay the idle ones;
 * - `low`'s bounded raise (node/privacy.ts LOW_BACKLOG), the one level that trades a visible burst for
 *   a faster drain: a burst of 20 leaves far sooner than at one rate, every raised tick carries a real
 *   packet (no extra cover), a raise lasts at most 60 s and the next needs the queue empty first;
 *   `standard` and `high` have no raise.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, it } from 'node:test'
import { CoverTraffic } from '../node/cover.ts'
import type { Lane } from '../node/cover.ts'
import type { BacklogRate } from '../node/cover.ts'
import { LOW_BACKLOG, PRIVACY_LEVELS, privacyLevel } from '../node/privacy.ts'
import type { PrivacyLevel } from '../node/privacy.ts'
import { seededUniform } from '../protocols/onion/delays.ts'
import { FakeClock } from './helpers/fake-clock.ts'

const seed = (label: string): Uint8Array => new Uint8Array(createHash('sha256').update(`p2pchat cover backlog ${label}`).digest())
const STANDARD = privacyLevel('standard')
const DROP_GAP_MS = 60_000 / STANDARD.dropPerMinute
/** The mean gap of the merged stream a real packet takes a tick of (loop + drop). */
const TICK_GAP_MS = 60_000 / (STANDARD.loopPerMinute + STANDARD.dropPerMinute)
const BURST = 20

interface Sent { at: number, kind: 'loop' | 'drop' | string }

function rig (label: string, backlog?: BacklogRate, level: PrivacyLevel = STANDARD): { clock: FakeClock, cover: CoverTraffic, link: Sent[] } {
  const clock = new FakeClock()
  const link: Sent[] = []
  const cover = new CoverTraffic({
    loopPerMinute: level.loopPerMinute,
    dropPerMinute: level.dropPerMinute,
    sendLoop: () => link.push({ at: clock.now(), kind: 'loop' }),
    sendDrop: () => link.push({ at: clock.now(), kind: 'drop' }),
    backlog,
    clock,
    uniform: seededUniform(seed(label))
  })
  return { clock, cover, link }
}

/** Advances until nothing waits (bounded: 10,000 mean drop gaps). */
function drain (clock: FakeClock, cover: CoverTraffic): void {
  for (let i = 0; i < 10_000 && cover.queued > 0; i++) clock.advance(DROP_GAP_MS)
  assert.equal(cover.queued, 0, 'the backlog drained')
}

describe('cover backlog at standard: one real packet per tick, the schedule unchanged', () => {
  it('a burst of 20 drains one per tick, at exactly the idle schedule\'s ticks; 300 bursts: mean wait 28.6 s, the last ~55 s', () => {
    const idle = rig('burst')
    idle.cover.start()
    idle.clock.advance(30 * 60_000)
    idle.cover.stop()
    const busy = rig('burst')
    busy.cover.start()
    busy.clock.advance(60_000)
    const burstAt = busy.clock.now()
    for (let i = 0; i < BURST; i++) assert.ok(busy.cover.send(() => busy.link.push({ at: busy.clock.now(), kind: `real ${i}` })))
    assert.equal(busy.cover.queued, BURST)
    drain(busy.clock, busy.cover)
    busy.clock.advance(30 * 60_000 - busy.clock.now())
    busy.cover.stop()
    // the same seed draws the same ticks: what the entry relay sees does not depend on the backlog
    assert.deepEqual(busy.link.map(p => p.at), idle.link.map(p => p.at))
    const ticksAfter = idle.link.filter(p => p.at >= burstAt)
    const reals = busy.link.filter(p => p.kind.startsWith('real'))
    assert.deepEqual(reals.map(p => p.kind), Array.from({ length: BURST }, (_, i) => `real ${i}`), 'in order')
    assert.deepEqual(reals.map(p => p.at), ticksAfter.slice(0, BURST).map(p => p.at), 'the k-th at the k-th tick')
    // the loops the burst's packets displaced went later, in drop ticks' places: as many loops as idle
    assert.equal(busy.link.filter(p => p.kind === 'loop').length, idle.link.filter(p => p.kind === 'loop').length, 'no loop lost')
    assert.equal(busy.cover.stats.maxWaiting, BURST)
    assert.equal(busy.cover.stats.waited.next.count, BURST)

    // many bursts, far apart (each drains before the next): the wait of a burst's packets
    const many = rig('many bursts')
    many.cover.start()
    const waits: number[] = []
    const last: number[] = []
    for (let b = 0; b < 300; b++) {
      many.clock.advance(5 * 60_000)
      const at = many.clock.now()
      const left: number[] = []
      for (let i = 0; i < BURST; i++) many.cover.send(() => { left.push(many.clock.now() - at) })
      drain(many.clock, many.cover)
      waits.push(...left)
      last.push(left[BURST - 1])
    }
    many.cover.stop()
    const mean = waits.reduce((a, b) => a + b, 0) / waits.length
    const meanLast = last.reduce((a, b) => a + b, 0) / last.length
    const expected = TICK_GAP_MS * (BURST + 1) / 2
    assert.ok(Math.abs(mean / expected - 1) < 0.1, `mean wait ${mean.toFixed(0)} ms, expected ${expected.toFixed(0)} ms`)
    assert.ok(Math.abs(meanLast / (BURST * TICK_GAP_MS) - 1) < 0.1, `last packet ${meanLast.toFixed(0)} ms, expected ${(BURST * TICK_GAP_MS).toFixed(0)} ms`)
    assert.equal(many.cover.stats.waited.next.count, 300 * BURST)
    process.stdout.write(`# burst of ${BURST} at standard (${STANDARD.loopPerMinute} loop + ${STANDARD.dropPerMinute} drop/min), 300 bursts: mean wait ${(mean / 1000).toFixed(1)} s (expected ${(expected / 1000).toFixed(1)}), the last leaves after ${(meanLast / 1000).toFixed(1)} s on average (max ${(Math.max(...last) / 1000).toFixed(1)} s), queue ${BURST}\n`)
  })

  it('a message behind 20 upkeep packets leaves at the next tick in lane first (one FIFO: after the whole backlog); ticks unchanged', () => {
    const trial = (label: string, messageLane: Lane): { messageWait: number[], upkeepOrderKept: boolean, ticks: number[] } => {
      const { clock, cover, link } = rig(label)
      cover.start()
      const messageWait: number[] = []
      let upkeepOrderKept = true
      for (let t = 0; t < 200; t++) {
        clock.advance(5 * 60_000)
        const order: number[] = []
        for (let i = 0; i < BURST; i++) cover.send(() => { order.push(i) })
        // the user types while the upkeep waits (half a tick gap later)
        clock.advance(TICK_GAP_MS / 2)
        const typed = clock.now()
        let wait = -1
        cover.send(() => { wait = clock.now() - typed }, undefined, messageLane)
        drain(clock, cover)
        assert.ok(wait >= 0, 'the message left')
        messageWait.push(wait)
        if (order.join() !== Array.from({ length: order.length }, (_, i) => i).join()) upkeepOrderKept = false
      }
      cover.stop()
      return { messageWait, upkeepOrderKept, ticks: link.map(p => p.at) }
    }
    const fifo = trial('lanes', 'next')
    const lanes = trial('lanes', 'first')
    assert.deepEqual(lanes.ticks, fifo.ticks, 'the lanes change no tick')
    assert.ok(lanes.upkeepOrderKept && fifo.upkeepOrderKept, 'upkeep leaves in its own order')
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length
    // lane first: the wait for the next tick, exponential of the merged stream's gap (memoryless): ~2.7 s
    assert.ok(Math.abs(mean(lanes.messageWait) / TICK_GAP_MS - 1) < 0.2, `lane first waited ${mean(lanes.messageWait).toFixed(0)} ms`)
    // one FIFO: the backlog's remaining packets first (~20 ticks): > 10 tick gaps
    assert.ok(mean(fifo.messageWait) > 10 * TICK_GAP_MS, `FIFO waited ${mean(fifo.messageWait).toFixed(0)} ms`)
    for (let i = 0; i < lanes.messageWait.length; i++) assert.ok(lanes.messageWait[i] <= fifo.messageWait[i], 'never later than FIFO')
    process.stdout.write(`# a message typed behind ${BURST} upkeep packets at standard, 200 trials: lane first waits ${(mean(lanes.messageWait) / 1000).toFixed(1)} s mean (max ${(Math.max(...lanes.messageWait) / 1000).toFixed(1)}), one FIFO ${(mean(fifo.messageWait) / 1000).toFixed(1)} s (max ${(Math.max(...fifo.messageWait) / 1000).toFixed(1)})\n`)
  })

  it('low: a raise past 4 waiting drains a burst of 20 in ~10 s (one rate: ~60 s), each raised tick carries a real packet, at most 60 s a raise; none at standard and high', () => {
    assert.equal(PRIVACY_LEVELS.standard.backlog, undefined)
    assert.equal(PRIVACY_LEVELS.high.backlog, undefined)
    assert.deepEqual(PRIVACY_LEVELS.low.backlog, LOW_BACKLOG)
    const low = PRIVACY_LEVELS.low
    const burstsOf = (backlog: BacklogRate | undefined): { last: number[], rig: ReturnType<typeof rig> } => {
      const r = rig('low bursts', backlog, low)
      r.cover.start()
      const last: number[] = []
      for (let b = 0; b < 300; b++) {
        r.clock.advance(5 * 60_000)
        const at = r.clock.now()
        let lastAt = 0
        for (let i = 0; i < BURST; i++) r.cover.send(() => { lastAt = r.clock.now() - at; r.link.push({ at: r.clock.now(), kind: 'real' }) })
        drain(r.clock, r.cover)
        last.push(lastAt)
      }
      r.cover.stop()
      return { last, rig: r }
    }
    const flat = burstsOf(undefined)
    const raised = burstsOf(LOW_BACKLOG)
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length
    // 20 packets at 6x (0.5 s each) after the first base-rate wait was redrawn: ~10 s, against ~60 s
    assert.ok(mean(raised.last) < mean(flat.last) / 4, `raised ${mean(raised.last).toFixed(0)} ms vs one rate ${mean(flat.last).toFixed(0)} ms`)
    const st = raised.rig.cover.stats
    assert.equal(st.raises, 300, 'one raise per burst')
    assert.ok(st.raisedTicks > 0 && st.raisedTicks <= st.real, 'raised ticks carry real packets')
    // no drop cover went while real packets waited: the raise adds no cover of its own
    assert.equal(raised.rig.link.filter(p => p.kind === 'real').length, 300 * BURST)
    assert.equal(st.raisedEmpty, 0, 'every raised tick carried a real packet (a loop tick that empties the queue ends the raise)')

    // a backlog that never drains below the bound: raised for 60 s, then the base rate until empty
    const long = rig('low long', LOW_BACKLOG, low)
    long.cover.start()
    long.clock.advance(60_000)
    const t0 = long.clock.now()
    const left: number[] = []
    for (let i = 0; i < 200; i++) long.cover.send(() => { left.push(long.clock.now() - t0) })
    long.clock.advance(60_000)
    const inRaise = left.length
    long.clock.advance(120_000)
    const afterRaise = left.length - inRaise
    assert.equal(long.cover.stats.raises, 1, 'no second raise while the queue never emptied')
    assert.ok(inRaise > 80 && inRaise <= 200, `${inRaise} left in the raise's 60 s (~120 expected)`)
    assert.ok(afterRaise > 15 && afterRaise < 75, `${afterRaise} left in the next 120 s (~40 at the base rate)`)
    drain(long.clock, long.cover)
    long.clock.advance(5 * 60_000)
    for (let i = 0; i < BURST; i++) long.cover.send(() => {})
    assert.equal(long.cover.stats.raises, 2, 'a new burst after the queue emptied raises again')
    long.cover.stop()
    process.stdout.write(`# burst of ${BURST} at low (raise x${LOW_BACKLOG.factor} past ${LOW_BACKLOG.above}), 300 bursts: the last leaves after ${(mean(raised.last) / 1000).toFixed(1)} s on average (max ${(Math.max(...raised.last) / 1000).toFixed(1)} s); one rate ${(mean(flat.last) / 1000).toFixed(1)} s (max ${(Math.max(...flat.last) / 1000).toFixed(1)} s); ${st.raisedTicks} raised ticks for ${st.real} real packets; a standing backlog: ${inRaise} left in the 60 s raise, ${afterRaise} in the next 120 s\n`)
  })
})
