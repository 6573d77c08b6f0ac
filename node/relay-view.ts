/**
 * A view computed from the live relay list (the relays to build paths from, after admission), kept
 * until the list changes or it is `maxAgeMs` old.
 *
 * Admission (protocols/onion/admission.ts `judgeRelays`) counts every attester's vote on every relay:
 * O(relays²) work that ran again on every send, reply block and cover packet (~0.25 ms with 5 relays,
 * issue 13; it grows with the square of the network). Its input changes only when a descriptor does
 * (a relay heard anew with another record, one gone, expired, or found dead: each is another list of
 * record objects, compared by identity) or with the clock (a relay ages into admission, and out of
 * freshness when it stops announcing): hence the age bound.
 */
import type { KnownRelay } from '../protocols/onion/relay-directory.ts'
import type { SignedRecord } from '../protocols/directory/record.ts'

export class RelayView<T> {
  readonly #maxAgeMs: number
  readonly #compute: (relays: KnownRelay[], now: number) => T[]
  #from: SignedRecord[] = []
  #at = 0
  #value: T[] | undefined
  /** computations so far (tests) */
  computed = 0

  constructor (maxAgeMs: number, compute: (relays: KnownRelay[], now: number) => T[]) {
    this.#maxAgeMs = maxAgeMs
    this.#compute = compute
  }

  /** The view of `relays` (a copy: callers may reorder it). */
  get (relays: KnownRelay[], now = Date.now()): T[] {
    const v = this.#value
    if (v != null && now >= this.#at && now - this.#at < this.#maxAgeMs && this.#same(relays)) return v.slice()
    const value = this.#compute(relays, now)
    this.computed++
    this.#value = value
    this.#from = relays.map(r => r.record)
    this.#at = now
    return value.slice()
  }

  #same (relays: KnownRelay[]): boolean {
    if (relays.length !== this.#from.length) return false
    for (let i = 0; i < relays.length; i++) if (relays[i].record !== this.#from[i]) return false
    return true
  }
}
