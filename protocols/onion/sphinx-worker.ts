/**
 * A Sphinx pool worker (sphinx-pool.ts): peels each packet of a batch with the batch's candidate keys
 * and answers with one result per packet, in order. Forwarded packets are copied into one ArrayBuffer
 * that is transferred back; the request's buffer is reused for them (same size), so a batch costs no
 * allocation beyond the results. Never throws on a packet: processPacket does not.
 *
 * Memory: each worker loads only what peeling needs (sphinx.ts no longer re-exports address.ts, whose
 * libp2p peer-id and multiformats modules a worker never uses: ~5-10 MiB of RSS per worker, measured
 * from the sources; the spread of those runs was about as large).
 */
import { parentPort } from 'node:worker_threads'
import { PACKET_SIZE } from './constants.ts'
import { onionPrivateKeyFromRaw } from './keys.ts'
import type { OnionPrivateKey } from './keys.ts'
import { peelWithKeys } from './sphinx-pool.ts'
import type { PoolReady, PoolRequest, PoolResponse } from './sphinx-pool.ts'

/** Keys seen lately, so a key's public half is derived once per epoch, not per batch (a ring holds 3). */
const keyCache: OnionPrivateKey[] = []
const KEY_CACHE = 8

function keyOf (scalar: Uint8Array): OnionPrivateKey {
  const wanted = Buffer.from(scalar.buffer, scalar.byteOffset, scalar.byteLength)
  for (const k of keyCache) if (wanted.equals(k.scalar)) return k
  const key = onionPrivateKeyFromRaw(scalar)
  keyCache.unshift(key)
  if (keyCache.length > KEY_CACHE) keyCache.length = KEY_CACHE
  return key
}

parentPort?.on('message', (req: PoolRequest) => {
  const keys = req.keys.map(keyOf)
  const packets = new Uint8Array(req.packets)
  const out = new Uint8Array(req.count * PACKET_SIZE)
  const results: PoolResponse['results'] = []
  for (let i = 0; i < req.count; i++) {
    const r = peelWithKeys(packets.subarray(i * PACKET_SIZE, (i + 1) * PACKET_SIZE), keys)
    if (r.result.ok && r.result.type === 'forward') {
      const at = out.subarray(i * PACKET_SIZE, (i + 1) * PACKET_SIZE)
      at.set(r.result.packet)
      results.push({ result: { ...r.result, packet: at }, index: r.index })
    } else {
      results.push(r)
    }
  }
  const msg: PoolResponse = { id: req.id, results }
  parentPort?.postMessage(msg, [out.buffer])
})

// every module above is loaded: the pool may count on this worker (a worker that exits before this
// message is not replaced)
const ready: PoolReady = { ready: true }
parentPort?.postMessage(ready)
