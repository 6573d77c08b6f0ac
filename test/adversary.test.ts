/**
 * The timing adversary's exact densities (test/helpers/adversary.ts, issue 11): a sampled density
 * matches the density it samples, is the same at every call, and ranks users by the packets they were
 * handed as the true density would, where a normal kernel of the same mean and spread does not.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { guessSender, logDensity, mixingModel, normalKernels, sampledDensity } from './helpers/adversary.ts'

describe('adversary: exact densities of the answer clues', () => {
  it('a sampled Exp(1 s) density: within 5 % of e^(-x/1 s) where it is above 0.1, 0 before 0, deterministic', () => {
    const d = sampledDensity(exp => exp(1000), 25, 'test exp')
    for (let x = 100; x <= 2300; x += 100) {
      const v = d.values[Math.floor(x / d.binMs) - d.lowBin]
      // the bin's centre: the histogram holds the mean density over [x, x + 25 ms)
      const want = Math.exp(-(x + 12.5) / 1000) / Math.exp(-12.5 / 1000)
      assert.ok(Math.abs(v - want) < 0.05, `density at ${x} ms: ${v.toFixed(3)}, want ${want.toFixed(3)}`)
    }
    assert.ok(d.lowBin >= 0, 'no mass before 0')
    assert.deepEqual(sampledDensity(exp => exp(1000), 25, 'test exp'), d, 'same label, same density')
    assert.equal(logDensity(0, [-500], d), -8, 'a packet before the push scores the floor only')
  })

  it('mixingModel carries both densities; normalKernels drops them and keeps the normals', () => {
    const m = mixingModel(500, 8000, { receiptDelayMs: 15_000, tickWaitMs: 60_000 / 22 })
    assert.ok(m.answerDensity != null && m.receipt?.density != null)
    const n = normalKernels(m)
    assert.equal(n.answerDensity, undefined)
    assert.equal(n.receipt?.density, undefined)
    assert.deepEqual([n.answerMeanMs, n.answerSdMs, n.receipt?.meanMs, n.receipt?.sdMs], [m.answerMeanMs, m.answerSdMs, m.receipt?.meanMs, m.receipt?.sdMs])
  })

  it('the receipt clue: a packet 7 s after the push (near the mode of Exp(15 s) + Exp(2.7 s) + Gamma(5, 0.5 s), density ~0.045/s) outweighs one 25 s after it (~0.018/s, but nearer the mean of 20 s); the normal kernel ranks them the other way', () => {
    const m = mixingModel(500, 500, { receiptDelayMs: 15_000, tickWaitMs: 60_000 / 22 })
    // one submission each at the same instant: only the answer clues rank the two candidates
    const subs = [{ at: -1, user: 'early' }, { at: -1, user: 'late' }]
    const deliveries = [{ at: 1_000 + 7_000, user: 'early' }, { at: 1_000 + 25_000, user: 'late' }]
    const receiptOnly = (model: typeof m): typeof m => ({ shape: 1, thetaMs: 1e12, ...(model.receipt != null ? { receipt: model.receipt } : {}) })
    assert.equal(guessSender(1_000, ['early', 'late'], subs, receiptOnly(m), { deliveries }).guess, 'early')
    assert.equal(guessSender(1_000, ['early', 'late'], subs, receiptOnly(normalKernels(m)), { deliveries }).guess, 'late')
  })
})
