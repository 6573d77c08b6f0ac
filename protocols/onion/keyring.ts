/**
 * A relay's onion keys by epoch. Each epoch has its own X25519 key and its own replay filter, so the
 * replay cache is bounded: when an epoch's key is retired its filter goes with it, and a packet built
 * to a retired key can no longer be processed at all.
 *
 * Schedule: the key of epoch n is valid in [start_n, start_n + epochMs). The relay publishes the
 * next epoch's key ahead of the switch (its descriptor lists current and next), and after the switch
 * still accepts the previous key for `graceMs` (packets already built or in flight). A filter that
 * reaches its capacity ends its epoch early.
 *
 * Keys live only in memory: a restarted relay starts a new epoch with new keys, which also means no
 * packet from before the restart can be replayed to it.
 */
import { generateOnionKey, onionPrivateKeyFromRaw } from './sphinx.ts'
import type { OnionPrivateKey } from './sphinx.ts'
import { ReplayFilter, DEFAULT_REPLAY_CAPACITY } from './replay.ts'

export const DEFAULT_EPOCH_MS = 3600_000
export const DEFAULT_GRACE_MS = 10 * 60_000

export interface EpochKey {
  epoch: number
  publicKey: Uint8Array
  key: OnionPrivateKey
  notBefore: number
  notAfter: number
  filter: ReplayFilter
}

export interface KeyRingInit {
  epochMs?: number
  graceMs?: number
  replayCapacity?: number
  now?: () => number
}

export class OnionKeyRing {
  private readonly epochMs: number
  private readonly graceMs: number
  private readonly replayCapacity: number
  private readonly now: () => number
  private nextEpoch = 1
  current: EpochKey
  next: EpochKey
  previous: EpochKey | undefined
  /** Called after each rotation (publish the new descriptor). */
  onRotate: (() => void) | undefined

  constructor (init: KeyRingInit = {}) {
    this.epochMs = init.epochMs ?? DEFAULT_EPOCH_MS
    this.graceMs = init.graceMs ?? DEFAULT_GRACE_MS
    this.replayCapacity = init.replayCapacity ?? DEFAULT_REPLAY_CAPACITY
    this.now = init.now ?? Date.now
    const start = this.now()
    this.current = this.make(start)
    this.next = this.make(this.current.notAfter)
  }

  private make (start: number): EpochKey {
    const { publicKey, privateKey } = generateOnionKey()
    return {
      epoch: this.nextEpoch++,
      publicKey,
      key: onionPrivateKeyFromRaw(privateKey),
      notBefore: start,
      notAfter: start + this.epochMs,
      filter: new ReplayFilter(this.replayCapacity)
    }
  }

  /** Rotates when the current epoch is over or its replay filter is full; drops an expired previous key. */
  tick (): boolean {
    const now = this.now()
    if (this.previous != null && now >= this.previous.notAfter + this.graceMs) this.previous = undefined
    if (now < this.current.notAfter && !this.current.filter.full) return false
    this.previous = this.current
    this.previous.notAfter = Math.min(this.previous.notAfter, now)
    this.current = this.next
    this.current.notBefore = now
    this.current.notAfter = now + this.epochMs
    this.next = this.make(this.current.notAfter)
    this.onRotate?.()
    return true
  }

  /** Keys to try for an incoming packet, most likely first. */
  candidates (): EpochKey[] {
    return this.previous != null ? [this.current, this.previous, this.next] : [this.current, this.next]
  }

  /** The entries a relay descriptor advertises: the current key and the next one. */
  descriptorKeys (): Array<{ epoch: number, notBefore: number, notAfter: number, key: Uint8Array }> {
    return [this.current, this.next].map(k => ({ epoch: k.epoch, notBefore: k.notBefore, notAfter: k.notAfter, key: k.publicKey }))
  }

  /** Bytes of replay state held now (bounded: at most three filters). */
  get replayBytes (): number {
    return this.candidates().reduce((n, k) => n + k.filter.byteLength, 0)
  }
}
