/**
 * `npm run bench` (full, a few minutes) and `npm run bench -- --quick` (about a minute, fewer samples
 * and smaller networks). Runs every benchmark in this process (nodes that need their own memory and CPU
 * run in child processes started with --expose-gc), prints one table, writes bench/results/latest.json,
 * latest.md and latest.svg. Every figure stands beside a baseline measured in the same run.
 *
 *   npm run bench -- --only=sphinx,forwarding,chat,first,idle,lookup,paths,anonymity   (a subset)
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { fileURLToPath } from 'node:url'
import { chatBench, MESSAGE_GAP_MS, PROFILED_MESSAGES } from './chat.ts'
import { firstMessageBench } from './first-message.ts'
import { idleBench, roleSummary } from './idle.ts'
import { describeForwarding, forwardingBench } from './forwarding.ts'
import { lookupBench } from './lookup.ts'
import { pathRelaysCost, pathSecurityBench, pathsVerdict } from './path-security.ts'
import { anonymityBench, JUDGE_MESSAGES } from './anonymity.ts'
import { sphinxBench } from './sphinx.ts'
import { machine } from './lib/machine.ts'
import { ratio, svg, table } from './lib/report.ts'
import type { Figure, Measured, Panel, Report } from './lib/report.ts'
import type { Summary } from './lib/stats.ts'

const quick = process.argv.includes('--quick')
const only = process.argv.find(a => a.startsWith('--only='))?.slice(7).split(',')
const enabled = (name: string): boolean => only == null || only.includes(name)
const RESULTS = fileURLToPath(new URL('./results/', import.meta.url))

// quick runs keep 5 relays: a full v2 path needs 4 distinct ones (entry, 2 mixes, final) and a mailbox off the entry
const settings = quick
  ? { anonUsers: 20, anonMessages: 12, anonLevels: ['fast', 'low', 'standard'], pathSamples: 10_000, pathUsers: 100, sphinxSamples: 500, idleRelays: 4, idleUsers: 1, idleSettleMs: 5_000, idleWindowMs: 10_000, packets: 4000, onionSecondsMax: 15, plainSeconds: 2, checkpoints: 3, messages: 30, newcomers: 0, procNewcomers: 1, relays: 5, users: 4, sizes: [10, 25], lookups: 8, names: 4 }
  : { anonUsers: 20, anonMessages: 40, anonLevels: ['fast', 'low', 'standard', 'high'], pathSamples: 10_000, pathUsers: 400, sphinxSamples: 2000, idleRelays: 5, idleUsers: 3, idleSettleMs: 15_000, idleWindowMs: 30_000, packets: 100_000, onionSecondsMax: 55, plainSeconds: 5, checkpoints: 10, messages: 60, newcomers: 0, procNewcomers: 3, relays: 5, users: 13, sizes: [10, 25, 50, 100], lookups: 10, names: 6 }

const started = performance.now()
const log = (line: string): void => { process.stderr.write(`[${((performance.now() - started) / 1000).toFixed(0).padStart(3)} s] ${line}\n`) }
const figures: Figure[] = []
const panels: Panel[] = []
const details: Record<string, unknown> = { settings, loadAverageAtStart: loadavg() }
const MB = 2 ** 20

function m (name: string, s: Summary): Measured { return { name, value: s.median, stats: s, samples: s.n } }
function one (name: string, value: number, samples: number): Measured { return { name, value, samples } }
function fig (f: Omit<Figure, 'ratio'> & { ratio?: number | null }): void {
  figures.push({ ...f, ratio: f.ratio !== undefined ? f.ratio : ratio(f.figure.value, f.baseline?.value) })
}

// ---- 1. per-hop packet processing ----
if (enabled('sphinx')) {
  log(`per-hop packet processing: ${settings.sphinxSamples} timed calls per row`)
  const r = sphinxBench(settings.sphinxSamples)
  const row = (name: string): Summary => r.rows.find(([n]) => n.startsWith(name))?.[1] ?? r.middle
  const rat = r.middle.median / r.rawHop.median
  fig({
    id: 'hop.middle', section: 'per-hop', name: 'per-hop processing, middle hop (processPacket)', unit: 'us',
    figure: m('processPacket', r.middle), baseline: m('raw X25519 + cipher + MAC ops of one hop', r.rawHop),
    target: 'ratio <= 1.5; < 100 us', pass: rat <= 1.5 && r.middle.median < 100,
    notes: `the two X25519 alone (libsodium, raw bytes): ${r.x25519.median.toFixed(0)} us median (${(100 * r.x25519.median / r.middle.median).toFixed(0)}% of the hop)`
  })
  for (const [label, name] of [['first hop', 'processPacket, first hop'], ['final hop (recipient)', 'processPacket, final hop'], ['garbage, dropped at the MAC', 'processPacket, garbage']]) {
    fig({ id: `hop.${label.split(' ')[0]}`, section: 'per-hop', name: `per-hop processing, ${label}`, unit: 'us', figure: m('processPacket', row(name)), baseline: m('raw ops of one forward hop', r.rawHop), target: 'context', pass: null })
  }
  details.sphinx = { samples: r.samples, warmup: r.warmup, hops: r.hops, distinctPackets: r.distinctPackets, rows: Object.fromEntries(r.rows) }
  panels.push({
    type: 'bars', title: `Per-hop cost, microseconds (median, whisker to p95; ${r.samples} calls each)`, unit: 'us',
    marker: { value: 100, label: 'target 100 us' },
    bars: [
      { label: 'processPacket, middle hop', median: r.middle.median, p95: r.middle.p95, kind: 'figure' },
      { label: 'processPacket, first hop', median: row('processPacket, first hop').median, p95: row('processPacket, first hop').p95, kind: 'figure' },
      { label: 'processPacket, final hop', median: row('processPacket, final hop').median, p95: row('processPacket, final hop').p95, kind: 'figure' },
      { label: 'processPacket, garbage (MAC drop)', median: row('processPacket, garbage').median, p95: row('processPacket, garbage').p95, kind: 'figure' },
      { label: 'raw: all ops of one forward hop', median: r.rawHop.median, p95: r.rawHop.p95, kind: 'baseline' },
      { label: 'raw: 2 X25519 (libsodium)', median: r.x25519.median, p95: r.x25519.p95, kind: 'baseline' },
      { label: 'raw: 4 ChaCha20', median: row('raw: 4 ChaCha20').median, p95: row('raw: 4 ChaCha20').p95, kind: 'baseline' },
      { label: 'raw: 7 HMAC + 1 SHA-256', median: row('raw: 7 HMAC').median, p95: row('raw: 7 HMAC').p95, kind: 'baseline' }
    ]
  })
}

// ---- 2. forwarding rate and 6. memory ----
/** Sphinx worker threads of the relay's extra phase (relay.ts sphinxThreads): this machine has 2 cores. */
const SPHINX_THREADS = 2
if (enabled('forwarding')) {
  log(`relay forwarding rate and memory: ${settings.packets} onion packets`)
  const r = await forwardingBench({ packets: settings.packets, onionSecondsMax: settings.onionSecondsMax, plainSeconds: settings.plainSeconds, senders: 4, checkpoints: settings.checkpoints, sphinxThreads: SPHINX_THREADS, log })
  const rat = r.onion.rate / r.plain.rate
  const drops = Object.entries(r.relayDrops).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(', ') || 'none'
  fig({
    id: 'relay.rate', section: 'forwarding', name: `one relay's forwarding rate, ${r.senders} senders, saturated`, unit: 'packets/s',
    figure: { name: 'onion relay (OnionService)', value: r.onion.rate, stats: r.onion.bins, samples: r.onion.delivered },
    baseline: { name: 'plain forwarder, same hosts and frames', value: r.plain.rate, stats: r.plain.bins, samples: r.plain.delivered },
    target: 'ratio >= 0.8; >= 8,000/s', pass: rat >= 0.8 && r.onion.rate >= 8000,
    notes: `rate over the steady window (15%-90% of arrivals at the sink); stats are 100 ms bins. Relay rate limit raised via OnionService init (packetsPerSecond ${r.rateLimit.packetsPerSecond}, burst ${r.rateLimit.burst}). ` +
      `Relay CPU/wall: onion ${r.onion.relayCpu.toFixed(2)}, plain ${r.plain.relayCpu.toFixed(2)}; per relay CPU-second: onion ${(r.onion.rate / Math.max(0.01, r.onion.relayCpu)).toFixed(0)}, plain ${(r.plain.rate / Math.max(0.01, r.plain.relayCpu)).toFixed(0)}. Relay drops: ${drops}. Backpressure episodes (a full neighbour queue paused the relay's reading): ${r.relayHeld.held}, timed out: ${r.relayHeld.timeouts}. Relay read ${r.relayReceived} of ${r.packets} packets; sender streams reset by the relay: onion ${r.streamResets.onion}, plain ${r.streamResets.plain}.`
  })
  for (const line of describeForwarding(r)) log(`  ${line}`)
  if (r.threaded != null) {
    fig({
      id: 'relay.rate.sphinx-threads', section: 'forwarding', name: `one relay's forwarding rate with Sphinx on ${r.threaded.threads} worker threads`, unit: 'packets/s',
      figure: { name: `onion relay, sphinxThreads ${r.threaded.threads}`, value: r.threaded.rate, stats: r.threaded.bins, samples: r.threaded.delivered },
      baseline: { name: 'onion relay, Sphinx on its main thread (same run)', value: r.onion.rate, stats: r.onion.bins, samples: r.onion.delivered },
      target: 'context: `start --relay` runs 2 threads by default (--sphinx-threads; sphinx-pool.ts defaultRelaySphinxThreads, from a quiet run\'s ratio 1.37); in-process relays keep 0', pass: null,
      notes: `relay CPU/wall ${r.threaded.relayCpu.toFixed(2)}; process CPU per frame ${r.threaded.cpuUsPerFrame.toFixed(1)} us (one thread: ${(r.onion.cpuPerFrame?.process ?? NaN).toFixed(1)}); drops ${JSON.stringify(r.threaded.drops)}`
    })
  }
  if (r.onion.cpuPerFrame != null && r.plain.cpuPerFrame != null) {
    // unprofiled CPU per frame (the profiler's own cost is not the relay's); the split is from profiled repeats
    fig({
      id: 'relay.cpu-per-frame', section: 'forwarding', name: 'relay CPU per forwarded frame (process CPU time, saturated, unprofiled)', unit: 'us',
      figure: one('onion relay', r.onion.cpuPerFrame.process, r.onion.relayForwarded ?? 0), baseline: one('plain forwarder, same run', r.plain.cpuPerFrame.process, r.plain.relayForwarded ?? 0),
      target: 'context', pass: null,
      notes: `${describeForwarding(r).slice(1).join(' ')} Sender frames per send: ${r.senderBatch}.`
    })
  }
  const mem = r.memory
  fig({ id: 'mem.user.rss', section: 'memory', name: 'user node (ChatNode v2, built, not connected), RSS', unit: 'MiB', figure: one('user node', mem.user.rss / MB, 1), baseline: one('idle bare libp2p node', mem.bare.rss / MB, 1), target: 'context', pass: null })
  fig({ id: 'mem.user.heap', section: 'memory', name: 'user node (ChatNode v2, built, not connected), heap used', unit: 'MiB', figure: one('user node', mem.user.heapUsed / MB, 1), baseline: one('idle bare libp2p node', mem.bare.heapUsed / MB, 1), target: 'context', pass: null })
  fig({ id: 'mem.relay.rss', section: 'memory', name: `relay after ${r.relayReceived.toLocaleString('en-US')} packets read (of ${r.packets.toLocaleString('en-US')} sent), RSS`, unit: 'MiB', figure: one('relay', mem.relayAfter.rss / MB, 1), baseline: one('idle bare libp2p node', mem.bare.rss / MB, 1), target: 'context', pass: null, notes: `relay idle before traffic: ${(mem.relayIdle.rss / MB).toFixed(1)} MiB RSS, ${(mem.relayIdle.heapUsed / MB).toFixed(1)} MiB heap` })
  fig({ id: 'mem.relay.heap', section: 'memory', name: `relay after ${r.relayReceived.toLocaleString('en-US')} packets read, heap used`, unit: 'MiB', figure: one('relay', mem.relayAfter.heapUsed / MB, 1), baseline: one('idle bare libp2p node', mem.bare.heapUsed / MB, 1), target: 'context', pass: null })
  const cps = r.checkpoints
  const half = cps.filter(c => c.received >= r.relayReceived / 2)
  const from = half[0] ?? cps[0]
  // live memory: what the relay's JavaScript holds after a forced GC (V8 heap + buffers outside it);
  // RSS also counts memory the allocators keep after it is freed, which grows in steps and plateaus
  const live = (x: { heapUsed: number, external: number }): number => (x.heapUsed + x.external) / MB
  const liveGrowth = from == null ? NaN : live(mem.relayAfter) - live(from)
  fig({
    id: 'mem.relay.flat', section: 'memory', name: `relay live memory growth (heap + external), ${from?.received ?? 0} -> ${r.relayReceived} packets read`, unit: 'MiB',
    figure: one('live memory growth', liveGrowth, cps.length), baseline: from == null ? null : one(`live memory at ${from.received} packets`, live(from), 1),
    target: 'flat after the replay cache fills: growth <= 5%', pass: from == null ? null : liveGrowth <= 0.05 * live(from),
    notes: `replay filters hold ${(cps.at(-1)?.replayBytes ?? 0) / MB} MiB, allocated up front; checkpoints after forced GC`
  })
  const rssGrowth = from == null ? NaN : (mem.relayAfter.rss - from.rss) / MB
  fig({
    id: 'mem.relay.rss', section: 'memory', name: `relay RSS growth, ${from?.received ?? 0} -> ${r.relayReceived} packets read`, unit: 'MiB',
    figure: one('RSS growth', rssGrowth, cps.length), baseline: from == null ? null : one(`RSS at ${from.received} packets`, from.rss / MB, 1),
    target: 'context', pass: null,
    notes: `RSS at each checkpoint (packets: MiB): ${cps.map(c => `${c.received}: ${(c.rss / MB).toFixed(0)}`).join(', ')}; after: ${(mem.relayAfter.rss / MB).toFixed(0)}`
  })
  details.forwarding = r
  panels.push({
    type: 'bars', title: `Relay forwarding rate, packets/s (${r.senders} senders, ${r.onion.delivered} onion packets delivered)`, unit: '/s',
    marker: { value: 8000, label: 'target 8,000/s' },
    bars: [
      { label: 'onion relay', median: r.onion.rate, kind: 'figure' },
      { label: 'plain forwarder, same hosts', median: r.plain.rate, kind: 'baseline' },
      { label: 'onion, per relay CPU-second', median: r.onion.rate / Math.max(0.01, r.onion.relayCpu), kind: 'figure' },
      { label: 'plain, per relay CPU-second', median: r.plain.rate / Math.max(0.01, r.plain.relayCpu), kind: 'baseline' }
    ]
  })
  panels.push({
    type: 'bars', title: 'Memory after GC, MiB (RSS; heap used)', unit: 'MiB',
    bars: [
      { label: 'bare libp2p node, idle: RSS', median: mem.bare.rss / MB, kind: 'baseline' },
      { label: 'user node (ChatNode v2, not connected): RSS', median: mem.user.rss / MB, kind: 'figure' },
      { label: 'relay, idle: RSS', median: mem.relayIdle.rss / MB, kind: 'figure' },
      { label: `relay after ${r.relayReceived} packets: RSS`, median: mem.relayAfter.rss / MB, kind: 'figure' },
      { label: 'bare libp2p node, idle: heap', median: mem.bare.heapUsed / MB, kind: 'baseline' },
      { label: 'user node (not connected): heap', median: mem.user.heapUsed / MB, kind: 'figure' },
      { label: `relay after ${r.relayReceived} packets: heap`, median: mem.relayAfter.heapUsed / MB, kind: 'figure' }
    ]
  })
  if (cps.length > 1) {
    panels.push({
      type: 'lines', title: 'Relay memory while it forwards (after forced GC at each checkpoint)', xLabel: 'onion packets received', yLabel: 'MiB',
      series: [
        { label: 'RSS', points: cps.map(c => [c.received, c.rss / MB]) },
        { label: 'heap used', points: cps.map(c => [c.received, c.heapUsed / MB]) },
        { label: 'live (heap + external)', points: cps.map(c => [c.received, live(c)]) },
        { label: 'replay filters', points: cps.map(c => [c.received, c.replayBytes / MB]), dashed: true }
      ]
    })
  }
}

