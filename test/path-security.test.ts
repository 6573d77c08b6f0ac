/**
 * The verdict of the path-security rows (bench/path-security.ts `pathsVerdict`, used by bench/run.ts in
 * quick and full mode alike): a figure passes when it is within 2 of its own standard errors (from
 * its batch means) of the bound, the adversary's share of /16s squared. Quick mode runs these rows at
 * 10,000 paths, the size used here.
 *
 * Grinding roles (protocols/onion/SPEC.md "Grinding roles"): mailboxes live on relays of the exit role,
 * the position complementary to the guard's. An operator that grinds every relay to the entry role
 * (20 /16s of 40) takes the guard position at twice an honest /16's weight but then holds no mailbox:
 * the row is a PASS at 0 % (it was 33 %, a MISS, with mailboxes on any relay, and fails this test on
 * that code). The operator's best is a split of its /16s between the roles (10 of each): expected
 * E[10/(10+X) × 10/(30-X)] with X ~ Binomial(20, 1/2) honest entry relays, 25.3 %, share² × 1.013.
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

  it('the ground-peer-id row at the quick size is a PASS: the operator holds the guards, never the mailboxes', () => {
    const [row] = pathSecurityBench({ paths: PATHS, users: 1, hostile: 100, log: () => {}, only: l => l.includes('20 /16s, all of the entry role') && !l.includes('option') })
    assert.ok(row != null && row.batches === PATHS / 10)
    const sq = row.share ** 2
    assert.equal(sq, 0.25)
    // the grinding still works on the guard position (about 67 %, 1.5 points of standard error)...
    assert.ok(row.guardHostile > 0.55, `first guard hostile ${row.guardHostile}`)
    // ...and gains nothing: a mailbox on an entry-role relay only in a network with fewer than 2 exits
    assert.ok(row.guards.bothEnds < 0.01, `both ends hostile ${row.guards.bothEnds}`)
    assert.equal(pathsVerdict(row.guards.bothEnds, row.guardsBothEndsSe, sq, false), true)
  })

  it('an operator grinding half its /16s to each role gets no more than the argument says (share² × 1.013)', () => {
    const [row] = pathSecurityBench({ paths: PATHS, users: 1, hostile: 100, log: () => {}, only: l => l.includes('10 /16s of each role') })
    assert.ok(row != null && row.option === 'half')
    assert.equal(row.share ** 2, 0.25)
    // X honest relays of the entry role among 20: the guard is hostile 10/(10+X), the mailbox 10/(30-X)
    let expected = 0
    let choose = 1
    for (let x = 0; x <= 20; x++) {
      expected += choose / 2 ** 20 * 10 / (10 + x) * 10 / (30 - x)
      choose = choose * (20 - x) / (x + 1)
    }
    assert.ok(Math.abs(expected - 0.2532) < 0.0005, `${expected}`)
    assert.ok(row.guardsBothEndsSe > 0 && row.guardsBothEndsSe < 0.012, `standard error ${row.guardsBothEndsSe}`)
    // 5 standard errors over the expectation: a false alarm about once in 3 million runs
    assert.ok(row.guards.bothEnds <= expected + 5 * row.guardsBothEndsSe, `${(100 * row.guards.bothEnds).toFixed(1)} % ± ${(100 * row.guardsBothEndsSe).toFixed(2)}`)
  })

  it('the Sybil row (100 relays in one /16) passes at the quick size', () => {
    const [row] = pathSecurityBench({ paths: PATHS, users: 1, hostile: 100, log: () => {}, only: l => l === '100 hostile relays in 1 /16' })
    assert.ok(row != null)
    assert.equal(pathsVerdict(row.guards.bothEnds, row.guardsBothEndsSe, row.share ** 2, true), true, `${row.guards.bothEnds}`)
  })
})
