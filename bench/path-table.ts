/**
 * Prints the path-security table (bench/path-security.ts) at a chosen size without the rest of the bench
 * and without writing bench/results: `node bench/path-table.ts [paths] [users]` (default the full size,
 * 10,000 paths and 400 users of 1,000 messages per row). One line per row: the figures of SPEC.md's
 * "Measured" table, with the guard figure's standard error (from its batch means) and the verdict.
 */
import { pathSecurityBench, pathsVerdict } from './path-security.ts'

const paths = Number(process.argv[2] ?? 10_000)
const users = Number(process.argv[3] ?? 400)
const pct = (x: number): string => (100 * x).toFixed(1)
const t0 = performance.now()
const rows = pathSecurityBench({ paths, users, hostile: 100, log: () => {} })
console.log('| row | both ends: guards (SE) / rules / main | verdict | share² | first guard hostile: now / earlier (share) | linked within 1,000: guards / rules / main |')
for (const r of rows) {
  const context = r.option != null || r.label.includes('claiming')
  const verdict = context ? 'info' : pathsVerdict(r.guards.bothEnds, r.guardsBothEndsSe, r.share * r.share, r.k === 1 && !r.label.includes('claiming')) ? 'PASS' : 'MISS'
  console.log(`| ${r.label} | ${pct(r.guards.bothEnds)} (${pct(r.guardsBothEndsSe)}) / ${pct(r.rules.bothEnds)} / ${pct(r.main.bothEnds)} | ${verdict} | ${pct(r.share * r.share)} | ` +
    `${pct(r.guardHostile)} / ${pct(r.oldGuardHostile)} (${pct(r.share)}) | ${pct(r.guards.linked1000)} / ${pct(r.rules.linked1000)} / ${pct(r.main.linked1000)} |`)
}
console.log(`${paths} paths, ${users} users per row; ${((performance.now() - t0) / 1000).toFixed(0)} s`)
