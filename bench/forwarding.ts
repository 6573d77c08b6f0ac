/**
 * One relay's forwarding rate, saturated from several senders, beside a plain forwarder on the same
 * hosts; and memory: an idle bare libp2p node, an idle user node, the relay idle and after every
 * onion packet of the run (100,000 in the full run).
 *
 * Hosts: the relay, the sink, the bare node and the user node each run in their own process
 * (bench/child.ts), so their memory and CPU are their own; the senders run in this process. The relay
 * is one Node process, so it uses one core at most (unless its Sphinx pool runs: sphinxThreads); its
 * CPU time over wall time is reported beside each rate (below 1.0 means it was not saturated, or
 * shared its core with other processes).
 *
 * Phases: plain forwarder; onion relay (rates, CPU per frame, memory checkpoints); then, with the
 * profiler on, a plain and an onion repeat that only give the split by component (the profiler's own
 * cost, ~90 us per onion frame here, would otherwise be counted as the relay's); then, optionally, the
 * onion relay with Sphinx on worker threads. Each onion phase has its own distinct packets.
 */
import { Worker } from 'node:worker_threads'
import { generateKeyPairSync } from 'node:crypto'
import { multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import { createP2PNode } from '../node/create.ts'
import type { P2PNode } from '../node/create.ts'
import { ephemeralIdentity } from '../node/identity.ts'
import { PACKET_SIZE } from '../protocols/onion/constants.ts'
import { ONION_PROTOCOL } from '../protocols/onion/relay.ts'
import { addressFromPeerId } from '../protocols/onion/address.ts'
import type { Hop } from '../protocols/onion/sphinx.ts'
import { BENCH_STREAM_WINDOW, Child } from './lib/children.ts'
import type { Stream } from '@libp2p/interface'
import { FRAME_HEADER, PLAIN_FORWARD_PROTOCOL, pumpFrames } from './lib/frames.ts'
import type { MemorySample } from './child.ts'
import { SATURATION_BURST, SATURATION_PACKETS_PER_SECOND } from './child.ts'
import { summarize, within } from './lib/stats.ts'
import { perFrame, stackVsOurs } from './lib/profile.ts'
import type { ProfileSplit } from './lib/profile.ts'
import type { Summary } from './lib/stats.ts'

export interface ForwardingOptions {
  /** distinct onion packets pushed through the relay (each fills the replay cache) */
  packets: number
  /** how long the plain forwarder is driven */
  plainSeconds: number
  senders: number
  /** the senders stop after this long even if packets are left */
  onionSecondsMax: number
  /** memory checkpoints during the onion run */
  checkpoints: number
  /** frames per send from each sender (1: every frame alone; 16: as a saturated upstream relay batches) */
  senderBatch?: number
  /**
   * Also profile the relay (default true): in a second plain phase and a second onion phase on
   * `profiledPackets` fresh packets, after the unprofiled ones. The rates and CPU per frame come from
   * the unprofiled phases: the profiler costs the relay CPU of its own (its sampling, ~90 us per onion
   * frame when measured, ~40%), so a profiled phase is only good for the split between components.
   */
  profile?: boolean
  /** distinct packets of the profiled onion phase (default min(packets, 20,000)) */
  profiledPackets?: number
  /**
   * Then the same relay with this many Sphinx worker threads (relay.ts sphinxThreads), driven with
   * another `packets` distinct packets: the single-thread relay's rate is its baseline. 0: not run.
   */
  sphinxThreads?: number
  log: (line: string) => void
}

export interface Rate {
  /** packets/s over the steady window (15%..90% of the arrivals) */
  rate: number
  /** packets/s in each 100 ms bin of the steady window */
  bins: Summary
  /** frames that reached the sink */
  delivered: number
  /** relay CPU time / wall time while it was driven (1.0 = one core saturated) */
  relayCpu: number
  /** the relay's CPU profile over a profiled repeat of the phase, split by component (bench/lib/profile.ts) */
  profile?: ProfileSplit
  /** frames the relay forwarded in the profiled repeat (the profile's per-frame divisor) */
  profiledFrames?: number
  /** frames the relay forwarded during the phase (the profile's per-frame divisor) */
  relayForwarded?: number
  /** the relay's CPU per forwarded frame, us: the whole process, and its main thread alone */
  cpuPerFrame?: { process: number, mainThread: number }
}

function cpuPerFrame (cpu: { userMs: number, systemMs: number, mainThreadMs: number }, frames: number): Rate['cpuPerFrame'] {
  return frames > 0 ? { process: (cpu.userMs + cpu.systemMs) * 1000 / frames, mainThread: cpu.mainThreadMs * 1000 / frames } : undefined
}

export interface ForwardingResult {
  /** onion packets the relay read (less than `packets` when streams were reset) */
  relayReceived: number
  /** sender streams the relay reset (read buffer overflow) and the senders replaced */
  streamResets: { plain: number, onion: number }
  onion: Rate
  plain: Rate
  /** the relay with Sphinx worker threads (no profile: the profiler sees the main thread only) */
  threaded?: Rate & { threads: number, cpuUsPerFrame: number, drops: Record<string, number> }
  relayDrops: Record<string, number>
  /** backpressure episodes on the relay (a neighbour queue paused its inbound reading), and those that timed out */
  relayHeld: { held: number, timeouts: number }
  memory: { bare: MemorySample, user: MemorySample, relayIdle: MemorySample, relayAfter: MemorySample }
  checkpoints: Array<{ received: number, rss: number, heapUsed: number, heapTotal: number, external: number, arrayBuffers: number, replayBytes: number }>
  packets: number
  senders: number
  /** frames per send from each sender */
  senderBatch: number
  rateLimit: { packetsPerSecond: number, burst: number }
}

const LOOPBACK = ['/ip4/127.0.0.1/tcp/0']
const ALLOW = ['/ip4/127.0.0.1/ipcidr/8']
const BIN_MS = 100

async function node (): Promise<P2PNode> {
  const identity = await ephemeralIdentity()
  return await createP2PNode({ privateKey: identity.privateKey, listen: LOOPBACK, allow: ALLOW, maxStreamWindow: BENCH_STREAM_WINDOW })
}

function rateOf (arrivals: number[], relayCpu: number): Rate {
  const n = arrivals.length
  if (n < 10) return { rate: 0, bins: summarize([]), delivered: n, relayCpu }
  const first = arrivals[0]
  const last = arrivals[n - 1]
  const a = first + 0.15 * (last - first)
  const b = first + 0.9 * (last - first)
  const counts = new Array<number>(Math.max(1, Math.floor((b - a) / BIN_MS))).fill(0)
  let inWindow = 0
  for (const t of arrivals) {
    if (t < a || t >= b) continue
    inWindow++
    const bin = Math.floor((t - a) / BIN_MS)
    if (bin < counts.length) counts[bin]++
  }
  return { rate: inWindow / ((b - a) / 1000), bins: summarize(counts.map(c => c * 1000 / BIN_MS)), delivered: n, relayCpu }
}

/** Packets with their frame header in front: senders write a whole frame per send. */
async function buildFrames (hops: Hop[], count: number): Promise<Uint8Array[]> {
  const workers = 2
  const per = Math.ceil(count / workers)
  const parts = await Promise.all(Array.from({ length: workers }, async (_, w) => {
    const n = Math.min(per, count - w * per)
    return await new Promise<ArrayBuffer>((resolve, reject) => {
      const worker = new Worker(new URL('./packet-worker.ts', import.meta.url), { workerData: { hops, count: n, payloadBytes: 1024 } })
      worker.once('message', resolve)
      worker.once('error', reject)
    })
  }))
  const frames: Uint8Array[] = []
  const size = FRAME_HEADER.length + PACKET_SIZE
  for (const buf of parts) {
    const packets = new Uint8Array(buf)
    const block = new Uint8Array((packets.length / PACKET_SIZE) * size)
    for (let i = 0; i * PACKET_SIZE < packets.length; i++) {
      block.set(FRAME_HEADER, i * size)
      block.set(packets.subarray(i * PACKET_SIZE, (i + 1) * PACKET_SIZE), i * size + FRAME_HEADER.length)
      frames.push(block.subarray(i * size, (i + 1) * size))
    }
  }
  return frames
}

async function settle (count: () => Promise<number>, quietMs = 500, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let last = -1
  while (Date.now() < deadline) {
    const now = await count()
    if (now === last) return
    last = now
    await new Promise(resolve => setTimeout(resolve, quietMs))
  }
}

export async function forwardingBench (opts: ForwardingOptions): Promise<ForwardingResult> {
  const log = opts.log
  const senders = await Promise.all(Array.from({ length: opts.senders }, async () => await node()))
  const children: Child[] = []
  try {
    const sink = await Child.spawn('sink')
    children.push(sink.child)
    const sinkAddr = sink.ready.addrs[0].includes('/p2p/') ? sink.ready.addrs[0] : `${sink.ready.addrs[0]}/p2p/${sink.ready.peerId}`
    const [bare, user, relay] = await Promise.all([
      Child.spawn('bare'),
      Child.spawn('user', sinkAddr),
      Child.spawn('relay')
    ])
    children.push(bare.child, user.child, relay.child)
    const count = async (which: 'onion' | 'plain'): Promise<number> => (await sink.child.ask({ cmd: 'arrivals' }, 'arrivals'))[which].length
    await relay.child.ask({ cmd: 'connect', sink: sinkAddr }, 'connected')
    const relayAddr = relay.ready.addrs[0]

    log(`  building ${opts.packets} distinct 2-hop packets (relay, sink) on 2 worker threads`)
    const hops: Hop[] = [
      { address: addressFromPeerId(relay.ready.peerId), onionKey: new Uint8Array(Buffer.from(relay.ready.onionKey ?? '', 'base64')) },
      { address: addressFromPeerId(sink.ready.peerId), onionKey: new Uint8Array(generateKeyPairSync('x25519').publicKey.export({ format: 'der', type: 'spki' }).subarray(12)) }
    ]
    const threads = opts.sphinxThreads ?? 0
    const profiling = opts.profile ?? true
    const profiledCount = profiling ? (opts.profiledPackets ?? Math.min(opts.packets, 20_000)) : 0
    const built = await buildFrames(hops, opts.packets + profiledCount + (threads > 0 ? opts.packets : 0))
    const packets = built.slice(0, opts.packets)
    const profiledPackets = built.slice(opts.packets, opts.packets + profiledCount)
    const threadedPackets = built.slice(opts.packets + profiledCount)

    const [memBare, memUser, memRelayIdle] = await Promise.all([
      bare.child.ask({ cmd: 'mem' }, 'mem'), user.child.ask({ cmd: 'mem' }, 'mem'), relay.child.ask({ cmd: 'mem' }, 'mem')
    ])
    await Promise.all(senders.map(async s => await s.dial(multiaddr(relayAddr))))

    // ---- baseline: the plain forwarder, same hosts, same frames, no onion work ----
    const resets = { plain: { count: 0 }, onion: { count: 0 } }
    const relayPeer = peerIdFromString(relay.ready.peerId)
    const pool = Math.min(1000, packets.length)
    const opened: Stream[] = []
    const plainPhase = async (profiled: boolean): Promise<{ rate: Rate, profile?: ProfileSplit, forwarded: number }> => {
      log(`  plain forwarder: ${opts.senders} senders for ${opts.plainSeconds} s${profiled ? ', profiled' : ''}`)
      const plainBefore = (await relay.child.ask({ cmd: 'stats' }, 'stats')).plain.forwarded
      const arrivedBefore = (await sink.child.ask({ cmd: 'arrivals' }, 'arrivals')).plain.length
      if (profiled) await relay.child.ask({ cmd: 'profile-start' }, 'profile')
      await relay.child.ask({ cmd: 'cpu' }, 'cpu')
      let running = true
      const plainLoops = senders.map(async (s, k) => {
        let i = k * 250
        await pumpFrames(async () => await s.dialProtocol(relayPeer, PLAIN_FORWARD_PROTOCOL), () => running ? packets[i++ % pool] : undefined, resets.plain, opened, opts.senderBatch)
      })
      await new Promise(resolve => setTimeout(resolve, opts.plainSeconds * 1000))
      running = false
      await Promise.all(plainLoops)
      await settle(async () => (await relay.child.ask({ cmd: 'stats' }, 'stats')).plain.forwarded, 200)
      const plainCpu = await relay.child.ask({ cmd: 'cpu' }, 'cpu')
      const profile = profiled ? (await relay.child.ask({ cmd: 'profile-stop' }, 'profile')).split : undefined
      const forwarded = (await relay.child.ask({ cmd: 'stats' }, 'stats')).plain.forwarded - plainBefore
      await settle(async () => await count('plain'))
      for (const st of opened.splice(0)) await st.close().catch(() => {})
      const arrivals = (await sink.child.ask({ cmd: 'arrivals' }, 'arrivals')).plain.slice(arrivedBefore)
      return { rate: { ...rateOf(arrivals, (plainCpu.userMs + plainCpu.systemMs) / plainCpu.wallMs), relayForwarded: forwarded, cpuPerFrame: cpuPerFrame(plainCpu, forwarded) }, profile, forwarded }
    }
    const plainRun = await plainPhase(false)
    const plainProfiled = profiling ? await plainPhase(true) : undefined
    const plain: Rate = { ...plainRun.rate, profile: plainProfiled?.profile, profiledFrames: plainProfiled?.forwarded }

    // ---- the relay: every distinct packet once, from all senders at once ----
    log(`  onion relay: ${packets.length} packets from ${opts.senders} senders (rate limit raised to ${SATURATION_PACKETS_PER_SECOND}/s, burst ${SATURATION_BURST})`)
    relay.child.tell({ cmd: 'checkpoints', every: Math.max(1, Math.floor(packets.length / opts.checkpoints)) })
    const onionBefore = (await relay.child.ask({ cmd: 'stats' }, 'stats')).onion.forwarded
    await relay.child.ask({ cmd: 'cpu' }, 'cpu')
    const deadline = Date.now() + opts.onionSecondsMax * 1000
    const progress = setInterval(() => {
      relay.child.ask({ cmd: 'stats' }, 'stats').then(st => {
        log(`    relay read ${st.onion.received}, forwarded ${st.onion.forwarded}, queued ${st.queued}, drops ${JSON.stringify(st.onion.dropped)}, sender stream resets ${resets.onion.count}`)
      }).catch(() => {})
    }, 10_000)
    await Promise.all(senders.map(async (s, k) => {
      let i = k
      await pumpFrames(async () => await s.dialProtocol(relayPeer, ONION_PROTOCOL), () => {
        if (Date.now() > deadline) return undefined
        const f = packets[i]
        i += senders.length
        return f
      }, resets.onion, opened, opts.senderBatch)
    }))
    clearInterval(progress)
    // every packet the relay got is processed and its queue is empty (or nothing moves for 3 s)
    let stats = await relay.child.ask({ cmd: 'stats' }, 'stats')
    let last = -1
    let still = 0
    while ((stats.onion.received < packets.length || stats.queued > 0) && still < 30) {
      await new Promise(resolve => setTimeout(resolve, 100))
      stats = await relay.child.ask({ cmd: 'stats' }, 'stats')
      still = stats.onion.received === last && stats.queued === 0 ? still + 1 : 0
      last = stats.onion.received
    }
    const onionCpu = await relay.child.ask({ cmd: 'cpu' }, 'cpu')
    const onionForwarded = stats.onion.forwarded - onionBefore
    for (const st of opened.splice(0)) await st.close().catch(() => {})
    await settle(async () => await count('onion'))
    const onion = { ...rateOf((await sink.child.ask({ cmd: 'arrivals' }, 'arrivals')).onion, (onionCpu.userMs + onionCpu.systemMs) / onionCpu.wallMs), relayForwarded: onionForwarded, cpuPerFrame: cpuPerFrame(onionCpu, onionForwarded) } as Rate
    await new Promise(resolve => setTimeout(resolve, 100)) // let the last checkpoint land
    const memRelayAfter = await relay.child.ask({ cmd: 'mem' }, 'mem')
    stats = await relay.child.ask({ cmd: 'stats' }, 'stats')

    /** Another onion phase on fresh packets (the filters saw the others), with `threads` Sphinx threads, maybe profiled. */
    const onionPhase = async (frames: Uint8Array[], threads: number, profiled: boolean): Promise<Rate & { drops: Record<string, number> }> => {
      log(`  onion relay${threads > 0 ? ` with ${threads} Sphinx worker threads` : ''}${profiled ? ', profiled' : ''}: ${frames.length} packets from ${opts.senders} senders`)
      // a fresh onion service (same keys and filters), so its counts are this phase's
      await relay.child.ask({ cmd: 'sphinx-threads', threads }, 'threads')
      const sinkBefore = (await sink.child.ask({ cmd: 'arrivals' }, 'arrivals')).onion.length
      if (profiled) await relay.child.ask({ cmd: 'profile-start' }, 'profile')
      await relay.child.ask({ cmd: 'cpu' }, 'cpu')
      const until = Date.now() + opts.onionSecondsMax * 1000
      await Promise.all(senders.map(async (s, k) => {
        let i = k
        await pumpFrames(async () => await s.dialProtocol(relayPeer, ONION_PROTOCOL), () => {
          if (Date.now() > until) return undefined
          const f = frames[i]
          i += senders.length
          return f
        }, resets.onion, opened, opts.senderBatch)
      }))
      let st = await relay.child.ask({ cmd: 'stats' }, 'stats')
      let lastSeen = -1
      let quiet = 0
      for (let polls = 0; polls < 600 && (st.onion.received < frames.length || st.queued > 0 || (st.onion.sphinxPool?.queued ?? 0) > 0) && quiet < 30; polls++) {
        await new Promise(resolve => setTimeout(resolve, 100))
        st = await relay.child.ask({ cmd: 'stats' }, 'stats')
        quiet = st.onion.received === lastSeen && st.queued === 0 && (st.onion.sphinxPool?.queued ?? 0) === 0 ? quiet + 1 : 0
        lastSeen = st.onion.received
      }
      const cpu = await relay.child.ask({ cmd: 'cpu' }, 'cpu')
      const profile = profiled ? (await relay.child.ask({ cmd: 'profile-stop' }, 'profile')).split : undefined
      for (const stream of opened.splice(0)) await stream.close().catch(() => {})
      await settle(async () => await count('onion'))
      const arrivals = (await sink.child.ask({ cmd: 'arrivals' }, 'arrivals')).onion.slice(sinkBefore)
      return {
        ...rateOf(arrivals, (cpu.userMs + cpu.systemMs) / cpu.wallMs),
        relayForwarded: st.onion.forwarded,
        cpuPerFrame: cpuPerFrame(cpu, st.onion.forwarded),
        profile,
        profiledFrames: profiled ? st.onion.forwarded : undefined,
        drops: st.onion.dropped as Record<string, number>
      }
    }
    if (profiledPackets.length > 0) {
      const p = await onionPhase(profiledPackets, 0, true)
      onion.profile = p.profile
      onion.profiledFrames = p.profiledFrames
    }
    // ---- the same relay with Sphinx on worker threads (no profile: the profiler sees the main thread only) ----
    let threaded: ForwardingResult['threaded']
    if (threads > 0 && threadedPackets.length > 0) {
      const t = await onionPhase(threadedPackets, threads, false)
      threaded = { ...t, threads, cpuUsPerFrame: t.cpuPerFrame?.process ?? 0 }
    }

    return {
      relayReceived: stats.onion.received,
      streamResets: { plain: resets.plain.count, onion: resets.onion.count },
      onion,
      plain,
      threaded,
      relayDrops: { ...stats.onion.dropped, plain: stats.plain.dropped } as Record<string, number>,
      relayHeld: { held: stats.onion.held, timeouts: stats.onion.holdTimeouts },
      memory: { bare: memBare.mem, user: memUser.mem, relayIdle: memRelayIdle.mem, relayAfter: memRelayAfter.mem },
      checkpoints: relay.child.checkpoints.map(c => ({ received: c.received, rss: c.mem.rss, heapUsed: c.mem.heapUsed, heapTotal: c.mem.heapTotal, external: c.mem.external, arrayBuffers: c.mem.arrayBuffers, replayBytes: c.replayBytes })),
      packets: packets.length,
      senders: opts.senders,
      senderBatch: opts.senderBatch ?? 1,
      rateLimit: { packetsPerSecond: SATURATION_PACKETS_PER_SECOND, burst: SATURATION_BURST }
    }
  } finally {
    await Promise.all(children.map(async c => await c.stop()))
    await Promise.all(senders.map(async n => { await within(Promise.resolve(n.stop()), 10_000) }))
  }
}

/** One line per phase: rate, relay CPU, and the relay's CPU per forwarded frame by component (stack vs ours). */
export function describeForwarding (r: ForwardingResult): string[] {
  const lines = [`onion relay ${r.onion.rate.toFixed(0)} packets/s, plain forwarder ${r.plain.rate.toFixed(0)} packets/s: ratio ${(r.onion.rate / r.plain.rate).toFixed(2)} (same run, same senders, batching and windows)`]
  for (const [name, rate] of [['plain', r.plain], ['onion', r.onion]] as const) {
    const c = rate.cpuPerFrame
    if (c != null) lines.push(`${name}: relay CPU per frame ${c.process.toFixed(1)} us (main thread ${c.mainThread.toFixed(1)}, other threads ${(c.process - c.mainThread).toFixed(1)}), unprofiled, relay CPU/wall ${rate.relayCpu.toFixed(2)}, ${rate.relayForwarded ?? 0} frames`)
  }
  for (const [name, rate] of [['plain', r.plain], ['onion', r.onion]] as const) {
    if (rate.profile == null || rate.profiledFrames == null) continue
    const s = stackVsOurs(rate.profile, rate.profiledFrames)
    const parts = perFrame(rate.profile, rate.profiledFrames).map(([c, us]) => `${c} ${us.toFixed(1)}`).join(', ')
    lines.push(`${name}, profiled repeat: ${rate.profiledFrames} frames forwarded; per frame ${s.busy.toFixed(1)} us busy = stack ${s.stack.toFixed(1)} + ours ${s.ours.toFixed(1)} (Sphinx ${s.sphinx.toFixed(1)}, framing/queues ${s.framing.toFixed(1)}) + bench ${s.bench.toFixed(1)}; by component (us/frame): ${parts}`)
  }
  if (r.onion.cpuPerFrame != null && r.plain.cpuPerFrame != null) {
    // what the rates' ratio would be if the relay had a core to itself: the same CPU buys this many more
    // plain frames (unprofiled CPU per frame: the profiler's own cost is not the relay's)
    const on = r.onion.cpuPerFrame.process
    const pl = r.plain.cpuPerFrame.process
    lines.push(`CPU-bound ratio (plain us/frame over onion us/frame): ${(pl / on).toFixed(2)}; one core would forward ~${(1e6 / on).toFixed(0)} onion packets/s, ~${(1e6 / pl).toFixed(0)} plain frames/s`)
  }
  const t = r.threaded
  if (t != null) {
    const single = r.onion.cpuPerFrame?.process ?? NaN
    lines.push(`Sphinx on ${t.threads} worker threads: ${t.rate.toFixed(0)} packets/s vs ${r.onion.rate.toFixed(0)} on one thread: ratio ${(t.rate / r.onion.rate).toFixed(2)} (same run); relay CPU/wall ${t.relayCpu.toFixed(2)}, process CPU ${t.cpuUsPerFrame.toFixed(1)} us/frame (one thread: ${single.toFixed(1)}); ${t.relayForwarded ?? 0} forwarded, drops ${JSON.stringify(t.drops)}`)
  }
  return lines
}

if (import.meta.main) {
  const packets = Number(process.env.PACKETS ?? 5000)
  const r = await forwardingBench({ packets, onionSecondsMax: 60, plainSeconds: Number(process.env.PLAIN_SECONDS ?? 3), senders: 4, checkpoints: Number(process.env.CHECKPOINTS ?? 5), senderBatch: Number(process.env.SENDER_BATCH ?? 1), log: console.log })
  if (process.env.JSON === '1') console.log(JSON.stringify(r, null, 1))
  for (const line of describeForwarding(r)) console.log(line)
  if (process.env.TOP === '1') {
    for (const [name, rate] of [['plain', r.plain], ['onion', r.onion]] as const) {
      console.log(`${name}: top functions by self time (share of busy samples)`)
      for (const [f, share] of rate.profile?.top ?? []) console.log(`  ${(100 * share).toFixed(1).padStart(5)}%  ${f}`)
    }
  }
  console.log(`relay drops ${JSON.stringify(r.relayDrops)}, held ${JSON.stringify(r.relayHeld)}, stream resets ${JSON.stringify(r.streamResets)}`)
  process.exit(0)
}
