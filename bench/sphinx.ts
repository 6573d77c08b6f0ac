/**
 * Per-hop cost of processPacket beside the raw node:crypto operations one hop needs, measured in the
 * same run. Prints microseconds (median and p95) and the ratio. Not a test: nothing here asserts on time.
 *
 *   npm run bench:sphinx            (SAMPLES=5000 npm run bench:sphinx for more samples)
 *
 * `npm run bench` (bench/run.ts) calls sphinxBench() for its per-hop row.
 */

import { createCipheriv, createHash, createHmac, createSecretKey, diffieHellman, randomBytes } from 'node:crypto'
import { HEADER_LENGTH, PACKET_SIZE, ROUTING_INFO_LENGTH, SLOT_SIZE } from '../protocols/onion/constants.ts'
import {
  x25519PrivateKeyObject as importPrivateKey, x25519PrivateKeyObjectDer as importPrivateKeyDer,
  x25519PublicKeyObject as importPublicKey, x25519PublicKeyObjectDer as importPublicKeyDer
} from '../protocols/crypto/keys.ts'
import { createPacket, generateOnionKey, onionPrivateKeyFromRaw, processPacket } from '../protocols/onion/sphinx.ts'
import type { OnionPrivateKey } from '../protocols/onion/sphinx.ts'
import { timeSync } from './lib/stats.ts'
import type { Summary } from './lib/stats.ts'

const WARMUP = 300
const HOPS = 4 // the normal path: 3 relays + recipient
const DISTINCT_PACKETS = 200

function peerId (): Uint8Array {
  const id = new Uint8Array(38)
  id.set([0x00, 0x24, 0x08, 0x01, 0x12, 0x20])
  id.set(randomBytes(32), 6)
  return id
}

export interface SphinxRows {
  samples: number
  warmup: number
  hops: number
  distinctPackets: number
  rows: Array<[string, Summary]>
  /** processPacket at a middle (forward) hop */
  middle: Summary
  /** the raw operations of one forward hop, timed as one call */
  rawHop: Summary
  /** the X25519 operations and key imports alone */
  x25519: Summary
}

