/**
 * Answer cover (node/answer-cover.ts, issue 11): the densities it thins by match closed forms, a waiver
 * is the expected answers' density over the loop rate, and thinning a seeded Poisson stream of loops
 * by it takes away one packet per expected answer on average, at the offsets the answer would come
 * (so the sender's incoming stream keeps an idle user's intensity). node/cover.ts sends a drop in a
 * waived loop's place, so the outgoing stream is unchanged. test/cover-network.test.ts checks that a
 * real client registers its answers (a message's STORED and receipt, a receipt's STORED).
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, it } from 'node:test'
import { AnswerCover, MAX_EXPECTED, densityAt, offsetDensity } from '../node/answer-cover.ts'
import { answerCoverFor } from '../node/client-cover.ts'
import { CoverTraffic } from '../node/cover.ts'
import { privacyLevel, withOverrides } from '../node/privacy.ts'
import { seededUniform } from '../protocols/onion/delays.ts'
import { FALSE_ALARM, ksDistanceContinuous, ksThreshold } from './helpers/distribution.ts'
import { FakeClock } from './helpers/fake-clock.ts'

const seed = (label: string): Uint8Array => new Uint8Array(createHash('sha256').update(`p2pchat answer cover test ${label}`).digest())

describe('answer cover: densities', () => {
  it('the sum of two exponentials of mean m is Gamma(2, m): x e^(-x/m) / m^2, to 1e-6 relative at 1 ms bins; mass 1, mean 2m', () => {
    const m = 1000
    const d = offsetDensity([m, m], 1)
    for (const x of [200, 500, 1000, 2000, 4000, 8000]) {
      const exact = x * Math.exp(-x / m) / m / m
      assert.ok(Math.abs(densityAt(d, x) - exact) <= 1e-6 * exact, `at ${x} ms: ${densityAt(d, x)} vs ${exact}`)
    }
    let mass = 0
    let mean = 0
    for (let i = 0; i < d.pdf.length; i++) {
      mass += d.pdf[i] * d.binMs
      mean += (i + d.shiftBins + 0.5) * d.binMs * d.pdf[i] * d.binMs
    }
    assert.ok(Math.abs(mass - 1) < 1e-5, `mass ${mass}`)
    assert.ok(Math.abs(mean - 2 * m) < 1, `mean ${mean}`)
    assert.equal(densityAt(d, -1), 0)
    assert.equal(densityAt(d, 1e9), 0)
  })

  it('a STORED\'s Gamma(2, D) + Exp(theta) at 50 ms bins matches its closed form to 1 % where it is over a tenth of its peak', () => {
    const D = 8000
    const theta = 500
    const a = 1 / D
    const b = 1 / theta
    const c = a - b
    const exact = (t: number): number => a * a * b * Math.exp(-b * t) * (1 - Math.exp(-c * t) * (1 + c * t)) / (c * c)
    const d = offsetDensity([D, D, theta], 50)
    for (const x of [5000, 8000, 16000, 30000, 40000]) {
      assert.ok(Math.abs(densityAt(d, x) - exact(x)) <= 0.01 * exact(x), `at ${x} ms: ${densityAt(d, x)} vs ${exact(x)}`)
    }
  })

  it('refuses what it cannot tabulate', () => {
    assert.throws(() => offsetDensity([]), RangeError)
    assert.throws(() => offsetDensity([0]), RangeError)
    assert.throws(() => offsetDensity([Number.NaN]), RangeError)
    assert.throws(() => offsetDensity([1], 0), RangeError)
    assert.throws(() => offsetDensity(new Array(65).fill(1)), RangeError)
  })

  it('standard\'s answer cover: the STORED\'s density peaks under the loop rate, so its waiver is never capped alone', () => {
    const std = privacyLevel('standard')
    const a = answerCoverFor(std)
    assert.ok(a != null && std.answerCover === true)
    const peak = Math.max(...a.densities.stored.pdf) * 60_000
    assert.ok(peak < std.loopPerMinute, `the STORED's density peaks at ${peak.toFixed(2)} a minute, loops ${std.loopPerMinute}`)
    assert.equal(a.leadMs, 3 * std.meanDelayMs)
    assert.equal(answerCoverFor(privacyLevel('fast')), null)
    assert.equal(answerCoverFor(withOverrides(std, { answerCover: false })), null)
  })
})

describe('answer cover: waivers', () => {
  const density = offsetDensity([1000, 1000])
  const init = { loopPerMinute: 6, leadMs: 0, densities: { stored: density } }

  it('the waiver is the expected answers\' density over the loop rate, forgotten past its reach; unknown kinds and bad rates throw', () => {
    const a = new AnswerCover(init)
    assert.equal(a.waiver(0), 0)
    a.expect('stored', 10_000)
    a.expect('stored', 11_000)
    const lambda = 6 / 60_000
    const at = 12_000
    const want = (densityAt(density, at - 10_000) + densityAt(density, at - 11_000)) / lambda
    assert.ok(Math.abs(a.waiver(at) - want) < 1e-12)
    assert.equal(a.expecting, 2)
    assert.equal(a.waiver(10_000 + 1e6), 0)
    assert.equal(a.expecting, 0)
    assert.deepEqual(a.stats.expected, { stored: 2 })
    assert.throws(() => { a.expect('receipt', 0) }, RangeError)
    assert.throws(() => new AnswerCover({ ...init, loopPerMinute: 0 }), RangeError)
    // a lead: a loop sent now stands for a packet arriving lead ms later
    const led = new AnswerCover({ ...init, leadMs: 1500 })
    led.expect('stored', 0)
    assert.ok(Math.abs(led.waiver(500) - densityAt(density, 2000) / lambda) < 1e-12)
  })

  it('holds at most MAX_EXPECTED answers (the oldest forgotten, counted); a waiver over 1 is counted capped', () => {
    const a = new AnswerCover(init)
    for (let i = 0; i <= MAX_EXPECTED; i++) a.expect('stored', 0)
    assert.equal(a.expecting, MAX_EXPECTED)
    assert.equal(a.stats.forgotten, 1)
    assert.equal(a.waive(1000, 0.999), true)
    assert.equal(a.stats.capped, 1)
    assert.equal(a.stats.waived, 1)
  })

  it('thinning a Poisson stream of loops takes one loop per expected answer on average (Poisson bound, false alarm < 1e-8), at offsets that follow the answer\'s density (KS, 1e-6)', () => {
    // standard's figures: 6 loops a minute, the STORED's density, expectations 10 minutes apart (past its reach)
    const std = privacyLevel('standard')
    const a = answerCoverFor(std)
    assert.ok(a != null)
    const cover = new AnswerCover({ loopPerMinute: std.loopPerMinute, ...a })
    const u = seededUniform(seed('thinning'))
    const N = 600
    const apartMs = 600_000
    const offsets: number[] = []
    let t = 0
    let next = 0
    for (let guard = 0; guard < 10_000_000 && next <= N; guard++) {
      t += -60_000 / std.loopPerMinute * Math.log1p(-u())
      while (next < N && next * apartMs <= t) cover.expect('stored', next++ * apartMs)
      if (next === N && t > N * apartMs) break
      if (cover.waive(t, u())) offsets.push(t + a.leadMs - Math.floor((t + a.leadMs) / apartMs) * apartMs)
    }
    // the loops waived per answer are Poisson(1) (a thinned Poisson stream): their sum Poisson(600);
    // Chernoff: P(X <= 450) and P(X >= 760) are each under 3e-9
    assert.ok(offsets.length >= 450 && offsets.length <= 760, `${offsets.length} loops waived for ${N} answers`)
    assert.equal(cover.stats.capped, 0)
    const table = a.densities.stored
    const cum = new Float64Array(table.pdf.length)
    let s = 0
    for (let i = 0; i < cum.length; i++) cum[i] = (s += table.pdf[i] * table.binMs)
    const cdf = (x: number): number => {
      const i = Math.floor(x / table.binMs - table.shiftBins)
      return i < 0 ? 0 : i >= cum.length ? 1 : cum[i]
    }
    const d = ksDistanceContinuous(offsets, cdf)
    const threshold = ksThreshold(offsets.length, FALSE_ALARM)
    assert.ok(d <= threshold, `KS ${d.toFixed(3)} > ${threshold.toFixed(3)} over ${offsets.length} waived loops`)
    // the check can fail: the same offsets against the density 5 s later
    assert.ok(ksDistanceContinuous(offsets, x => cdf(x - 5000)) > threshold)
  })
})

describe('answer cover in the cover stream (node/cover.ts)', () => {
  it('a waived loop sends a drop in its tick (the stream keeps its packets), an owed loop is settled by a waiver, and none is waived without the hook', () => {
    const run = (waive: boolean | undefined): { sent: string[], stats: CoverTraffic['stats'], waivedTicks: number } => {
      const clock = new FakeClock()
      const sent: string[] = []
      let waivedTicks = 0
      const cover = new CoverTraffic({
        loopPerMinute: 30,
        dropPerMinute: 30,
        sendLoop: () => sent.push('loop'),
        sendDrop: () => sent.push('drop'),
        ...(waive != null ? { waiveLoop: () => waive } : {}),
        onTick: (tk) => { if (tk.waived === true) waivedTicks++ },
        clock,
        uniform: seededUniform(seed('stream'))
      })
      cover.start()
      // real packets, some of which take loop ticks (their loops owed)
      for (let i = 0; i < 20; i++) cover.send(() => { sent.push('real') })
      clock.advance(200_000)
      cover.stop()
      return { sent, stats: cover.stats, waivedTicks }
    }
    const plain = run(undefined)
    const all = run(true)
    const none = run(false)
    // the same seeded ticks: as many packets, the same real ones
    assert.equal(all.sent.length, plain.sent.length)
    assert.deepEqual(none.sent, plain.sent)
    assert.equal(all.sent.filter(k => k === 'loop').length, 0)
    assert.equal(all.sent.filter(k => k === 'real').length, 20)
    assert.ok(plain.stats.realInLoopTicks > 0, 'some real packets took loop ticks')
    assert.equal(all.stats.loopsWaived, plain.stats.loops)
    assert.equal(all.waivedTicks, all.stats.loopsWaived)
    assert.equal(all.stats.owedLoopsSent, 0)
    assert.equal(plain.stats.loopsWaived, 0)
  })
})
