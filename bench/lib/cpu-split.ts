/**
 * Where a process's CPU goes while it runs `work`: V8's sampling profiler (node:inspector) over the
 * call, each sample given to the first category that its stack matches, from the sampled frame
 * outwards (so signature checks inside gossipsub count as gossipsub, and libsodium calls inside
 * createSurb as building). Used by bench/chat.ts on the in-process network, where every node shares
 * this process: the split is the whole network's CPU per message.
 *
 * Categories (first match wins, frame by frame from the leaf):
 *   build    createPacket, createSurb, packetFromSurb (protocols/onion/sphinx.ts): the sender's side
 *   hop      processPacket, openReply: peeling a layer, at relays and at the final client
 *   seal     protocols/chat/seal.ts: the end-to-end encryption of a message and its opening
 *   sign     ed25519Verify / the signer (protocols/crypto/keys.ts): our own signatures
 *   store    node/store.ts, node/contacts-store.ts, node/mailbox-keys.ts, protocols/mailbox/store.ts:
 *            SQLite, including the fsync of every commit (synchronous=FULL) the call waits for
 *   gossip   @libp2p/gossipsub: relay descriptors, with gossipsub's own message signatures
 *   transport  Noise, Yamux, TCP and the stream libraries under them
 *   gc / idle / other
 *
 * Sampling is statistical: with the default interval of 200 us, a category under ~1 ms total is noise.
 */
import { Session } from 'node:inspector/promises'

export type CpuCategory = 'build' | 'hop' | 'seal' | 'sign' | 'store' | 'gossip' | 'transport' | 'gc' | 'idle' | 'other'

export interface CpuSplit {
  /** wall time of `work`, ms */
  wallMs: number
  /** sampled time per category, ms */
  ms: Record<CpuCategory, number>
}

interface Frame { functionName: string, url: string }
interface ProfileNode { id: number, callFrame: Frame, children?: number[] }
interface Profile { nodes: ProfileNode[], startTime: number, samples?: number[], timeDeltas?: number[] }

const BY_NAME: ReadonlyArray<[CpuCategory, ReadonlySet<string>, string]> = [
  ['build', new Set(['createPacket', 'createSurb', 'packetFromSurb']), 'protocols/onion/sphinx.ts'],
  ['hop', new Set(['processPacket', 'openReply']), 'protocols/onion/sphinx.ts'],
  ['sign', new Set(['ed25519Verify', 'sign']), 'protocols/crypto/keys.ts']
]
const BY_URL: ReadonlyArray<[CpuCategory, RegExp]> = [
  ['seal', /protocols\/chat\/seal\.ts$/],
  ['store', /(node\/store\.ts|node\/contacts-store\.ts|node\/mailbox-keys\.ts|protocols\/mailbox\/store\.ts)$/],
  ['gossip', /@libp2p\/gossipsub\//],
  ['transport', /(@chainsafe\/libp2p-noise|@chainsafe\/libp2p-yamux|@libp2p\/tcp|@libp2p\/utils|it-[a-z-]+\/|uint8arraylist|@libp2p\/interface)\//]
]

function categorise (frame: Frame): CpuCategory | undefined {
  if (frame.functionName === '(garbage collector)') return 'gc'
  if (frame.functionName === '(idle)') return 'idle'
  for (const [category, names, file] of BY_NAME) if (names.has(frame.functionName) && frame.url.endsWith(file)) return category
  for (const [category, pattern] of BY_URL) if (pattern.test(frame.url)) return category
  return undefined
}

/** Runs `work` under the sampling profiler and returns the split of the sampled time. */
export async function cpuSplit (work: () => Promise<void>, samplingIntervalUs = 200): Promise<CpuSplit> {
  const session = new Session()
  session.connect()
  try {
    await session.post('Profiler.enable')
    await session.post('Profiler.setSamplingInterval', { interval: samplingIntervalUs })
    await session.post('Profiler.start')
    // V8 stamps samples on the monotonic clock that process.hrtime reads (us): samples outside the
    // call (profiler start-up, the stop request) are left out
    const from = Number(process.hrtime.bigint() / 1000n)
    let to = from
    let profile: Profile
    try {
      await work()
    } finally {
      to = Number(process.hrtime.bigint() / 1000n)
      profile = (await session.post('Profiler.stop')).profile as unknown as Profile
    }
    const wallMs = (to - from) / 1000
    const byId = new Map(profile.nodes.map(n => [n.id, n]))
    const parent = new Map<number, number>()
    for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
    const memo = new Map<number, CpuCategory>()
    const categoryOf = (id: number): CpuCategory => {
      const known = memo.get(id)
      if (known !== undefined) return known
      let found: CpuCategory = 'other'
      for (let cur: number | undefined = id, depth = 0; cur !== undefined && depth < 200; cur = parent.get(cur), depth++) {
        const node = byId.get(cur)
        if (node === undefined) break
        const c = categorise(node.callFrame)
        if (c !== undefined) { found = c; break }
      }
      memo.set(id, found)
      return found
    }
    const ms: Record<CpuCategory, number> = { build: 0, hop: 0, seal: 0, sign: 0, store: 0, gossip: 0, transport: 0, gc: 0, idle: 0, other: 0 }
    const samples = profile.samples ?? []
    const deltas = profile.timeDeltas ?? []
    let at = profile.startTime
    for (let i = 0; i < samples.length; i++) {
      const delta = deltas[i] ?? 0
      at += delta
      if (at - delta < from || at > to) continue
      ms[categoryOf(samples[i])] += delta / 1000
    }
    return { wallMs, ms }
  } finally {
    await session.post('Profiler.disable').catch(() => {})
    session.disconnect()
  }
}
