/**
 * Where a process spends its CPU, by component: a V8 sampling profile (node:inspector, the same data as
 * `node --cpu-prof`) taken around one phase of a benchmark and split by who the time was spent for.
 *
 * Each sample is charged to the nearest frame on its stack that belongs to a module: Node's own
 * internals (`node:` URLs, native code) and the crypto libraries (node:crypto, sodium-native, WASM)
 * are transparent, so a socket write counts for the TCP transport that made it and a ChaCha20-Poly1305
 * for Noise, whichever implementation ran it. Samples with no module frame at all are the event loop
 * itself ('runtime': timers, microtask turns, socket reads before they reach a listener), garbage
 * collection, V8's own work ('program') or idle time.
 *
 * Sampling interval 250 us: a phase of several seconds gives tens of thousands of samples, and the
 * profiler costs a few percent of the process's CPU, the same for every phase.
 *
 * The samples are the main thread's, so they apportion the main thread's CPU time
 * (process.threadCpuUsage); the process's other threads (V8's concurrent GC and compiler, libuv's
 * pool, worker threads such as a relay's Sphinx pool) are the component 'threads': CPU the process
 * spent that no sample shows. Apportioning the whole process's CPU by main-thread samples instead
 * charged that time to whatever the main thread ran, Sphinx most of all.
 *
 * Two ways to split the same profile, over one profiler (PhaseProfiler) and one walk up the stack
 * (attribute()): by component for a relay (splitProfile: the network stack vs our code, scaled to the
 * process's CPU time) and by task for a whole in-process chat network (cpuSplit: build, hop, seal...,
 * sampled time; see CpuCategory). The profiler samples the main thread only: CPU of worker threads
 * (a relay's Sphinx pool) is in the process's CPU time but not in any sample ('threads').
 */
import { Session } from 'node:inspector/promises'

export const PROFILE_SAMPLING_US = 250

export type Component =
  | 'noise' | 'yamux' | 'tcp' | 'libp2p-streams' | 'libp2p-other'
  | 'ours-framing' | 'ours-sphinx' | 'ours-other' | 'bench'
  | 'runtime' | 'gc' | 'program' | 'idle' | 'threads'

/**
 * Milliseconds of CPU per component over the profiled phase, and the phase's wall time. A sample's
 * time delta is wall time (a process that waits for a core still has its stack sampled), so each
 * component's share of the busy samples is applied to the process's CPU time (process.cpuUsage) over
 * the phase; `idle` is the idle samples' share of the wall time.
 */
export interface ProfileSplit {
  ms: Partial<Record<Component, number>>
  wallMs: number
  cpuMs: number
  samples: number
  /** the functions with the most self samples: "component function (file:line)" and their share of the busy samples */
  top: Array<[string, number]>
}

interface CallFrame { functionName: string, url: string }
interface ProfileNode { id: number, callFrame: CallFrame, children?: number[] }
export interface CpuProfile { nodes: ProfileNode[], samples: number[], timeDeltas: number[], startTime: number, endTime: number }

/**
 * Who each profile node's time is for: the first frame from the node up to the root that `classify`
 * names; `fallback(leaf)` when none does. Memoised per node (a profile has thousands of nodes and
 * millions of samples). The same walk serves both splits of this module.
 */
function attribute<C> (profile: CpuProfile, classify: (frame: CallFrame) => C | undefined, fallback: (leaf: CallFrame | undefined) => C): { ownerOf: (id: number) => C, byId: Map<number, ProfileNode>, parent: Map<number, number> } {
  const byId = new Map<number, ProfileNode>()
  const parent = new Map<number, number>()
  for (const n of profile.nodes) {
    byId.set(n.id, n)
    for (const c of n.children ?? []) parent.set(c, n.id)
  }
  const owner = new Map<number, C>()
  const ownerOf = (id: number): C => {
    const known = owner.get(id)
    if (known !== undefined) return known
    const chain: number[] = []
    let at: number | undefined = id
    let found: C | undefined
    // bounded by the tree's depth (every node has one parent); the guard is for a malformed profile
    for (let depth = 0; at !== undefined && depth < 10_000; depth++) {
      const cached = owner.get(at)
      if (cached !== undefined) { found = cached; break }
      chain.push(at)
      const node = byId.get(at)
      if (node == null) break
      found = classify(node.callFrame)
      if (found !== undefined) break
      at = parent.get(at)
    }
    if (found === undefined) {
      // only this node: its ancestors may be root-level frames of another kind
      const fell = fallback(byId.get(id)?.callFrame)
      owner.set(id, fell)
      return fell
    }
    for (const c of chain) owner.set(c, found)
    return found
  }
  return { ownerOf, byId, parent }
}