// ---- 3. end to end (and an in-process newcomer, for context) ----
if (enabled('chat')) {
  log(`chat network: ${settings.messages} messages, ${settings.newcomers} newcomers`)
  const r = await chatBench({ messages: settings.messages, newcomers: settings.newcomers, relays: settings.relays, users: settings.users, log })
  fig({
    id: 'e2e.p50', section: 'end-to-end', name: `end-to-end delivery, protocol v2, p50 (send -> stored in a mailbox -> pushed -> shown; ${r.nodes}-node network)`, unit: 'ms',
    figure: m('ChatNode.send -> recipient shows it', r.oneWay), baseline: m('direct one-hop libp2p message, same process, 3072 B', r.direct),
    target: 'p50 ratio <= 6', pass: r.oneWay.median / r.direct.median <= 6,
    notes: `messages ${MESSAGE_GAP_MS} ms apart (a conversation); the message crosses entry relay, 2 mixes and the mailbox relay, then 2 mixes and the recipient's entry relay through a stocked reply block`
  })
  fig({
    id: 'e2e.p95', section: 'end-to-end', name: 'end-to-end delivery, protocol v2, p95', unit: 'ms',
    figure: one('p95', r.oneWay.p95, r.oneWay.n), baseline: one('direct p95', r.direct.p95, r.direct.n), target: 'context', pass: null
  })
  fig({
    id: 'e2e.receipt', section: 'end-to-end', name: 'send -> signed receipt back (deposited in a mailbox of the sender, pushed)', unit: 'ms',
    figure: m('round trip', r.roundTrip), baseline: m('direct one-hop, one way', r.direct), target: 'context', pass: null
  })
  const hopsNeeded = r.links
  const perHopRatio = r.oneWay.median / (Math.max(1, hopsNeeded) * r.direct.median)
  fig({
    id: 'e2e.perhop', section: 'end-to-end', name: `end-to-end p50 against (hops x direct one-hop): the ${hopsNeeded} links a message crosses (sender -> entry -> 2 mixes -> mailbox -> 2 mixes -> entry -> recipient)`, unit: 'ms',
    figure: m('ChatNode.send -> recipient shows it', r.oneWay), baseline: one(`${hopsNeeded} x direct one-hop p50`, Math.max(1, hopsNeeded) * r.direct.median, r.direct.n), ratio: perHopRatio,
    target: 'ratio <= 1.5 (fast mode)', pass: perHopRatio <= 1.5,
    notes: `hops = links crossed by design (bench/chat.ts MESSAGE_LINKS; "too few relays" warnings in the run, i.e. short paths: ${r.shortPathWarnings}); ` +
      `Sphinx packets the relays received between send and shown: median ${r.relayHopsOneWay.median}, p95 ${r.relayHopsOneWay.p95} (not the client's submit to its entry relay; other packets of the exchange too); send -> receipt: ${r.relayHopsRoundTrip.median}. ` +
      `ChatNode.send's synchronous part (checks, outbox row, launch): ${r.sendCall.median.toFixed(2)} ms median, p95 ${r.sendCall.p95.toFixed(2)}`
  })
  const cpu = r.cpuPerMessage
  const busy = cpu.build + cpu.hop + cpu.seal + cpu.sign + cpu.store + cpu.gossip + cpu.transport + cpu.gc + cpu.other
  fig({
    id: 'e2e.cpu', section: 'end-to-end', name: 'CPU of the whole in-process network per message (send -> shown -> receipt), profiled', unit: 'ms',
    figure: one('sampled CPU, all categories but idle', busy, PROFILED_MESSAGES), baseline: one('wall time per profiled message', cpu.wall, PROFILED_MESSAGES), target: 'context', pass: null,
    notes: `split (ms per message): build (createPacket, createSurb, packetFromSurb) ${cpu.build.toFixed(2)}, per hop (processPacket, openReply) ${cpu.hop.toFixed(2)}, ` +
      `seal ${cpu.seal.toFixed(2)}, our signatures ${cpu.sign.toFixed(2)}, store (SQLite with fsync) ${cpu.store.toFixed(2)}, gossipsub ${cpu.gossip.toFixed(2)}, ` +
      `transport (Noise, Yamux, TCP, streams) ${cpu.transport.toFixed(2)}, GC ${cpu.gc.toFixed(2)}, other ${cpu.other.toFixed(2)}, idle ${cpu.idle.toFixed(2)}; bench/lib/profile.ts (CpuCategory) says what each holds`
  })
  if (r.total.n > 0) {
    fig({
      id: 'first.inprocess', section: 'first message', name: `time to first message, in-process newcomer (${r.nodes} nodes on one event loop)`, unit: 'ms',
      figure: m('create + start + lookup + send + receipt', r.total), baseline: null, ratio: null, target: 'context', pass: null,
      notes: `warm code, every node in this process. Stages (median ms): start ${r.stages.start.median.toFixed(0)}, lookup ${r.stages.lookup.median.toFixed(0)}, send -> shown ${r.stages.sendToShown.median.toFixed(0)}, shown -> receipt ${r.stages.shownToReceipt.median.toFixed(0)}`
    })
  }
  details.chat = r
  panels.push({
    type: 'bars', title: `End to end, protocol v2, ms (${r.oneWay.n} messages alice -> bob through mailboxes, ${r.relays} relays; ${r.nodes}-node network)`, unit: 'ms',
    bars: [
      { label: 'direct one-hop libp2p message', median: r.direct.median, p95: r.direct.p95, kind: 'baseline' },
      { label: 'chat message via a mailbox, shown', median: r.oneWay.median, p95: r.oneWay.p95, kind: 'figure' },
      { label: '... and its receipt back', median: r.roundTrip.median, p95: r.roundTrip.p95, kind: 'figure' }
    ]
  })
}

