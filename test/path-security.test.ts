/**
 * The verdict of the path-security rows (bench/path-security.ts `pathsVerdict`, used by bench/run.ts in
 * quick and full mode alike): a figure passes when it is within 2 of its own standard errors (from
 * its batch means) of the bound, the adversary's share of /16s squared. Quick mode runs these rows at
 * 10,000 paths, so a real miss cannot pass: the "ground peer ids" row (every hostile relay of the
 * entry role, 20 /16s: about 33 % against a bound of 25 %) is judged here at that size and must be a
 * MISS. Before this rule the quick run (2,000 paths, a tolerance of 3 binomial errors of the bound:
 * 25 + 9.2 points) marked it PASS.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { pathSecurityBench, pathsVerdict, VERDICT_STANDARD_ERRORS } from '../bench/path-security.ts'

/** The per-path size bench/run.ts uses in quick mode as in full mode. */
const PATHS = 10_000

describe('path-security verdicts', { timeout: 300_000 }, () => {
  it('judges a figure by its own standard error, and nothing without one', () => {
    assert.equal(VERDICT_STANDARD_ERRORS, 2)
    assert.equal(pathsVerdict(0.25, 0.008, 0.25, false), true)
    assert.equal(pathsVerdict(0.266, 0.008, 0.25, false), true, 'within 2 standard errors')
    assert.equal(pathsVerdict(0.267, 0.008, 0.25, false), false, 'beyond 2 standard errors')
    assert.equal(pathsVerdict(0.32, 0.008, 0.25, false), false)
    assert.equal(pathsVerdict(0.001, Number.NaN, 0.25, false), false, 'no standard error: no pass')
    assert.equal(pathsVerdict(0.001, -1, 0.25, false), false)
    assert.equal(pathsVerdict(0.049, 0.001, 0.002, true), false, 'the Sybil row: under 5 % and under the bound')
    assert.equal(pathsVerdict(0.0, 0.0, 0.002, true), true)
  })

  it('the ground-peer-id row at the quick size is a MISS, with a standard error far smaller than its miss', () => {
    const [row] = pathSecurityBench({ paths: PATHS, users: 1, hostile: 100, log: () => {}, only: l => l.includes('20 /16s, all of the entry role') && !l.includes('option') })
    assert.ok(row != null && row.batches === PATHS / 10)
    const sq = row.share ** 2
    assert.equal(sq, 0.25)
    assert.ok(row.guardsBothEndsSe > 0 && row.guardsBothEndsSe < 0.012, `standard error ${row.guardsBothEndsSe}`)
    assert.ok(row.guards.bothEnds > sq, `above the bound (${row.guards.bothEnds})`)
    assert.equal(pathsVerdict(row.guards.bothEnds, row.guardsBothEndsSe, sq, false), false, `a MISS: ${(100 * row.guards.bothEnds).toFixed(1)} % ± ${(100 * row.guardsBothEndsSe).toFixed(2)}`)
  })

  it('the Sybil row (100 relays in one /16) passes at the quick size', () => {
    const [row] = pathSecurityBench({ paths: PATHS, users: 1, hostile: 100, log: () => {}, only: l => l === '100 hostile relays in 1 /16' })
    assert.ok(row != null)
    assert.equal(pathsVerdict(row.guards.bothEnds, row.guardsBothEndsSe, row.share ** 2, true), true, `${row.guards.bothEnds}`)
  })
})
