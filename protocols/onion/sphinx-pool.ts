/**
 * Sphinx unwrapping on worker threads (node:worker_threads), for relays: the main thread keeps the
 * network stack (Noise, Yamux, TCP), the replay filters and the queues; workers run processPacket.
 *
 * Batches: the packets submitted in one event-loop turn go to one worker in one message: a single
 * ArrayBuffer of count * PACKET_SIZE bytes, transferred (not copied), with the raw 32-byte scalars of
 * the candidate keys (the key ring's current, previous, next; the same order as the relay tries them).
 * The worker answers with one result per packet, in order; forwarded packets are views into one
 * transferred ArrayBuffer. A batch holds at most MAX_BATCH packets; the least busy worker gets it.
 *
 * Bounded: at most `maxQueued` packets are submitted and not yet answered; submit() refuses more
 * (returns false) and counts it, so the caller drops the packet (counted) instead of memory growing.
 * The relay pauses its inbound streams well before that (relay.ts, backpressure).
 *
 * What is NOT done here: the replay check. A worker returns the replay tag and which candidate key
 * opened the packet; the caller checks the tag against that key's filter on the main thread, the one
 * place a tag is checked (relay.ts, accept()), whether the packet was peeled here or inline.
 *
 * Order: packets of different batches may complete out of order (a mix does not promise order).
 * A worker that dies is replaced; its batch in flight is answered as 'internal' drops.
 *
 * Failing workers: a worker says `{ ready: true }` once its modules are loaded. One that exits before
 * that (its script missing or failing to load: a broken install, a bundle without the worker file,
 * the OS refusing a thread) is not replaced (`startFailures`), nor is one that dies when
 * MAX_RESTARTS_PER_MINUTE others died in the last minute: no respawn loop. With no worker left,
 * packets are peeled on the calling thread, synchronously in submit() (`inline`), so the relay keeps
 * relaying; `threads` counts the workers alive.
 */
import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { PACKET_SIZE } from './constants.ts'
import { processPacket } from './sphinx.ts'
import type { OnionPrivateKey, ProcessResult } from './sphinx.ts'

/** Workers replaced within a minute before a dying one is no longer replaced (a crash loop). */
export const MAX_RESTARTS_PER_MINUTE = 5

/** Most packets in one message to a worker: 64 * 3 KiB = 192 KiB, a few ms of work, so workers stay balanced. */
export const MAX_BATCH = 64
/** Packets submitted and not yet answered, by default: ~3 MiB of packets, ~0.1 s of work for two workers. */
export const DEFAULT_MAX_QUEUED = 1024

/** The OS name of a pool's threads (/proc/<pid>/task/<tid>/comm; at most 15 bytes): tests count them. */
export const WORKER_THREAD_NAME = 'p2pchat-sphinx'
/** Most worker threads a relay may ask for: a few per core is already past any gain; a typo must not spawn thousands. */
export const MAX_SPHINX_THREADS = 64

/**
 * Worker threads for a relay started from the CLI (`p2pchat start --relay`, `--sphinx-threads`), 2 on
 * any machine with 2 or more cores, 0 (Sphinx on the main thread) on one core. Why 2: measured on the
 * project's 2-core machine, quiet (issue 13, `node bench/run.ts --only=forwarding`): a relay forwarded
 * 7,510 packets/s with Sphinx on 2 worker threads vs 6,040/s on its main thread in the same run (1.37x);
 * the main thread then spends ~8-9 us per packet on Sphinx instead of ~125 us and keeps the network
 * stack. Not more on bigger machines: only 0 and 2 were measured, on 2 cores (pass --sphinx-threads
 * to try more); on one core a worker would add only the thread hop. The price is memory: each worker
 * is a V8 isolate with its own copy of the Sphinx modules: 2 workers added 38-39 MiB RSS to a process
 * in the compiled install (dist/, as npm pack builds it) and 85-87 MiB run from the sources (Node's
 * TypeScript stripper loads in each), so an operator short of memory passes 0 or 1. In-process relays (tests, the demo, benches) keep RelayNode's default of 0.
 */
export function defaultRelaySphinxThreads (cores: number = availableParallelism()): number {
  return cores >= 2 ? 2 : 0
}

/** A key as the worker gets it: the raw scalar (the public key is not needed to peel). */
export type PoolKey = Pick<OnionPrivateKey, 'scalar'>

/**
 * Peels `packet` with each candidate key in turn until one opens it; the index of that key, or -1
 * with the last failure. A wrong size, version or point fails the same under every key, so it stops
 * there. Shared by the relay's inline path and the workers.
 */
