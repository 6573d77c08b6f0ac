/**
 * The forwarding bench alone, with the relay's top self-time functions: `node bench/fwd-only.ts [packets] [senderBatch] [sphinxThreads]`.
 * A development aid for profiling the relay (bench/forwarding.ts); prints, writes nothing.
 */
import { describeForwarding, forwardingBench } from './forwarding.ts'

const packets = Number(process.argv[2] ?? 20_000)
const senderBatch = Number(process.argv[3] ?? 1)
const sphinxThreads = Number(process.argv[4] ?? 0)
const r = await forwardingBench({ packets, onionSecondsMax: 30, plainSeconds: 4, senders: 4, checkpoints: 2, senderBatch, sphinxThreads, profile: process.env.PROFILE !== '0', log: (l) => { process.stderr.write(l + '\n') } })
for (const line of describeForwarding(r)) console.log(line)
console.log('drops', JSON.stringify(r.relayDrops), 'resets', JSON.stringify(r.streamResets))
const top = Number(process.env.TOP ?? 30)
for (const [name, rate] of [['plain', r.plain], ['onion', r.onion]] as const) {
  console.log(`-- ${name} top self`)
  for (const [fn, share] of (rate.profile?.top ?? []).slice(0, top)) console.log(`  ${(100 * share).toFixed(1)}% ${fn}`)
}
