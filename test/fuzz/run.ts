/**
 * `npm run fuzz -- [--iterations N] [--seed S] [--family onion|relay|chat|directory|json|all]`
 *
 * The fuzzers of test/hardening-fuzz.test.ts, longer: N inputs per family (default 100,000), split
 * among that family's handlers as in the test. Prints the per-handler reason histograms; exits 1 with
 * the seed and the failing input when an invariant breaks, so `--seed` reproduces it.
 */
import { parseArgs } from 'node:util'
import { formatReport, Rng, totalInputs } from './generators.ts'
import type { FamilyReport } from './generators.ts'
import { runFamily, FAMILIES } from './families.ts'
import type { Family } from './families.ts'

const { values } = parseArgs({
  options: {
    iterations: { type: 'string', default: '100000' },
    seed: { type: 'string' },
    family: { type: 'string', default: 'all' }
  }
})
const iterations = Number(values.iterations)
if (!Number.isSafeInteger(iterations) || iterations < 1) throw new Error('--iterations must be a positive integer')
const seed = values.seed != null ? Number(values.seed) >>> 0 : (Date.now() >>> 0)
const families = values.family === 'all' ? FAMILIES : [values.family as Family]
for (const f of families) if (!FAMILIES.includes(f)) throw new Error(`unknown family ${f}; one of ${FAMILIES.join(', ')}, all`)

console.log(`fuzz: seed ${seed}, ${iterations} inputs per family`)
let failed = false
for (const family of families) {
  const started = performance.now()
  try {
    const report: FamilyReport | undefined = await runFamily(family, new Rng(seed), iterations)
    if (report == null) { console.log(`${family}: skipped (cli/json-commands.ts not present)`); continue }
    console.log(formatReport(family, report))
    console.log(`  ${family}: ${totalInputs(report)} inputs in ${Math.round(performance.now() - started)} ms`)
  } catch (err) {
    failed = true
    console.error(`${family}: FAILED: ${(err as Error).message}`)
  }
}
process.exitCode = failed ? 1 : 0
