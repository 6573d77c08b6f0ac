/**
 * One node in its own process, so that its memory and CPU are its own. Spawned by bench/forwarding.ts
 * with --expose-gc; speaks JSON over the IPC channel.
 *
 *   role bare:  createP2PNode only (the memory baseline)
 *   role user:  a ChatNode of protocol v2 built (identity, store, onion keys, its client libp2p node with
 *               no listening address), not started: a v2 user needs a bootstrap node that hands out
 *               relay lists and relays with mailboxes, which the forwarding bench does not run; so this
 *               is the user's memory before it connects (bench/chat.ts runs connected users)
 *   role relay: createP2PNode + OnionService with an epoch key ring (rate limits raised for
 *               saturation; no relay list, so it forwards to any peer) + the plain forwarder of
 *               bench/lib/frames.ts, both forwarding to the sink it is told of
 *   role sink:  createP2PNode that counts the frames the relay forwards (onion and plain) and keeps
 *               their arrival times; it is also the DHT peer the user node joins through
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Libp2p } from '@libp2p/interface'
import { createP2PNode } from '../node/create.ts'
import { ChatNode } from '../node/chat-node.ts'
import { ephemeralIdentity } from '../node/identity.ts'
import { OnionKeyRing } from '../protocols/onion/keyring.ts'
import { ONION_PROTOCOL, OnionService } from '../protocols/onion/relay.ts'
import { PLAIN_SINK_PROTOCOL, PlainForwarder, readFrames } from './lib/frames.ts'
import { PhaseProfiler } from './lib/profile.ts'
import { BENCH_STREAM_WINDOW } from './lib/children.ts'
import type { ProfileSplit } from './lib/profile.ts'

export type ChildRole = 'bare' | 'user' | 'relay' | 'sink'

export interface MemorySample { rss: number, heapUsed: number, heapTotal: number, external: number, arrayBuffers: number }

export type ToChild =
  | { cmd: 'mem' }
  | { cmd: 'connect', sink: string }
  | { cmd: 'stats' }
  | { cmd: 'checkpoints', every: number }
  | { cmd: 'cpu' }
  | { cmd: 'arrivals' }
  /** a CPU profile of this process from 'profile-start' to 'profile-stop', split by component (lib/profile.ts) */
  | { cmd: 'profile-start' }
  | { cmd: 'profile-stop' }
  /** the relay's onion service restarted with this many Sphinx worker threads (same keys and replay filters) */
  | { cmd: 'sphinx-threads', threads: number }
  | { cmd: 'stop' }

export type FromChild =
  | { type: 'ready', peerId: string, addrs: string[], onionKey?: string }
  | { type: 'mem', mem: MemorySample }
  | { type: 'connected' }
  | { type: 'stats', onion: OnionService['stats'], plain: { received: number, forwarded: number, dropped: number }, queued: number }
  | { type: 'checkpoint', received: number, mem: MemorySample, replayBytes: number }
  /** process CPU (all threads) and the main thread's alone since the last 'cpu' */
  | { type: 'cpu', userMs: number, systemMs: number, wallMs: number, mainThreadMs: number }
  | { type: 'arrivals', onion: number[], plain: number[] }
  | { type: 'profile', split: ProfileSplit }
  | { type: 'threads', threads: number }
  | { type: 'stopped' }
  | { type: 'error', message: string }

const LOOPBACK = ['/ip4/127.0.0.1/tcp/0']
const ALLOW = ['/ip4/127.0.0.1/ipcidr/8']
/** Far above any rate a loopback bench reaches: the saturation run must not be cut by the limiter. */
export const SATURATION_PACKETS_PER_SECOND = 1_000_000_000
export const SATURATION_BURST = 1_000_000_000

/** CPU milliseconds this process spent in the forced GCs of memory() (the profile leaves them out of the relay's cost). */
let forcedGcMs = 0

function memory (): MemorySample {
  const gc = (globalThis as { gc?: () => void }).gc
  const before = process.cpuUsage()
  gc?.()
  gc?.()
  const used = process.cpuUsage(before)
  forcedGcMs += (used.user + used.system) / 1000
  const m = process.memoryUsage()
  return { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers }
}

function send (msg: FromChild): void { process.send?.(msg) }

function relayService (node: Libp2p, keyRing: OnionKeyRing, sphinxThreads: number): OnionService {
  return new OnionService(node, { keyRing, onDeliver: () => {}, packetsPerSecond: SATURATION_PACKETS_PER_SECOND, burst: SATURATION_BURST, sphinxThreads })
}