function transparent (url: string): boolean {
  return url === '' || url.startsWith('node:') || url.startsWith('wasm:') || url.includes('/node_modules/sodium-native/') || url.includes('/node_modules/sodium-universal/')
}

/** The component a module's URL belongs to. */
export function componentOf (url: string): Component {
  if (url.includes('/libp2p-noise/') || url.includes('/as-chacha20poly1305/') || url.includes('/as-sha256/') || url.endsWith('/node/noise-crypto.ts')) return 'noise'
  if (url.includes('/libp2p-yamux/')) return 'yamux'
  if (url.includes('/@libp2p/tcp/')) return 'tcp'
  if (url.includes('/@libp2p/utils/') || url.includes('/uint8arraylist/') || url.includes('/it-pushable/') ||
    url.includes('/main-event-target') || url.includes('/race-signal/') || url.includes('/uint8arrays/') || url.includes('/p-event/')) return 'libp2p-streams'
  if (url.includes('/node_modules/')) return 'libp2p-other'
  if (/\/protocols\/onion\/(relay|client-link)\.ts$/.test(url) || url.endsWith('/bench/lib/frames.ts')) return 'ours-framing'
  if (url.includes('/protocols/crypto/') || /\/protocols\/onion\/(sphinx|lioness|keys|keyring|replay|address|scheduler)\.ts$/.test(url)) return 'ours-sphinx'
  if (url.includes('/bench/')) return 'bench'
  return 'ours-other'
}

/** Splits a V8 CPU profile by component (see the module comment). */
export function splitProfile (profile: CpuProfile, cpuMs: number, mainThreadCpuMs: number = cpuMs): ProfileSplit {
  const { ownerOf, byId, parent } = attribute<Component>(profile,
    (frame) => transparent(frame.url) ? undefined : componentOf(frame.url),
    (leaf) => leaf?.functionName === '(garbage collector)' ? 'gc' : leaf?.functionName === '(idle)' ? 'idle' : leaf?.functionName === '(program)' ? 'program' : 'runtime')
  const counts: Partial<Record<Component, number>> = {}
  const self = new Map<number, number>()
  let busy = 0
  for (const id of profile.samples) {
    const c = ownerOf(id)
    counts[c] = (counts[c] ?? 0) + 1
    if (c !== 'idle') { busy++; self.set(id, (self.get(id) ?? 0) + 1) }
  }
  const wallMs = (profile.endTime - profile.startTime) / 1000
  const ms: Partial<Record<Component, number>> = {}
  for (const [c, n] of Object.entries(counts) as Array<[Component, number]>) {
    ms[c] = c === 'idle' ? wallMs * n / Math.max(1, profile.samples.length) : mainThreadCpuMs * n / Math.max(1, busy)
  }
  if (cpuMs - mainThreadCpuMs > 0) ms.threads = cpuMs - mainThreadCpuMs
  const byName = new Map<string, number>()
  for (const [id, n] of self) {
    const label = (node: ProfileNode | undefined): string => {
      const f = node?.callFrame
      return `${f?.functionName === '' ? '(anonymous)' : f?.functionName} (${(f?.url ?? '').split('/').slice(-2).join('/')})`
    }
    const up = parent.get(id)
    const name = `${ownerOf(id)} ${label(byId.get(id))} <- ${label(up === undefined ? undefined : byId.get(up))}`
    byName.set(name, (byName.get(name) ?? 0) + n)
  }
  const top = [...byName].sort((a, b) => b[1] - a[1]).slice(0, 60).map(([name, n]): [string, number] => [name, n / Math.max(1, busy)])
  return { ms, wallMs, cpuMs, samples: profile.samples.length, top }
}