export function peelWithKeys (packet: Uint8Array, keys: readonly OnionPrivateKey[]): { result: ProcessResult, index: number } {
  let result: ProcessResult = { ok: false, reason: 'mac' }
  for (let i = 0; i < keys.length; i++) {
    result = processPacket(packet, keys[i])
    if (result.ok) return { result, index: i }
    if (result.reason === 'size' || result.reason === 'version' || result.reason === 'bad-point') break
  }
  return { result, index: -1 }
}

/** The message a worker receives. */
export interface PoolRequest { id: number, packets: ArrayBuffer, count: number, keys: Uint8Array[] }
/** The worker's answer: results[i] for packet i, with the index of the key that opened it (-1: none). */
export interface PoolResponse { id: number, results: Array<{ result: ProcessResult, index: number }> }
/** A worker's first message: its modules are loaded. */
export interface PoolReady { ready: true }

export interface SphinxPoolInit<T> {
  /** worker threads (>= 1) */
  threads: number
  maxQueued?: number
  /** each submitted packet's outcome, with the context it was submitted with; never for a refused one */
  onResult: (result: ProcessResult, index: number, context: T) => void
  /** the worker script (tests); default ./sphinx-worker.ts beside this file */
  workerUrl?: URL
}

export interface SphinxPoolStats {
  /** workers alive now (0 after close(), or when every worker failed: then packets are peeled inline) */
  threads: number
  /** packets submitted and not yet answered */
  queued: number
  /** packets answered */
  completed: number
  /** packets refused because `maxQueued` were queued */
  refused: number
  /** workers that died and were replaced */
  restarts: number
  /** workers that exited before they were ready (not replaced) */
  startFailures: number
  /** packets peeled on the calling thread because no worker was left */
  inline: number
}

interface Pending<T> { packets: Uint8Array, count: number, contexts: T[], keys: readonly OnionPrivateKey[] }
interface Slot<T> { worker: Worker, inFlight: Map<number, Pending<T>>, packets: number, ready: boolean }

const DIED: ProcessResult = Object.freeze({ ok: false, reason: 'internal' }) as ProcessResult

export class SphinxPool<T> {
  readonly stats: SphinxPoolStats
  private readonly maxQueued: number
  private readonly onResult: SphinxPoolInit<T>['onResult']
  private readonly workerUrl: URL
  private readonly slots: Array<Slot<T>> = []
  private batch: Pending<T> | undefined
  private flushScheduled = false
  private nextId = 1
  private closed = false
  /** when recent workers were replaced (ms), for MAX_RESTARTS_PER_MINUTE */
  private restartTimes: number[] = []

  constructor (init: SphinxPoolInit<T>) {
    if (!Number.isInteger(init.threads) || init.threads < 1) throw new RangeError('a Sphinx pool needs at least one thread')
    this.maxQueued = init.maxQueued ?? DEFAULT_MAX_QUEUED
    if (!Number.isInteger(this.maxQueued) || this.maxQueued < 1) throw new RangeError('maxQueued must be a positive integer')
    this.onResult = init.onResult
    // sources run as .ts (type stripping), an installed package as compiled .js
    this.workerUrl = init.workerUrl ?? new URL(import.meta.url.endsWith('.ts') ? './sphinx-worker.ts' : './sphinx-worker.js', import.meta.url)
    this.stats = { threads: init.threads, queued: 0, completed: 0, refused: 0, restarts: 0, startFailures: 0, inline: 0 }
    for (let i = 0; i < init.threads; i++) {
      const slot = this.spawn()
      if (slot != null) this.slots.push(slot)
    }
    this.stats.threads = this.slots.length
  }

  /**
   * Queues `packet` (copied: the caller keeps its buffer) to be peeled with `keys`; false when the pool
   * is full or closed (counted in stats.refused; the caller drops the packet).
   */
  submit (packet: Uint8Array, keys: readonly OnionPrivateKey[], context: T): boolean {
    if (this.closed || this.stats.queued >= this.maxQueued) { this.stats.refused++; return false }
    if (packet.length !== PACKET_SIZE) {
      // never worth a thread hop: the answer is known here
      this.stats.completed++
      this.onResult(peelWithKeys(packet, keys).result, -1, context)
      return true
    }
    if (this.slots.length === 0) {
      // every worker failed: peel here rather than drop everything
      const { result, index } = peelWithKeys(packet, keys)
      this.stats.completed++
      this.stats.inline++
      this.onResult(result, index, context)
      return true
    }
    let b = this.batch
    if (b != null && b.keys !== keys && !sameKeys(b.keys, keys)) { this.flush(); b = undefined }
    if (b == null) {
      b = { packets: new Uint8Array(MAX_BATCH * PACKET_SIZE), count: 0, contexts: [], keys }
      this.batch = b
    }
    b.packets.set(packet, b.count * PACKET_SIZE)
    b.contexts.push(context)
    b.count++
    this.stats.queued++
    if (b.count === MAX_BATCH) this.flush()
    else if (!this.flushScheduled) {
      // everything read in this turn goes in the same message
      this.flushScheduled = true
      setImmediate(() => { this.flushScheduled = false; this.flush() })
    }
    return true
  }

