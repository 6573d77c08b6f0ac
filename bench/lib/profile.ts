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
 */
import { Session } from 'node:inspector/promises'

export const PROFILE_SAMPLING_US = 250

export type Component =
  | 'noise' | 'yamux' | 'tcp' | 'libp2p-streams' | 'libp2p-other'
  | 'ours-framing' | 'ours-sphinx' | 'ours-other' | 'bench'
  | 'runtime' | 'gc' | 'program' | 'idle'

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
interface CpuProfile { nodes: ProfileNode[], samples: number[], timeDeltas: number[], startTime: number, endTime: number }

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
export function splitProfile (profile: CpuProfile, cpuMs: number): ProfileSplit {
  const byId = new Map<number, ProfileNode>()
  const parent = new Map<number, number>()
  for (const n of profile.nodes) {
    byId.set(n.id, n)
    for (const c of n.children ?? []) parent.set(c, n.id)
  }
  const owner = new Map<number, Component>()
  const ownerOf = (id: number): Component => {
    const known = owner.get(id)
    if (known !== undefined) return known
    const chain: number[] = []
    let at: number | undefined = id
    let found: Component | undefined
    while (at !== undefined) {
      const cached = owner.get(at)
      if (cached !== undefined) { found = cached; break }
      chain.push(at)
      const node = byId.get(at)
      if (node == null) break
      if (!transparent(node.callFrame.url)) { found = componentOf(node.callFrame.url); break }
      at = parent.get(at)
    }
    if (found === undefined) {
      const name = byId.get(id)?.callFrame.functionName
      found = name === '(garbage collector)' ? 'gc' : name === '(idle)' ? 'idle' : name === '(program)' ? 'program' : 'runtime'
      // only this node: its ancestors may be root-level frames of another kind
      owner.set(id, found)
      return found
    }
    for (const c of chain) owner.set(c, found)
    return found
  }
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
    ms[c] = c === 'idle' ? wallMs * n / Math.max(1, profile.samples.length) : cpuMs * n / Math.max(1, busy)
  }
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

  async start (): Promise<void> {
    if (this.session != null) await this.stop()
    this.cpuAtStart = process.cpuUsage()
    const session = new Session()
    session.connect()
    await session.post('Profiler.enable')
    await session.post('Profiler.setSamplingInterval', { interval: PROFILE_SAMPLING_US })
    await session.post('Profiler.start')
    this.session = session
  }

  /**
   * `forcedGcMs`: CPU the process spent in GCs it forced itself (a benchmark's memory checkpoints),
   * taken off the 'gc' component and the CPU total: they are the benchmark's, not the work's.
   */
  async stop (forcedGcMs = 0): Promise<ProfileSplit> {
    const session = this.session
    if (session == null) return { ms: {}, wallMs: 0, cpuMs: 0, samples: 0, top: [] }
    this.session = undefined
    const { profile } = await session.post('Profiler.stop') as unknown as { profile: CpuProfile }
    const used = process.cpuUsage(this.cpuAtStart)
    await session.post('Profiler.disable')
    session.disconnect()
    const split = splitProfile(profile, (used.user + used.system) / 1000)
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
  const stack = us('noise') + us('yamux') + us('tcp') + us('libp2p-streams') + us('libp2p-other') + us('runtime') + us('gc') + us('program')
  const framing = us('ours-framing') + us('ours-other')
  const sphinx = us('ours-sphinx')
  const bench = us('bench')
  return { stack, ours: framing + sphinx, sphinx, framing, bench, busy: stack + framing + sphinx + bench }
}