/** A profile of this process between start() and stop(). */
export class PhaseProfiler {
  private session: Session | undefined
  private cpuAtStart = process.cpuUsage()
  private threadCpuAtStart = process.threadCpuUsage()

  async start (samplingIntervalUs = PROFILE_SAMPLING_US): Promise<void> {
    if (this.session != null) await this.stopRaw()
    this.cpuAtStart = process.cpuUsage()
    this.threadCpuAtStart = process.threadCpuUsage()
    const session = new Session()
    session.connect()
    await session.post('Profiler.enable')
    await session.post('Profiler.setSamplingInterval', { interval: samplingIntervalUs })
    await session.post('Profiler.start')
    this.session = session
  }

  /** The raw profile since start(), and the process's and the main thread's CPU milliseconds over it (undefined: not started). */
  async stopRaw (): Promise<{ profile: CpuProfile, cpuMs: number, mainThreadCpuMs: number } | undefined> {
    const session = this.session
    if (session == null) return undefined
    this.session = undefined
    try {
      const { profile } = await session.post('Profiler.stop') as unknown as { profile: CpuProfile }
      const used = process.cpuUsage(this.cpuAtStart)
      const main = process.threadCpuUsage(this.threadCpuAtStart)
      return { profile, cpuMs: (used.user + used.system) / 1000, mainThreadCpuMs: (main.user + main.system) / 1000 }
    } finally {
      await session.post('Profiler.disable').catch(() => {})
      session.disconnect()
    }
  }

  /**
   * `forcedGcMs`: CPU the process spent in GCs it forced itself (a benchmark's memory checkpoints),
   * taken off the 'gc' component and the CPU total: they are the benchmark's, not the work's.
   */
  async stop (forcedGcMs = 0): Promise<ProfileSplit> {
    const raw = await this.stopRaw()
    if (raw == null) return { ms: {}, wallMs: 0, cpuMs: 0, samples: 0, top: [] }
    const split = splitProfile(raw.profile, raw.cpuMs, raw.mainThreadCpuMs)
    const taken = Math.min(forcedGcMs, split.ms.gc ?? 0)
    if (taken > 0) {
      split.ms.gc = (split.ms.gc ?? 0) - taken
      split.cpuMs -= taken
    }
    return split
  }
}

/** The busy components (everything but idle) in microseconds per frame, largest first. */
export function perFrame (split: ProfileSplit, frames: number): Array<[Component, number]> {
  if (frames <= 0) return []
  return (Object.entries(split.ms) as Array<[Component, number]>)
    .filter(([c]) => c !== 'idle')
    .map(([c, v]): [Component, number] => [c, v * 1000 / frames])
    .sort((a, b) => b[1] - a[1])
}

/** Stack (libp2p + runtime + GC) vs ours (framing, Sphinx), microseconds per frame. */
export function stackVsOurs (split: ProfileSplit, frames: number): { stack: number, ours: number, sphinx: number, framing: number, bench: number, busy: number } {
  const us = (c: Component): number => frames > 0 ? (split.ms[c] ?? 0) * 1000 / frames : 0
  // 'threads' (GC and JIT helpers, libuv) is the runtime's, so the stack's; a Sphinx pool's workers
  // would be ours, but a pooled relay is not split (bench/forwarding.ts reports its CPU whole)
  const stack = us('noise') + us('yamux') + us('tcp') + us('libp2p-streams') + us('libp2p-other') + us('runtime') + us('gc') + us('program') + us('threads')
  const framing = us('ours-framing') + us('ours-other')
  const sphinx = us('ours-sphinx')
  const bench = us('bench')
  return { stack, ours: framing + sphinx, sphinx, framing, bench, busy: stack + framing + sphinx + bench }
}

// ---- by task, for a whole chat network in one process (bench/chat.ts) ----

