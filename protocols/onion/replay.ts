/**
 * The replay cache of one onion-key epoch: a Bloom filter over replay tags (SPEC.md, "Replay tag").
 *
 * A relay must drop a packet whose replay tag it has seen under the same key. A set of tags grows
 * with traffic; a Bloom filter has a fixed size from the start, so memory stays flat however many
 * packets pass. Its cost is a false positive now and then: with `bitsPerEntry` = 32 and 16 probes
 * the chance that a fresh packet is taken for a replay stays below 4e-7 until `capacity` packets
 * (Nym's mix nodes use a Bloom filter per key rotation the same way). When the filter reaches its
 * capacity the key ring rotates early, so the false-positive rate never climbs past that bound.
 *
 * Replay tags are HMAC-SHA256 outputs, uniformly random to anyone without the relay's key, so the
 * probe positions come from the tag's own bytes by double hashing (Kirsch & Mitzenmacher 2006).
 */
export const DEFAULT_REPLAY_CAPACITY = 1_000_000
export const BITS_PER_ENTRY = 32
export const PROBES = 16

export class ReplayFilter {
  readonly capacity: number
  private readonly bits: Uint8Array
  private readonly mask: number
  private entries = 0

  constructor (capacity = DEFAULT_REPLAY_CAPACITY) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('replay capacity must be a positive integer')
    this.capacity = capacity
    // a power of two no smaller than capacity * BITS_PER_ENTRY, so positions are a mask away
    let size = 1024
    while (size < capacity * BITS_PER_ENTRY) size *= 2
    this.bits = new Uint8Array(size / 8)
    this.mask = size - 1
  }

  /** How many tags were added. */
  get size (): number { return this.entries }
  get full (): boolean { return this.entries >= this.capacity }
  /** Bytes held by the filter: fixed at construction. */
  get byteLength (): number { return this.bits.byteLength }

  /**
   * Records `tag` and says whether it was (probably) seen before. `tag` is at least 16 bytes.
   */
  checkAndAdd (tag: Uint8Array): boolean {
    if (tag.length < 16) throw new RangeError('replay tag too short')
    const view = new DataView(tag.buffer, tag.byteOffset, 16)
    const h1 = view.getUint32(0) ^ view.getUint32(8)
    const h2 = (view.getUint32(4) ^ view.getUint32(12)) | 1
    let seen = true
    for (let i = 0; i < PROBES; i++) {
      const bit = (h1 + Math.imul(i, h2)) & this.mask
      const byte = bit >>> 3
      const flag = 1 << (bit & 7)
      if ((this.bits[byte] & flag) === 0) {
        seen = false
        this.bits[byte] |= flag
      }
    }
    if (!seen) this.entries++
    return seen
  }
}