async function main (): Promise<void> {
  const role = process.argv[2] as ChildRole
  const bootstrap = process.argv[3] ?? ''
  const identity = await ephemeralIdentity()
  let node: Libp2p
  let chat: ChatNode | undefined
  let service: OnionService | undefined
  let keyRing: OnionKeyRing | undefined
  let plain: PlainForwarder | undefined
  let dataDir: string | undefined

  if (role === 'user') {
    dataDir = mkdtempSync(join(tmpdir(), 'p2pchat-bench-'))
    chat = await ChatNode.create({ dataDir, nick: `idle${process.pid}`, identity, bootstrap: [bootstrap], allow: ALLOW, privacy: 'fast' })
    node = chat.node
  } else {
    node = await createP2PNode({ privateKey: identity.privateKey, listen: LOOPBACK, bootstrap: bootstrap === '' ? [] : [bootstrap], allow: ALLOW, maxStreamWindow: BENCH_STREAM_WINDOW })
  }
  if (role === 'relay') {
    keyRing = new OnionKeyRing()
    service = relayService(node, keyRing, 0)
    await service.start()
    plain = new PlainForwarder(node)
  }

  const arrivals = { onion: [] as number[], plain: [] as number[] }
  if (role === 'sink') {
    await node.handle(ONION_PROTOCOL, (stream) => { readFrames(stream, () => { arrivals.onion.push(performance.now()) }).catch(() => {}) }, { maxInboundStreams: 16 })
    await node.handle(PLAIN_SINK_PROTOCOL, (stream) => { readFrames(stream, () => { arrivals.plain.push(performance.now()) }).catch(() => {}) }, { maxInboundStreams: 16 })
  }

  let checkpointTimer: ReturnType<typeof setInterval> | undefined
  const profiler = new PhaseProfiler()
  const cpuStart = { usage: process.cpuUsage(), thread: process.threadCpuUsage(), at: performance.now() }

  // the parent is gone (it crashed, or the run was interrupted): do not linger
  process.once('disconnect', () => { setTimeout(() => process.exit(0), 2000).unref(); Promise.resolve(node.stop()).finally(() => process.exit(0)) })
  process.on('message', (msg: ToChild) => {
    const run = async (): Promise<void> => {
      switch (msg.cmd) {
        case 'mem': send({ type: 'mem', mem: memory() }); break
        case 'connect': {
          const ma = multiaddr(msg.sink)
          await node.dial(ma)
          const sinkId = ma.getComponents().find(c => c.name === 'p2p')?.value
          if (sinkId == null || plain == null) throw new Error('relay needs a sink address with /p2p/')
          await plain.start(peerIdFromString(sinkId))
          send({ type: 'connected' })
          break
        }
        case 'stats':
          send({ type: 'stats', onion: service?.stats ?? { received: 0, forwarded: 0, delivered: 0, dropped: {}, streamErrors: 0, held: 0, holdTimeouts: 0 }, plain: { received: plain?.received ?? 0, forwarded: plain?.forwarded ?? 0, dropped: plain?.dropped ?? 0 }, queued: service?.queuedPackets ?? 0 })
          break
        case 'checkpoints': {
          // memory after every `every` onion packets received (forced GC, so a few ms of the run go to it)
          let next = msg.every
          clearInterval(checkpointTimer)
          checkpointTimer = setInterval(() => {
            const received = service?.stats.received ?? 0
            if (received < next) return
            while (next <= received) next += msg.every
            send({ type: 'checkpoint', received, mem: memory(), replayBytes: keyRing?.replayBytes ?? 0 })
          }, 20)
          break
        }
        case 'cpu': {
          const u = process.cpuUsage(cpuStart.usage)
          const t = process.threadCpuUsage(cpuStart.thread)
          send({ type: 'cpu', userMs: u.user / 1000, systemMs: u.system / 1000, wallMs: performance.now() - cpuStart.at, mainThreadMs: (t.user + t.system) / 1000 })
          cpuStart.usage = process.cpuUsage()
          cpuStart.thread = process.threadCpuUsage()
          cpuStart.at = performance.now()
          break
        }
        case 'arrivals': send({ type: 'arrivals', onion: arrivals.onion, plain: arrivals.plain }); break
        case 'profile-start': forcedGcMs = 0; await profiler.start(); send({ type: 'profile', split: { ms: {}, wallMs: 0, cpuMs: 0, samples: 0, top: [] } }); break
        case 'profile-stop': send({ type: 'profile', split: await profiler.stop(forcedGcMs) }); break
        case 'sphinx-threads':
          if (keyRing == null) throw new Error('only a relay has Sphinx threads')
          await service?.stop()
          service = relayService(node, keyRing, msg.threads)
          await service.start()
          send({ type: 'threads', threads: msg.threads })
          break
        case 'stop':
          clearInterval(checkpointTimer)
          await service?.stop()
          if (chat != null) await chat.stop(); else await node.stop()
          if (dataDir != null) rmSync(dataDir, { recursive: true, force: true })
          send({ type: 'stopped' })
          process.exit(0)
          break
      }
    }
    run().catch((err: Error) => { send({ type: 'error', message: err.message }) })
  })

  send({
    type: 'ready',
    peerId: node.peerId.toString(),
    addrs: node.getMultiaddrs().map(a => a.toString()),
    onionKey: keyRing != null ? Buffer.from(keyRing.current.publicKey).toString('base64') : undefined
  })
}

// only as a forked child: bench/forwarding.ts imports this module's constants, and running main() there
// built a node in the bench's own process from its arguments (`--only=...` made it exit with code 1)
if (import.meta.main) {
  main().catch((err: Error) => {
    send({ type: 'error', message: err.stack ?? err.message })
    process.exit(1)
  })
}