// ---- 4. time to first message, every node its own process ----
if (enabled('first')) {
  log(`time to first message: ${1 + settings.relays + settings.users} p2pchat processes, ${settings.procNewcomers} newcomer processes`)
  // each round also a newcomer as installed (the built package through its launcher): what a user runs
  const r = await firstMessageBench({ newcomers: settings.procNewcomers, relays: settings.relays, users: settings.users, installed: true, log })
  fig({
    id: 'first.total', section: 'first message', name: `time to first message, new user in a ${r.nodes}-node network of processes (p2pchat start -> receipt)`, unit: 'ms',
    figure: m('spawn p2pchat start -> receipt back', r.total), baseline: null, ratio: null,
    target: '< 2,000 ms', pass: r.total.median < 2000,
    notes: `every node a p2pchat process, the newcomer a fresh one; without Node's start-up (spawn -> its first status line): ${r.fromListening.median.toFixed(0)} ms median`
  })
  const stages = [['boot', 'process start (Node, modules, identity, database)'], ['start', 'start (relay list, entry relay, mailboxes, name published through an exit)'], ['lookup', 'name lookup'], ['sendToShown', 'send -> recipient shows it'], ['shownToReceipt', 'shown -> receipt back']] as const
  for (const [k, label] of stages) {
    fig({ id: `first.${k}`, section: 'first message', name: `  first message stage: ${label}`, unit: 'ms', figure: m(label, r.stages[k]), baseline: null, ratio: null, target: 'context', pass: null })
  }
  fig({
    id: 'first.hops', section: 'first message', name: '  first message: relay hops between send and shown (Sphinx packets the relays received)', unit: 'hops',
    figure: m('relay hops', r.relayHopsToShown), baseline: null, ratio: null, target: 'context', pass: null,
    notes: `to the receipt back: ${r.relayHopsToReceipt.median}; counted from every relay's status counters, so packets of the same exchange in that interval count too (the deposit's 'stored' answer)`
  })
  if (r.installed != null) {
    const inst = r.installed
    fig({
      id: 'first.installed.total', section: 'first message', name: `time to first message as installed (the package npm pack builds, through its launcher), new user in the same ${r.nodes}-node network`, unit: 'ms',
      figure: m('spawn p2pchat start -> receipt back', inst.total), baseline: m('the same from the sources (row above)', r.total),
      target: '< 2,000 ms', pass: inst.total.median < 2000,
      notes: `a newcomer from the sources and one as installed each round, taking turns to go first; without Node's start-up: ${inst.fromListening.median.toFixed(0)} ms median`
    })
    for (const [k, label] of stages) {
      fig({ id: `first.installed.${k}`, section: 'first message', name: `  first message stage, installed: ${label}`, unit: 'ms', figure: m(label, inst.stages[k]), baseline: null, ratio: null, target: 'context', pass: null })
    }
  }
  details.firstMessage = r
  panels.push({
    type: 'bars', title: `Time to first message for a new user, ms (${r.total.n} newcomers, each a fresh p2pchat process; ${r.nodes} processes)`, unit: 'ms',
    marker: { value: 2000, label: 'target 2 s' },
    bars: [
      ...stages.map(([k, label]) => ({ label: label.replace(/ \(.*/, ''), median: r.stages[k].median, p95: r.stages[k].p95, kind: 'figure' as const })),
      { label: 'total, from the command', median: r.total.median, p95: r.total.p95, kind: 'figure' },
      { label: 'total, from listening', median: r.fromListening.median, p95: r.fromListening.p95, kind: 'figure' },
      ...(r.installed != null ? [{ label: 'total, as installed (launcher, bundle)', median: r.installed.total.median, p95: r.installed.total.p95, kind: 'figure' as const }] : [])
    ]
  })
}

// ---- 4b. what an idle node costs, each a p2pchat process (issue 13 item 4) ----
if (enabled('idle')) {
  log(`idle cost: bootstrap, ${settings.idleRelays} relays, ${settings.idleUsers} users and one installed user as processes; ${settings.idleSettleMs / 1000} s settle, ${settings.idleWindowMs / 1000} s window`)
  const r = await idleBench({ relays: settings.idleRelays, users: settings.idleUsers, settleMs: settings.idleSettleMs, windowMs: settings.idleWindowMs, log })
  const bare = one('idle Node, nothing loaded', r.bareNode.rss.median, 1)
  const bareAnon = one('idle Node, nothing loaded', r.bareNode.anon.median, 1)
  const loaded = `idle Node alone ${r.bareNode.rss.median.toFixed(0)} MiB RSS (${r.bareNode.anon.median.toFixed(0)} private); with p2pchat's modules imported and no node built ${r.modulesOnly.rss.median.toFixed(0)} MiB (${r.modulesOnly.anon.median.toFixed(0)} private)`
  const roles = [['user', 'idle user (p2pchat start, from the sources)', r.user], ['relay', 'idle relay (p2pchat start --relay)', r.relay], ['bootstrap', 'idle bootstrap node (p2pchat bootstrap)', r.bootstrap]] as const
  for (const [id, name, costs] of roles) {
    const s = roleSummary(costs)
    const isUser = id === 'user'
    fig({
      id: `idle.${id}.rss`, section: 'idle cost', name: `${name}, RSS`, unit: 'MiB', figure: m(`${costs.length} process(es), median of 1 s samples`, s.rss), baseline: bare,
      target: isUser ? '< 80 MiB' : 'context', pass: isUser ? s.rss.median < 80 : null,
      notes: `peak RSS since start ${s.peak.median.toFixed(0)} MiB; ${loaded}`
    })
    fig({ id: `idle.${id}.private`, section: 'idle cost', name: `${name}, private memory (RssAnon: RSS less the shared pages of the Node binary and libraries)`, unit: 'MiB', figure: m(`${costs.length} process(es)`, s.anon), baseline: bareAnon, target: 'context', pass: null })
    fig({ id: `idle.${id}.cpu`, section: 'idle cost', name: `${name}, CPU (share of one core over ${r.windowMs / 1000} s)`, unit: '%', figure: m(`${costs.length} process(es)`, s.cpu), baseline: one('idle Node, nothing loaded', r.bareNode.cpuPercent, 1), ratio: null, target: 'context', pass: null })
  }
  fig({
    id: 'idle.installed.rss', section: 'idle cost', name: 'idle user, installed package (bundled dist/ through the launcher, no type stripping), RSS', unit: 'MiB',
    figure: m('1 process, median of 1 s samples', r.installedUser.rss), baseline: bare, target: '< 80 MiB', pass: r.installedUser.rss.median < 80,
    notes: `private memory (RssAnon) ${r.installedUser.anon.median.toFixed(0)} MiB; CPU ${r.installedUser.cpuPercent.toFixed(2)} %; peak RSS ${r.installedUser.peakRss.toFixed(0)} MiB`
  })
  for (const [id, name, c] of [['relay', 'idle relay, installed package', r.installedRelay], ['bootstrap', 'idle bootstrap node, installed package (no peers)', r.installedBootstrap]] as const) {
    fig({
      id: `idle.installed.${id}.rss`, section: 'idle cost', name: `${name}, RSS`, unit: 'MiB', figure: m('1 process, median of 1 s samples', c.rss), baseline: bare, target: 'context', pass: null,
      notes: `private memory (RssAnon) ${c.anon.median.toFixed(0)} MiB; CPU ${c.cpuPercent.toFixed(2)} %; peak RSS ${c.peakRss.toFixed(0)} MiB`
    })
  }
  details.idle = r
}

// ---- 5. name lookups at growing network sizes ----
if (enabled('lookup')) {
  log(`name lookups at ${settings.sizes.join(', ')} nodes`)
  const r = await lookupBench({ sizes: settings.sizes, lookups: settings.lookups, names: settings.names, log })
  const base = r[0]
  for (const s of r) {
    const logRatio = Math.log(s.nodes) / Math.log(base.nodes)
    const latRatio = s.latencyMs.median / base.latencyMs.median
    const hopRatio = s.hops.median / Math.max(1, base.hops.median)
    const judged = s !== base
    fig({
      id: `lookup.latency.${s.nodes}`, section: 'lookup', name: `name lookup latency, ${s.nodes} nodes`, unit: 'ms',
      figure: m(`${s.nodes} nodes`, s.latencyMs), baseline: m(`${base.nodes} nodes`, base.latencyMs),
      target: judged ? `ratio <= 1.5 x log(N)/log(${base.nodes}) = ${(1.5 * logRatio).toFixed(2)} (linear: ${(s.nodes / base.nodes).toFixed(1)})` : 'baseline',
      pass: judged ? latRatio <= 1.5 * logRatio : null,
      notes: `found ${s.found}/${settings.lookups}; network built in ${s.buildSeconds.toFixed(1)} s; routing table median ${s.routingTable.median}, empty on ${s.emptyTables} of ${s.nodes} nodes`
    })
    fig({
      id: `lookup.hops.${s.nodes}`, section: 'lookup', name: `name lookup hops, ${s.nodes} nodes`, unit: 'hops',
      figure: m(`${s.nodes} nodes`, s.hops), baseline: m(`${base.nodes} nodes`, base.hops), ratio: hopRatio,
      target: judged ? `ratio <= ${(1.5 * logRatio).toFixed(2)}` : 'baseline', pass: judged ? hopRatio <= 1.5 * logRatio : null,
      notes: `distinct peers queried: median ${s.peersQueried.median}, p95 ${s.peersQueried.p95}`
    })
  }
  details.lookup = r
  const scale = (v0: number, f: (n: number) => number): Array<[number, number]> => r.map(s => [s.nodes, v0 * f(s.nodes) / f(base.nodes)])
  panels.push({
    type: 'lines', title: `Name lookup latency, ms (median of ${settings.lookups} lookups per size)`, xLabel: 'nodes (log scale)', yLabel: 'ms', logX: true,
    series: [
      { label: 'median', points: r.map(s => [s.nodes, s.latencyMs.median]) },
      { label: 'p95', points: r.map(s => [s.nodes, s.latencyMs.p95]), color: '#805ad5' },
      { label: 'if it grew like log N', points: scale(base.latencyMs.median, Math.log), dashed: true, color: '#38a169' },
      { label: 'if it grew like N', points: scale(base.latencyMs.median, n => n), dashed: true, color: '#e53e3e' }
    ]
  })
  panels.push({
    type: 'lines', title: 'Name lookup: hops to the first remote holder, and peers queried (medians)', xLabel: 'nodes (log scale)', yLabel: 'count', logX: true,
    series: [
      { label: 'hops (median)', points: r.map(s => [s.nodes, s.hops.median]) },
      { label: 'hops (p95)', points: r.map(s => [s.nodes, s.hops.p95]), color: '#805ad5' },
      { label: 'peers queried', points: r.map(s => [s.nodes, s.peersQueried.median]), color: '#dd6b20' },
      { label: 'log2 N', points: r.map(s => [s.nodes, Math.log2(s.nodes)]), dashed: true, color: '#38a169' }
    ]
  })
}

// ---- 6. path security against an operator of many relays (issue 12) ----
if (enabled('paths')) {
  log(`path security: ${settings.pathSamples} paths and ${settings.pathUsers} users of 1,000 messages per row`)
  const rows = pathSecurityBench({ paths: settings.pathSamples, users: settings.pathUsers, hostile: 100, log })
  const pct = (x: number): number => 100 * x
  for (const r of rows) {
    const sq = r.share * r.share
    const sybilRow = r.k === 1 && !r.label.includes('claiming')
    const suffix = `${r.label.includes('family') ? '.family' : ''}${r.label.includes('ground') ? '.grind' : ''}${r.label.includes('claiming') ? '.claim' : ''}${r.option != null ? `.option-${r.option}` : ''}`
    fig({
      id: `paths.both.${r.k}${suffix}`, section: 'path security',
      name: `paths with a hostile first and last hop, 20 honest relays + ${r.label}`, unit: '%',
      figure: one('guards + /16 and family rules', pct(r.guards.bothEnds), settings.pathSamples), baseline: one('main: uniform choice', pct(r.main.bothEnds), settings.pathSamples),
      target: `${sybilRow ? '< 5 %; ' : ''}<= share of /16s² = ${pct(sq).toFixed(1)} %`,
      // judged with the figure's own standard error (from its batch means: the 10 paths of a batch share
      // a guard), at 10,000 paths even in quick mode (about 15 s a row): a figure passes when it is
      // within 2 of its standard errors (about 0.85 points at k = 20) of the bound (pathsVerdict), so
      // the ground row's 33 % against 25 % (9 standard errors over) cannot pass, while the k = 20 row,
      // at the bound (25.1 ± 0.3 % at 100,000 paths: SPEC.md), fails about 1 run in 40
      // (test/path-security.test.ts)
      // the claiming row shows what believing unverified /16s would give (context: admission prevents it);
      // the option row measures a rule that is not the product's (context)
      pass: r.label.includes('claiming') || r.option != null ? null : pathsVerdict(r.guards.bothEnds, r.guardsBothEndsSe, sq, sybilRow),
      notes: `standard error ${pct(r.guardsBothEndsSe).toFixed(2)} points (${r.batches} batches of 10 paths); rules without guards ${pct(r.rules.bothEnds).toFixed(1)} %; the adversary holds ${pct(r.share).toFixed(0)} % of the /16s; a user's first guard is hostile ${pct(r.guardHostile).toFixed(1)} % of the time ` +
        `(each /16's weight split over its relays' roles, paths.ts drawForPosition); under the earlier rule (a /16 drawn among those with an entry-role relay, of which the adversary holds ${pct(r.entryShare).toFixed(0)} %) ${pct(r.oldGuardHostile).toFixed(1)} %` +
        (r.guards.bothEnds > sq ? ' (above share²)' : '')
    })
    fig({
      id: `paths.linked.${r.k}${suffix}`, section: 'path security',
      name: `users linked at least once within 1,000 messages (100 messages), ${r.label}`, unit: '%',
      figure: one('with guards', pct(r.guards.linked1000), settings.pathUsers), baseline: one('same rules, no guards', pct(r.rules.linked1000), settings.pathUsers),
      target: 'far below without guards (context)', pass: null,
      notes: `within 100 messages: guards ${pct(r.guards.linked100).toFixed(1)} %, rules without guards ${pct(r.rules.linked100).toFixed(1)} %, main ${pct(r.main.linked100).toFixed(1)} %; within 1,000: main ${pct(r.main.linked1000).toFixed(1)} %`
    })
  }
  details.pathSecurity = rows
  const cost = await pathRelaysCost(50, quick ? 100 : 400)
  fig({
    id: 'paths.relays-read', section: 'path security',
    name: `pathRelays() per call, ${cost.relays} relays, ${cost.withFamily} declaring a family`, unit: 'µs',
    figure: one('family verdict cached per descriptor', cost.cachedUs, quick ? 100 : 400), baseline: one('verified at every call (before)', cost.verifiedUs, quick ? 100 : 400),
    target: 'below the baseline (context)', pass: null,
    notes: 'every path reads the usable relays; a family declaration is an Ed25519 verification (protocols/directory/family.ts familyOfCached)'
  })
  panels.push({
    type: 'lines', title: 'Paths with a hostile first and last hop, % (20 honest relays, 100 hostile ones over k /16s)', xLabel: 'k (hostile /16s)', yLabel: '%',
    series: [
      { label: 'main: uniform', points: rows.filter(r => !r.label.includes(',')).map(r => [r.k, pct(r.main.bothEnds)]), color: '#e53e3e' },
      { label: 'rules, no guards', points: rows.filter(r => !r.label.includes(',')).map(r => [r.k, pct(r.rules.bothEnds)]), color: '#dd6b20' },
      { label: 'guards + rules', points: rows.filter(r => !r.label.includes(',')).map(r => [r.k, pct(r.guards.bothEnds)]) },
      { label: 'share of /16s, squared', points: rows.filter(r => !r.label.includes(',')).map(r => [r.k, pct(r.share * r.share)]), dashed: true, color: '#38a169' }
    ]
  })
}

// ---- 7. anonymity against a timing adversary holding every entry relay (issue 11) ----
if (enabled('anonymity')) {
  log(`anonymity: ${settings.anonUsers} users, ${settings.anonMessages} messages per level (${settings.anonLevels.join(', ')})`)
  // a full run judges `standard` on JUDGE_MESSAGES messages (issue 11: success <= 3x chance); quick stays short
  // a level that fails (a message not delivered in its time) is a FAIL row; the other levels and sections are kept
  const onFailure = (level: string, err: Error): void => {
    fig({
      id: `anon.${level}.failed`, section: 'anonymity', name: `anonymity, ${level}: the level's run failed`, unit: 'runs',
      figure: one('failed runs', 1, 1), baseline: null, ratio: null, target: 'every message delivered in time', pass: false, notes: err.message
    })
  }
  const rows = await anonymityBench({ users: settings.anonUsers, messages: settings.anonMessages, levels: settings.anonLevels, log, onFailure, ...(quick ? {} : { judge: { level: 'standard', messages: JUDGE_MESSAGES } }) })
  for (const r of rows) {
    const isDefault = r.level === 'standard'
    fig({
      id: `anon.${r.level}.success`, section: 'anonymity', name: `adversary's success naming the sender, ${r.level} (${r.users} users, ${r.messages} messages; 99 % Wilson ${(100 * r.wilson99.low).toFixed(0)}-${(100 * r.wilson99.high).toFixed(0)} %)`, unit: '%',
      figure: one('messages linked', 100 * r.successRate, r.messages), baseline: one('chance: 1 / candidates', 100 * r.chance, r.messages),
      target: r.level === 'fast' ? '>= 90 % (a real adversary)' : isDefault ? '<= 3x chance' : 'context',
      pass: r.level === 'fast' ? r.successRate >= 0.9 : isDefault ? r.successRate <= 3 * r.chance : null
    })
    fig({
      id: `anon.${r.level}.entropy`, section: 'anonymity', name: `sender entropy (mean), ${r.level}`, unit: 'bits',
      figure: one('entropy of the adversary\'s posterior', r.meanEntropyBits, r.messages), baseline: one('log2(candidates)', r.maxEntropyBits, r.messages),
      target: isDefault ? 'within 2 bits of log2 N' : 'context', pass: isDefault ? r.maxEntropyBits - r.meanEntropyBits <= 2 : null
    })
    fig({
      id: `anon.${r.level}.latency`, section: 'anonymity', name: `send -> shown, median, ${r.level} (p95 ${(r.p95LatencyMs / 1000).toFixed(1)} s)`, unit: 'ms',
      figure: one('median latency', r.medianLatencyMs, r.messages), baseline: null, ratio: null,
      target: isDefault ? '< 5,000 ms' : 'context', pass: isDefault ? r.medianLatencyMs < 5000 : null,
      notes: `${r.users} users started in ${r.startSeconds.toFixed(0)} s` + (r.queue == null ? '' : `; cover queue (node/cover.ts): at most ${r.queue.maxWaiting} real packets waiting, a message's packets waited ${(r.queue.firstMeanMs / 1000).toFixed(1)} s mean (max ${(r.queue.firstMaxMs / 1000).toFixed(1)}), upkeep and receipts ${(r.queue.nextMeanMs / 1000).toFixed(1)} s (max ${(r.queue.nextMaxMs / 1000).toFixed(1)})`)
    })
    fig({
      id: `anon.${r.level}.bandwidth`, section: 'anonymity', name: `packets on a user's guard link, ${r.level}, as MB/day (3,140 B each; relay gossip not included)`, unit: 'MB/day',
      figure: one('median user', r.mbPerUserPerDay, r.users), baseline: null, ratio: null,
      target: isDefault ? '<= 150 (with gossip: bench/bandwidth.ts)' : 'context', pass: isDefault ? r.mbPerUserPerDay <= 150 : null,
      notes: r.exactlyOnce ? 'every message delivered exactly once' : 'NOT every message delivered exactly once'
    })
  }
  details.anonymity = rows
  panels.push({
    type: 'lines', title: 'Anonymity against an adversary holding every entry relay: sender entropy (bits) by median latency (s); one point per level', xLabel: 'median send -> shown (s)', yLabel: 'entropy (bits)',
    series: [
      { label: 'levels (fast, low, standard, high)', points: rows.map(r => [r.medianLatencyMs / 1000, r.meanEntropyBits] as [number, number]) },
      { label: 'log2(candidates): perfect', points: rows.map(r => [r.medianLatencyMs / 1000, r.maxEntropyBits] as [number, number]), dashed: true }
    ]
  })
}

const report: Report = { mode: quick ? 'quick' : 'full', machine: machine(), durationSeconds: (performance.now() - started) / 1000, figures, details: { ...details, loadAverageAtEnd: loadavg() } }
const mc = report.machine
const caption = `p2pchat bench (${report.mode}), ${mc.cpuModel}, ${mc.cores} cores, Node ${mc.node}, ${mc.date.slice(0, 16)}Z; load average at start ${(details.loadAverageAtStart as number[])[0].toFixed(1)}`
mkdirSync(RESULTS, { recursive: true })
const stem = only == null ? 'latest' : 'partial'
writeFileSync(`${RESULTS}${stem}.json`, JSON.stringify(report, null, 1) + '\n')
const text = `${caption}\n\n${table(figures)}\n`
writeFileSync(`${RESULTS}${stem}.md`, text)
writeFileSync(`${RESULTS}${stem}.svg`, svg(panels, caption))
console.log(text)
for (const f of figures) if (f.notes != null) console.log(`- ${f.name}: ${f.notes}`)
console.log(`\n${report.mode} run: ${report.durationSeconds.toFixed(0)} s. Wrote bench/results/${stem}.json, ${stem}.md, ${stem}.svg`)
process.exit(0)
