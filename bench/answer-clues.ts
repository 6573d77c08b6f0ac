/**
 * A Monte Carlo of the two "answer clues" of issue 11 (`node bench/answer-clues.ts [--stored-mix-ms=3000]
 * [--receipt-ms=15000] [--loops=2] [--messages=6000] [--seed=7] [--normal]`): how often a timing adversary holding
 * every entry relay names a message's sender from the packets handed to users after the message reached
 * its recipient (the mailbox's STORED answer to the sender, and the recipient's receipt pushed to the
 * sender). A model, not a measurement of the code: it chooses node/privacy.ts's STORED_MIX_DELAY_MS and
 * STANDARD_RECEIPT_DELAY_MS; bench/anonymity.ts measures the real network with the same adversary.
 *
 * The model (`standard`'s rates, 20 users, the pace of bench/anonymity.ts): loop cover comes back to
 * every user as a Poisson stream; a message from a random user to one of its two contacts every 1.5-2.5 s
 * waits for a cover tick (exponential, 60/22 s), crosses 2 mixes to the mailbox, which pushes it over 3
 * hops to the recipient and answers STORED over the sender's reply block (2 mixes of mean D, the entry
 * relay of mean theta); the recipient's receipt leaves after an exponential of mean R, waits for a tick,
 * crosses 2 mixes to the sender's mailbox and is pushed over 3 hops (its own STORED goes back to the
 * recipient). The adversary scores every user but the recipient by the two offsets' exact densities
 * (test/helpers/adversary.ts mixingModel; `--normal`: normal kernels of their mean and spread, the
 * weaker adversary used before) and names the best; success is the share named right. `--thin`: answer
 * cover thins each user's returning loops with the product's own densities and lead (node/client-cover.ts
 * answerCoverFor at `standard` with D, R and L loops + 22 - L drops a minute), so the model cannot drift
 * from the code.
 */
import { createHash } from 'node:crypto'
import { seededUniform } from '../protocols/onion/delays.ts'
import { gammaDraw, logAnswer, mixingModel, normalKernels, storedClue } from '../test/helpers/adversary.ts'
import type { Density } from '../test/helpers/adversary.ts'
import { AnswerCover } from '../node/answer-cover.ts'
import { answerCoverFor } from '../node/client-cover.ts'
import { coverTickWaitMs, privacyLevel, withOverrides } from '../node/privacy.ts'

export interface ClueModelOptions { storedMixMs: number, receiptMs: number, loopsPerMinute: number, messages: number, seed: number, users?: number, normal?: boolean, thin?: boolean }
export interface ClueModelResult { stored: number, receipt: number, both: number, chance: number }