  private flush (): void {
    const b = this.batch
    this.batch = undefined
    if (b == null || b.count === 0) return
    if (this.slots.length === 0) {
      // the last worker failed while this batch was gathered: peel it here
      for (let i = 0; i < b.count; i++) {
        const { result, index } = peelWithKeys(b.packets.subarray(i * PACKET_SIZE, (i + 1) * PACKET_SIZE), b.keys)
        this.stats.queued--
        this.stats.completed++
        this.stats.inline++
        this.onResult(result, index, b.contexts[i])
      }
      return
    }
    let slot = this.slots[0]
    for (const s of this.slots) if (s.packets < slot.packets) slot = s
    const id = this.nextId++
    slot.inFlight.set(id, b)
    slot.packets += b.count
    const buffer = b.packets.buffer as ArrayBuffer
    const request: PoolRequest = { id, packets: buffer, count: b.count, keys: b.keys.map(k => k.scalar) }
    slot.worker.postMessage(request, [buffer])
  }

  /** A new worker, or undefined (counted in startFailures) when the thread cannot even be created. */
  private spawn (): Slot<T> | undefined {
    let worker: Worker
    try {
      worker = new Worker(this.workerUrl, { name: WORKER_THREAD_NAME })
    } catch {
      this.stats.startFailures++
      return undefined
    }
    const slot: Slot<T> = { worker, inFlight: new Map(), packets: 0, ready: false }
    // a worker never keeps the process alive: a relay that stops has nothing left for it
    worker.unref()
    worker.on('message', (msg: PoolResponse | PoolReady) => {
      if ('ready' in msg) slot.ready = true
      else this.answer(slot, msg)
    })
    worker.on('error', () => { /* 'exit' follows */ })
    worker.on('exit', () => { this.died(slot) })
    return slot
  }

  private answer (slot: Slot<T>, msg: PoolResponse): void {
    const pending = slot.inFlight.get(msg.id)
    if (pending == null) return
    slot.inFlight.delete(msg.id)
    slot.packets -= pending.count
    this.stats.queued -= pending.count
    for (let i = 0; i < pending.count; i++) {
      const r = msg.results[i]
      this.stats.completed++
      this.onResult(r?.result ?? DIED, r?.index ?? -1, pending.contexts[i])
    }
  }

  private died (slot: Slot<T>): void {
    const at = this.slots.indexOf(slot)
    if (at < 0) return
    for (const pending of slot.inFlight.values()) {
      this.stats.queued -= pending.count
      for (const c of pending.contexts) { this.stats.completed++; this.onResult(DIED, -1, c) }
    }
    slot.inFlight.clear()
    slot.packets = 0
    if (this.closed) { this.slots.splice(at, 1); return }
    const now = Date.now()
    this.restartTimes = this.restartTimes.filter(t => now - t < 60_000)
    if (!slot.ready || this.restartTimes.length >= MAX_RESTARTS_PER_MINUTE) {
      // it could not start, or workers keep dying: not replaced (no respawn loop); with none left,
      // submit() and flush() peel on this thread
      if (!slot.ready) this.stats.startFailures++
      this.slots.splice(at, 1)
      this.stats.threads = this.slots.length
      return
    }
    this.restartTimes.push(now)
    this.stats.restarts++
    const next = this.spawn()
    if (next != null) this.slots[at] = next
    else this.slots.splice(at, 1)
    this.stats.threads = this.slots.length
  }

  /** Worker threads alive (tests: 0 after close()). */
  get threads (): number { return this.closed ? 0 : this.slots.length }

  /**
   * Stops the workers. Packets queued or in flight are answered as 'internal' drops with their
   * contexts, unless `quiet` (the caller counts them itself).
   */
  async close (): Promise<number> {
    if (this.closed) return 0
    this.closed = true
    let lost = 0
    const b = this.batch
    this.batch = undefined
    const answer = (contexts: T[]): void => { for (const c of contexts) { lost++; this.stats.completed++; this.onResult(DIED, -1, c) } }
    if (b != null) { this.stats.queued -= b.count; answer(b.contexts) }
    const slots = this.slots.splice(0)
    this.stats.threads = 0
    for (const s of slots) {
      for (const p of s.inFlight.values()) { this.stats.queued -= p.count; answer(p.contexts) }
      s.inFlight.clear()
    }
    await Promise.all(slots.map(async s => await s.worker.terminate()))
    return lost
  }
}

function sameKeys (a: readonly OnionPrivateKey[], b: readonly OnionPrivateKey[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}