/**
 * Tasks of a chat message, first match wins, from the leaf frame up:
 *   build    createPacket (preparePacket, finishPacket), createSurb, packetFromSurb (protocols/onion/sphinx.ts): the sender's side
 *   hop      processPacket, openReply: peeling a layer, at relays and at the final client
 *   seal     protocols/chat/seal.ts: the end-to-end encryption of a message and its opening
 *   sign     ed25519Verify / the signer (protocols/crypto/keys.ts): our own signatures
 *   store    node/store.ts, node/contacts-store.ts, node/mailbox-keys.ts, protocols/mailbox/store.ts:
 *            SQLite, including the fsync of every commit (synchronous=FULL) the call waits for
 *   gossip   @libp2p/gossipsub: relay descriptors, with gossipsub's own message signatures
 *   transport  Noise, Yamux, TCP and the stream libraries under them
 *   gc / idle / other
 * Sampling is statistical: with the default interval of 200 us, a task under ~1 ms total is noise.
 */
export type CpuCategory = 'build' | 'hop' | 'seal' | 'sign' | 'store' | 'gossip' | 'transport' | 'gc' | 'idle' | 'other'

export interface CpuSplit {
  /** wall time of `work`, ms */
  wallMs: number
  /** sampled time per task, ms (wall time of the samples, not scaled to CPU time) */
  ms: Record<CpuCategory, number>
}

const BY_NAME: ReadonlyArray<[CpuCategory, ReadonlySet<string>, string]> = [
  ['build', new Set(['createPacket', 'preparePacket', 'finishPacket', 'createSurb', 'packetFromSurb']), 'protocols/onion/sphinx.ts'],
  ['hop', new Set(['processPacket', 'openReply']), 'protocols/onion/sphinx.ts'],
  ['sign', new Set(['ed25519Verify', 'sign']), 'protocols/crypto/keys.ts']
]
const BY_URL: ReadonlyArray<[CpuCategory, RegExp]> = [
  ['seal', /protocols\/chat\/seal\.ts$/],
  ['store', /(node\/store\.ts|protocols\/sqlite\.ts|node\/contacts-store\.ts|node\/mailbox-keys\.ts|protocols\/mailbox\/store\.ts)$/],
  ['gossip', /@libp2p\/gossipsub\//],
  ['transport', /(@chainsafe\/libp2p-noise|@chainsafe\/libp2p-yamux|@libp2p\/tcp|@libp2p\/utils|it-[a-z-]+\/|uint8arraylist|@libp2p\/interface)\//]
]

function taskOf (frame: CallFrame): CpuCategory | undefined {
  if (frame.functionName === '(garbage collector)') return 'gc'
  if (frame.functionName === '(idle)') return 'idle'
  for (const [category, names, file] of BY_NAME) if (names.has(frame.functionName) && frame.url.endsWith(file)) return category
  for (const [category, pattern] of BY_URL) if (pattern.test(frame.url)) return category
  return undefined
}

/** Runs `work` under the sampling profiler and returns the split of the sampled time by task. */
export async function cpuSplit (work: () => Promise<void>, samplingIntervalUs = 200): Promise<CpuSplit> {
  const profiler = new PhaseProfiler()
  await profiler.start(samplingIntervalUs)
  // V8 stamps samples on the monotonic clock that process.hrtime reads (us): samples outside the
  // call (profiler start-up, the stop request) are left out
  const from = Number(process.hrtime.bigint() / 1000n)
  let to = from
  let raw: Awaited<ReturnType<PhaseProfiler['stopRaw']>>
  try {
    await work()
  } finally {
    to = Number(process.hrtime.bigint() / 1000n)
    raw = await profiler.stopRaw()
  }
  const ms: Record<CpuCategory, number> = { build: 0, hop: 0, seal: 0, sign: 0, store: 0, gossip: 0, transport: 0, gc: 0, idle: 0, other: 0 }
  if (raw == null) return { wallMs: (to - from) / 1000, ms }
  const { profile } = raw
  const { ownerOf } = attribute<CpuCategory>(profile, taskOf, () => 'other')
  const deltas = profile.timeDeltas ?? []
  let at = profile.startTime
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = deltas[i] ?? 0
    at += delta
    if (at - delta < from || at > to) continue
    ms[ownerOf(profile.samples[i])] += delta / 1000
  }
  return { wallMs: (to - from) / 1000, ms }
}