export function answerClues (o: ClueModelOptions): ClueModelResult {
  const N = o.users ?? 20
  // `standard` with the model's D, R and L loops + (22 - L) drops a minute: its hop mean theta, its wait
  // for a cover tick W, and answer cover's densities and lead as the product builds them
  const level = withOverrides(privacyLevel('standard'), { storedMixDelayMs: o.storedMixMs, receiptDelayMs: o.receiptMs, loopGapMs: 60_000 / o.loopsPerMinute, dropGapMs: 60_000 / (22 - o.loopsPerMinute), answerCover: true })
  const cover = answerCoverFor(level)
  const theta = level.meanDelayMs
  const W = coverTickWaitMs(level)
  const u = seededUniform(new Uint8Array(createHash('sha256').update(`answer clues ${o.seed}`).digest()))
  const exp = (mean: number): number => -mean * Math.log(1 - u())
  const gamma = (k: number, mean: number): number => gammaDraw(exp, k, mean)
  const end = o.messages * 2_000 + 120_000
  const incoming: number[][] = Array.from({ length: N }, () => [])
  const loops: number[][] = Array.from({ length: N }, () => [])
  for (const list of loops) for (let t = exp(60_000 / o.loopsPerMinute); t < end; t += exp(60_000 / o.loopsPerMinute)) list.push(t)
  // what each user expects back (node/answer-cover.ts): a DEPOSIT's STORED, a message's receipt
  const expected: Array<Array<{ kind: 'stored' | 'receipt', at: number }>> = Array.from({ length: N }, () => [])
  const messages: Array<{ from: number, to: number, push: number }> = []
  let t = 10_000
  for (let i = 0; i < o.messages; i++) {
    t += 1_500 + 1_000 * u()
    const from = Math.floor(u() * N)
    const to = (from + 1 + Math.floor(u() * 2)) % N
    const left = t + exp(W)
    const atMailbox = left + gamma(2, theta)
    const push = atMailbox + gamma(3, theta)
    incoming[to].push(push)
    incoming[from].push(atMailbox + gamma(2, o.storedMixMs) + exp(theta))
    expected[from].push({ kind: 'stored', at: left }, { kind: 'receipt', at: left })
    const receiptLeft = push + exp(o.receiptMs) + exp(W)
    expected[to].push({ kind: 'stored', at: receiptLeft })
    const receiptAtMailbox = receiptLeft + gamma(2, theta)
    incoming[from].push(receiptAtMailbox + gamma(3, theta))
    incoming[to].push(receiptAtMailbox + gamma(2, o.storedMixMs) + exp(theta))
    messages.push({ from, to, push })
  }
  // loop cover comes back, thinned for the expected answers when `thin` (a loop sent lead ms before it
  // returns), by answer cover as node/client-cover.ts builds it (none where the level has no loops)
  const lead = cover?.leadMs ?? 0
  for (let c = 0; c < N; c++) {
    const thinning = o.thin === true && cover != null ? new AnswerCover({ loopPerMinute: level.loopPerMinute, ...cover }) : undefined
    const todo = expected[c].sort((a, b) => a.at - b.at)
    let next = 0
    for (const r of loops[c]) {
      if (thinning != null) {
        const tick = r - lead
        while (next < todo.length && todo[next].at <= tick) { thinning.expect(todo[next].kind, todo[next].at); next++ }
        if (thinning.waive(tick, u())) continue
      }
      incoming[c].push(r)
    }
    incoming[c].sort((a, b) => a - b)
  }
  // the adversary's model of the two offsets, as bench/anonymity.ts gives it: their exact densities
  // (--normal: normal kernels of their mean and spread, the weaker adversary before 2026-12-02 evening)
  const exact = mixingModel(theta, o.storedMixMs, { receiptDelayMs: o.receiptMs, tickWaitMs: W })
  const model = o.normal === true ? normalKernels(exact) : exact
  const stored = storedClue(model, model.answerSdMs ?? 0)
  const receipt = model.receipt as { meanMs: number, sdMs: number, density?: Density }
  const hits = { stored: 0, receipt: 0, both: 0 }
  for (const m of messages) {
    const best = { stored: [-1, -Infinity], receipt: [-1, -Infinity], both: [-1, -Infinity] }
    for (let c = 0; c < N; c++) {
      if (c === m.to) continue
      const a = logAnswer(m.push, incoming[c], stored)
      const b = logAnswer(m.push, incoming[c], receipt)
      for (const [k, v] of [['stored', a], ['receipt', b], ['both', a + b]] as const) if (v > best[k][1]) best[k] = [c, v]
    }
    for (const k of ['stored', 'receipt', 'both'] as const) if (best[k][0] === m.from) hits[k]++
  }
  return { stored: hits.stored / o.messages, receipt: hits.receipt / o.messages, both: hits.both / o.messages, chance: 1 / (N - 1) }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (name: string, dflt: number): number => Number(process.argv.find(a => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? dflt)
  const opts = { loopsPerMinute: arg('loops', 2), messages: arg('messages', 6_000), seed: arg('seed', 7), normal: process.argv.includes('--normal'), thin: process.argv.includes('--thin') }
  const pairs = process.argv.some(a => a.startsWith('--stored-mix-ms=') || a.startsWith('--receipt-ms='))
    ? [[arg('stored-mix-ms', 3_000), arg('receipt-ms', 15_000)]]
    : [[500, 5_000], [3_000, 5_000], [3_000, 15_000], [3_000, 20_000], [6_000, 15_000], [8_000, 15_000], [10_000, 15_000], [12_000, 15_000], [15_000, 15_000]]
  process.stdout.write('| D (STORED mixes) | R (receipt) | stored clue | receipt clue | both (x chance) |\n| --- | --- | --- | --- | --- |\n')
  for (const [D, R] of pairs) {
    const r = answerClues({ ...opts, storedMixMs: D, receiptMs: R })
    const pc = (x: number): string => `${(100 * x).toFixed(1)} %`
    process.stdout.write(`| ${D} ms | ${R} ms | ${pc(r.stored)} | ${pc(r.receipt)} | ${pc(r.both)} (${(r.both / r.chance).toFixed(1)}x) |\n`)
  }
}
