/**
 * Client cover traffic (node/cover.ts), on a hand-driven clock and a seeded schedule: the packets a
 * client hands its entry relay form a Poisson stream of the configured total rate (gaps exponential,
 * Kolmogorov-Smirnov with the DKW-Massart bound at a false-alarm rate of 1e-6), idle and while it
 * chats, because a real packet takes the place of the next drop-cover packet instead of adding one.
 * (No privacy level turns cover on yet: node/cover.ts says why.)
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, it } from 'node:test'
import { CoverTraffic, MAX_WAITING } from '../node/cover.ts'
import { seededUniform } from '../protocols/onion/delays.ts'
import { FALSE_ALARM, ksDistanceContinuous, ksThreshold } from './helpers/distribution.ts'
import { FakeClock } from './helpers/fake-clock.ts'

const seed = (label: string): Uint8Array => new Uint8Array(createHash('sha256').update(`p2pchat cover test ${label}`).digest())
const LOOP_PER_MINUTE = 30
const DROP_PER_MINUTE = 90
/** Mean gap of the merged stream: 60 s / (30 + 90). */
const MEAN_GAP_MS = 60_000 / (LOOP_PER_MINUTE + DROP_PER_MINUTE)

type Kind = 'loop' | 'drop' | 'real'

function rig (label: string): { clock: FakeClock, cover: CoverTraffic, link: Array<{ at: number, kind: Kind }> } {
  const clock = new FakeClock()
  const link: Array<{ at: number, kind: Kind }> = []
  const cover = new CoverTraffic({
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

  it('chatting: real packets go in place of drop cover, so the stream keeps its rate and gaps; every real packet is sent once', () => {
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