/** Times processPacket at each hop position and the raw operations one hop needs, `samples` calls each. */
export function sphinxBench (samples: number): SphinxRows {
  const measure = (fn: (i: number) => void): Summary => timeSync(fn, samples, WARMUP)

  // ---- fixtures: packets as they arrive at the first, a middle and the final hop ----
  const hops = Array.from({ length: HOPS }, () => {
    const raw = generateOnionKey()
    return { peerId: peerId(), onionKey: raw.publicKey, key: onionPrivateKeyFromRaw(raw.privateKey) }
  })
  const atHop: Uint8Array[][] = Array.from({ length: HOPS }, () => [])
  for (let p = 0; p < DISTINCT_PACKETS; p++) {
    let packet = createPacket(hops, randomBytes(1800)).packet
    for (let h = 0; h < HOPS; h++) {
      atHop[h].push(packet)
      const r = processPacket(packet, hops[h].key)
      if (!r.ok) throw new Error(`fixture packet dropped at hop ${h}: ${r.reason}`)
      if (r.type === 'forward') packet = r.packet
    }
  }
  const garbage = atHop[1].map((p) => { const g = p.slice(); g[100] ^= 1; return g })
  const hopProcess = (h: number, key: OnionPrivateKey) => (i: number) => { processPacket(atHop[h][i % DISTINCT_PACKETS], key) }

  // ---- the raw operations of one forward hop, same sizes ----
  const relayKey = hops[1].key.privateKey
  const alphas = atHop[1].map((p) => p.slice(1, 33))
  const scalars = Array.from({ length: DISTINCT_PACKETS }, () => randomBytes(32))
  const body = randomBytes(PACKET_SIZE - HEADER_LENGTH - 32) // R of LIONESS
  const beta = randomBytes(ROUTING_INFO_LENGTH + SLOT_SIZE)
  const key32 = randomBytes(32)
  const zeroIv = Buffer.alloc(16)

  const x25519Raw = (i: number) => {
    const alpha = importPublicKey(alphas[i % DISTINCT_PACKETS])
    diffieHellman({ privateKey: relayKey, publicKey: alpha })
    diffieHellman({ privateKey: importPrivateKey(scalars[i % DISTINCT_PACKETS]), publicKey: alpha })
  }
  const x25519Der = (i: number) => {
    const alpha = importPublicKeyDer(alphas[i % DISTINCT_PACKETS])
    diffieHellman({ privateKey: relayKey, publicKey: alpha })
    diffieHellman({ privateKey: importPrivateKeyDer(scalars[i % DISTINCT_PACKETS]), publicKey: alpha })
  }
  const chacha = (data: Uint8Array) => createCipheriv('chacha20', createSecretKey(key32), zeroIv).update(data)
  const chachaOps = () => { // beta stream, LIONESS subkey expansion, two LIONESS rounds
    chacha(beta); chacha(new Uint8Array(128)); chacha(body); chacha(body)
  }
  const hmac = (data: Uint8Array) => createHmac('sha256', createSecretKey(key32)).update(data).digest()
  const hmacOps = () => { // mu, rho, pi, replay, gamma, two LIONESS hashes, blinding hash
    hmac(key32); hmac(key32); hmac(key32); hmac(key32)
    hmac(beta.subarray(0, ROUTING_INFO_LENGTH + 1)); hmac(body); hmac(body)
    createHash('sha256').update(key32).update(key32).digest()
  }
  const rawHop = (i: number) => { x25519Raw(i); chachaOps(); hmacOps() }
  const chachaBufferKey = () => { createCipheriv('chacha20', key32, zeroIv).update(body) }
  const hmacBufferKey = () => { createHmac('sha256', key32).update(key32).digest() }

  // JIT and GC settle after the fixture build before anything is timed.
  for (let i = 0; i < 3 * WARMUP; i++) for (let h = 0; h < HOPS; h++) hopProcess(h, hops[h].key)(i)

  const rows: Array<[string, Summary]> = [
    ['processPacket, first hop (forward)', measure(hopProcess(0, hops[0].key))],
    ['processPacket, middle hop (forward)', measure(hopProcess(1, hops[1].key))],
    [`processPacket, final hop (hop ${HOPS})`, measure(hopProcess(HOPS - 1, hops[HOPS - 1].key))],
    ['processPacket, garbage dropped at the MAC', measure((i) => { processPacket(garbage[i % DISTINCT_PACKETS], hops[1].key) })],
    ['raw: 2 X25519 + alpha import + scalar import', measure(x25519Raw)],
    ['raw: same through DER prefixes', measure(x25519Der)],
    ['raw: 4 ChaCha20 (497 B, 128 B, 2 x 2549 B)', measure(chachaOps)],
    ['raw: 7 HMAC-SHA256 + 1 SHA-256', measure(hmacOps)],
    ['raw: one forward hop, all of the above', measure(rawHop)],
    ['aside: ChaCha20 2549 B, Buffer key', measure(chachaBufferKey)],
    ['aside: HMAC-SHA256 32 B, Buffer key', measure(hmacBufferKey)]
  ]
  return { samples, warmup: WARMUP, hops: HOPS, distinctPackets: DISTINCT_PACKETS, rows, middle: rows[1][1], rawHop: rows[8][1], x25519: rows[4][1] }
}

function main (): void {
  const SAMPLES = Number(process.env.SAMPLES ?? 2000)
  const { rows } = sphinxBench(SAMPLES)
  console.log(`Sphinx per-hop cost, node ${process.version}, ${SAMPLES} timed samples per row after ${WARMUP} warm-up calls, ${DISTINCT_PACKETS} distinct packets, ${HOPS}-hop path, PACKET_SIZE ${PACKET_SIZE}`)
  const width = Math.max(...rows.map(([name]) => name.length))
  console.log(`${'operation'.padEnd(width)}  median us    p95 us`)
  for (const [name, s] of rows) console.log(`${name.padEnd(width)}  ${s.median.toFixed(1).padStart(9)} ${s.p95.toFixed(1).padStart(9)}`)
  const middle = rows[1][1].median
  const raw = rows[8][1].median
  const dh = rows[4][1].median
  console.log(`ratio processPacket (middle hop) / raw hop operations: ${(middle / raw).toFixed(2)} (median)`)
  console.log(`share of the middle hop spent in X25519 and key imports: ${(100 * dh / middle).toFixed(0)}%`)
  console.log(`throughput at the median: ~${Math.round(1e6 / middle)} forward hops/s per core`)
}

if (import.meta.main) main()
