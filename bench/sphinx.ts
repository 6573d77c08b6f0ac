/**
 * Per-hop cost of processPacket (Sphinx version 2) beside the raw operations one hop needs, on the
 * same primitives (libsodium X25519 and ChaCha20, the precomputed-pad HMAC of protocols/onion/keys.ts),
 * measured in the same run; then each step of a middle hop alone, and the node:crypto routes version 1
 * used, for the choice of primitives. Prints microseconds (median and p95) and the ratio. Not a test:
 * nothing here asserts on time.
 *
 *   npm run bench:sphinx            (SAMPLES=5000 npm run bench:sphinx for more samples)
 *
 * `npm run bench` (bench/run.ts) calls sphinxBench() for its per-hop row.
 */

import { createCipheriv, createHmac, createPrivateKey, createPublicKey, createSecretKey, diffieHellman, randomBytes, sign, verify } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { BODY_LENGTH, PACKET_SIZE, PACKET_VERSION, ROUTING_INFO_LENGTH, SLOT_SIZE } from '../protocols/onion/constants.ts'
import { ed25519PrivateKeyObject, ed25519PublicKeyObject, ed25519SignerFromSeed, ed25519Verify, generateEd25519Seed, x25519Raw } from '../protocols/crypto/keys.ts'
import { chacha20, deriveKey, hmacSha256, sha256 } from '../protocols/onion/keys.ts'
import { lionessDecrypt, lionessKey } from '../protocols/onion/lioness.ts'
import { createPacket, createSurb, generateOnionKey, onionPrivateKeyFromRaw, openReply, packetFromSurb, processPacket } from '../protocols/onion/sphinx.ts'
import type { OnionPrivateKey } from '../protocols/onion/sphinx.ts'
import { seal, unseal } from '../protocols/chat/seal.ts'
import { timeSync } from './lib/stats.ts'
import type { Summary } from './lib/stats.ts'

const WARMUP = 300
const HOPS = 4 // a reply block's path, the longest normal one: 3 relays + its creator
const DISTINCT_PACKETS = 200
/** LIONESS's R half of a body. */
const BODY_RIGHT = BODY_LENGTH - 32

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
  /** the two X25519 operations alone */
  x25519: Summary
}

/** Times processPacket at each hop position, the raw operations one hop needs and each step, `samples` calls each. */
export function sphinxBench (samples: number): SphinxRows {
  const measure = (fn: (i: number) => void): Summary => timeSync(fn, samples, WARMUP)

  // ---- fixtures: packets as they arrive at the first, a middle and the final hop ----
  const hops = Array.from({ length: HOPS }, () => {
    const raw = generateOnionKey()
    return { address: new Uint8Array(randomBytes(32)), onionKey: raw.publicKey, key: onionPrivateKeyFromRaw(raw.privateKey), raw: raw.privateKey }
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

  // ---- the raw operations of one forward hop, same sizes, same primitives ----
  const scalar = hops[1].key.scalar
  const alphas = atHop[1].map((p) => p.slice(1, 33))
  const secret = new Uint8Array(32)
  const key = new Uint8Array(32)
  const mac = new Uint8Array(32)
  const blindInput = new Uint8Array(64)
  const blinder = new Uint8Array(32)
  const nextAlpha = new Uint8Array(32)
  const beta = new Uint8Array(randomBytes(ROUTING_INFO_LENGTH))
  const routing = new Uint8Array(ROUTING_INFO_LENGTH + SLOT_SIZE)
  const subkeys = new Uint8Array(128)
  const body = new Uint8Array(randomBytes(BODY_LENGTH))
  const right = new Uint8Array(randomBytes(BODY_RIGHT))
  const bodyOut = new Uint8Array(BODY_LENGTH)
  const zeros128 = new Uint8Array(128)

  const x25519Ops = (i: number) => {
    const alpha = alphas[i % DISTINCT_PACKETS]
    x25519Raw(scalar, alpha, secret)
    blindInput.set(secret, 32)
    x25519Raw(sha256(blindInput, blinder), alpha, nextAlpha)
  }
  const chachaOps = () => { // beta stream, LIONESS subkey expansion, two LIONESS stream rounds
    chacha20(key, routing, routing); chacha20(key, zeros128, subkeys); chacha20(key, right, right); chacha20(key, right, right)
  }
  const hmacOps = () => { // mu, rho, pi, replay, gamma, two LIONESS hashes, blinding hash
    deriveKey('mu', secret, key); deriveKey('rho', secret, key); deriveKey('pi', secret, key); deriveKey('replay', secret)
    hmacSha256(key, beta, mac, PACKET_VERSION); hmacSha256(key, right, mac); hmacSha256(key, right, mac)
    sha256(blindInput, blinder)
  }
  const allocOut = () => { new Uint8Array(PACKET_SIZE) } // as processPacket does
  const rawHop = (i: number) => { x25519Ops(i); chachaOps(); hmacOps(); allocOut() }

  // ---- each step of a middle hop, in processPacket's order ----
  const stepSecret = (i: number) => { x25519Raw(scalar, alphas[i % DISTINCT_PACKETS], secret) }
  const stepMac = () => { hmacSha256(deriveKey('mu', secret, key), beta, mac, PACKET_VERSION) }
  const stepRouting = () => { routing.set(beta); routing.fill(0, ROUTING_INFO_LENGTH); chacha20(deriveKey('rho', secret, key), routing, routing) }
  const stepKeys = () => { deriveKey('replay', secret); lionessKey(deriveKey('pi', secret, key), subkeys) }
  const stepBlind = (i: number) => {
    const alpha = alphas[i % DISTINCT_PACKETS]
    blindInput.set(alpha, 0); blindInput.set(secret, 32)
    x25519Raw(sha256(blindInput, blinder), alpha, nextAlpha)
  }
  const stepBody = () => { lionessDecrypt(subkeys, body, bodyOut) }

  // ---- the node:crypto routes of version 1, for the choice ----
  const quiet = <T>(f: () => T): T => { const limit = Error.stackTraceLimit; Error.stackTraceLimit = 0; try { return f() } finally { Error.stackTraceLimit = limit } }
  const relayKeyObject = createPrivateKey({ key: Buffer.from(hops[1].raw), format: 'raw-private', asymmetricKeyType: 'x25519' })
  const scalars = Array.from({ length: DISTINCT_PACKETS }, () => randomBytes(32))
  const nodeX25519 = (i: number) => {
    const alpha = quiet(() => createPublicKey({ key: Buffer.from(alphas[i % DISTINCT_PACKETS]), format: 'raw-public', asymmetricKeyType: 'x25519' }))
    diffieHellman({ privateKey: relayKeyObject, publicKey: alpha })
    const b: KeyObject = quiet(() => createPrivateKey({ key: scalars[i % DISTINCT_PACKETS], format: 'raw-private', asymmetricKeyType: 'x25519' }))
    diffieHellman({ privateKey: b, publicKey: alpha })
  }
  const alphaKeys = alphas.map((a) => createPublicKey({ key: Buffer.from(a), format: 'raw-public', asymmetricKeyType: 'x25519' }))
  const labelKey = createSecretKey(Buffer.from('mu'))
  const zeroIv = Buffer.alloc(16)
  const key32 = randomBytes(32)

  // ---- the sender's and the reply block creator's side (issue 13 item 3: what precomputing could save) ----
  const payload = new Uint8Array(randomBytes(1800))
  const surbs = Array.from({ length: DISTINCT_PACKETS }, () => createSurb(hops))
  const replies = surbs.map(({ surb, secret }) => {
    let packet = packetFromSurb(surb, payload).packet
    for (let h = 0; h < HOPS; h++) {
      const r = processPacket(packet, hops[h].key)
      if (!r.ok) throw new Error(`fixture reply dropped at hop ${h}: ${r.reason}`)
      if (r.type === 'final') return { body: r.payload, secret }
      packet = r.packet
    }
    throw new Error('fixture reply never reached its creator')
  })

  // ---- Ed25519, on every message, receipt and directory record (protocols/crypto/keys.ts) ----
  const edSeed = generateEd25519Seed()
  const edSigner = ed25519SignerFromSeed(edSeed)
  const edKeyObject = ed25519PrivateKeyObject(edSeed)
  const edMessage = new Uint8Array(randomBytes(300))
  const edSignature = edSigner.sign(edMessage)
  // the end-to-end seal of a chat message (protocols/chat/seal.ts): one per message sent and received
  const sealKey = generateOnionKey()
  const sealText = new Uint8Array(randomBytes(1200))
  const sealed = seal(sealText, sealKey.publicKey, 1)

  // JIT and GC settle after the fixture build before anything is timed.
  for (let i = 0; i < 3 * WARMUP; i++) for (let h = 0; h < HOPS; h++) hopProcess(h, hops[h].key)(i)

  const rows: Array<[string, Summary]> = [
    ['processPacket, first hop (forward)', measure(hopProcess(0, hops[0].key))],
    ['processPacket, middle hop (forward)', measure(hopProcess(1, hops[1].key))],
    [`processPacket, final hop (hop ${HOPS})`, measure(hopProcess(HOPS - 1, hops[HOPS - 1].key))],
    ['processPacket, garbage dropped at the MAC', measure((i) => { processPacket(garbage[i % DISTINCT_PACKETS], hops[1].key) })],
    ['raw: 2 X25519 (libsodium, raw bytes)', measure(x25519Ops)],
    ['raw: 4 ChaCha20 (480 B, 128 B, 2 x 2575 B)', measure(chachaOps)],
    ['raw: 7 HMAC-SHA256 + 1 SHA-256', measure(hmacOps)],
    ['raw: output packet allocation (3072 B)', measure(allocOut)],
    ['raw: one forward hop, all of the above', measure(rawHop)],
    ['step 1: X25519 shared secret', measure(stepSecret)],
    ['step 2: key_mu + gamma HMAC (400 B + version)', measure(stepMac)],
    ['step 3: key_rho + ChaCha20 over beta | 0^80', measure(stepRouting)],
    ['step 4: replay tag + key_pi + LIONESS subkeys', measure(stepKeys)],
    ['step 5: blinding SHA-256 + X25519', measure(stepBlind)],
    ['step 6: LIONESS decrypt (2607 B)', measure(stepBody)],
    [`sender: createPacket (${HOPS} hops, 1800 B payload)`, measure(() => { createPacket(hops, payload) })],
    [`sender: createSurb (${HOPS} hops)`, measure(() => { createSurb(hops) })],
    // as a client builds its blocks (protocols/onion/client.ts): its own key for the last hop, same bytes
    [`sender: createSurb (${HOPS} hops), creator's own key for the last hop`, measure(() => { createSurb(hops, undefined, hops[HOPS - 1].key) })],
    ['replier: packetFromSurb (1800 B payload)', measure((i) => { packetFromSurb(surbs[i % DISTINCT_PACKETS].surb, payload) })],
    [`creator: openReply (${HOPS} layers)`, measure((i) => { const r = replies[i % DISTINCT_PACKETS]; openReply(r.body, r.secret) })],
    ['seal 1200 B (chat/seal.ts: 2 X25519 libsodium, HKDF, ChaCha20-Poly1305)', measure(() => { seal(sealText, sealKey.publicKey, 1) })],
    ['unseal 1200 B', measure(() => { if (!unseal(sealed, () => sealKey.privateKey).ok) throw new Error('the bench seal did not open') })],
    ['Ed25519 sign 300 B (libsodium, raw seed)', measure(() => { edSigner.sign(edMessage) })],
    ['Ed25519 sign 300 B (node:crypto, KeyObject made once)', measure(() => { sign(null, edMessage, edKeyObject) })],
    ['Ed25519 verify 300 B (libsodium, raw key)', measure(() => { ed25519Verify(edSigner.publicKey, edMessage, edSignature) })],
    ['Ed25519 verify 300 B (node:crypto, key imported per call)', measure(() => { verify(null, edMessage, ed25519PublicKeyObject(edSigner.publicKey), edSignature) })],
    ['v1 route: 2 X25519 via node:crypto key imports', measure(nodeX25519)],
    ['node:crypto: 1 X25519, both keys imported beforehand (its floor)', measure((i) => { diffieHellman({ privateKey: relayKeyObject, publicKey: alphaKeys[i % DISTINCT_PACKETS] }) })],
    // what a relay on node:crypto would pay for step 1: its key imported once, each packet's alpha per packet
    ['node:crypto: 1 X25519, relay key once, alpha imported per packet', measure((i) => {
      diffieHellman({ privateKey: relayKeyObject, publicKey: createPublicKey({ key: Buffer.from(alphas[i % DISTINCT_PACKETS]), format: 'raw-public', asymmetricKeyType: 'x25519' }) })
    })],
    ['libsodium: 1 X25519 (crypto_scalarmult, raw bytes)', measure(stepSecret)],
    ['v1 route: ChaCha20 2575 B, createCipheriv + KeyObject', measure(() => { createCipheriv('chacha20', createSecretKey(key32), zeroIv).update(right) })],
    ['v1 route: HMAC-SHA256 2575 B, createHmac + KeyObject', measure(() => { createHmac('sha256', createSecretKey(key32)).update(right).digest() })],
    ['v1 route: HMAC-SHA256 32 B, label KeyObject reused', measure(() => { createHmac('sha256', labelKey).update(key32).digest() })]
  ]
  const named = (prefix: string): Summary => {
    const found = rows.find(([n]) => n.startsWith(prefix))
    if (found == null) throw new Error(`no row ${prefix}`)
    return found[1]
  }
  return {
    samples, warmup: WARMUP, hops: HOPS, distinctPackets: DISTINCT_PACKETS, rows,
    middle: named('processPacket, middle hop'), rawHop: named('raw: one forward hop'), x25519: named('raw: 2 X25519')
  }
}

function main (): void {
  const SAMPLES = Number(process.env.SAMPLES ?? 2000)
  const { rows, middle, rawHop, x25519 } = sphinxBench(SAMPLES)
  console.log(`Sphinx v2 per-hop cost, node ${process.version}, ${SAMPLES} timed samples per row after ${WARMUP} warm-up calls, ${DISTINCT_PACKETS} distinct packets, ${HOPS}-hop path, PACKET_SIZE ${PACKET_SIZE}`)
  const width = Math.max(...rows.map(([name]) => name.length))
  console.log(`${'operation'.padEnd(width)}  median us    p95 us    cpu us`)
  for (const [name, s] of rows) console.log(`${name.padEnd(width)}  ${s.median.toFixed(1).padStart(9)} ${s.p95.toFixed(1).padStart(9)} ${(s.cpu ?? NaN).toFixed(1).padStart(9)}`)
  console.log('(cpu us: the thread\'s CPU time per call, mean; on a loaded machine the one to compare across runs)')
  console.log(`ratio processPacket (middle hop) / raw hop operations: ${(middle.median / rawHop.median).toFixed(2)} (median), ${((middle.cpu ?? NaN) / (rawHop.cpu ?? NaN)).toFixed(2)} (cpu)`)
  console.log(`share of the middle hop spent in the two X25519: ${(100 * x25519.median / middle.median).toFixed(0)}% (median), ${(100 * (x25519.cpu ?? NaN) / (middle.cpu ?? NaN)).toFixed(0)}% (cpu)`)
  // the floor of a hop in this format: two X25519 that depend on each other (the blinding needs the
  // shared secret), whatever else is cut; the target (< 100 us) leaves the rest 100 minus this
  console.log(`floor: the two X25519 alone ${x25519.median.toFixed(1)} us median (${(x25519.cpu ?? NaN).toFixed(1)} cpu); everything else in the middle hop ${(middle.median - x25519.median).toFixed(1)} us median (${((middle.cpu ?? NaN) - (x25519.cpu ?? NaN)).toFixed(1)} cpu)`)
  console.log(`throughput at the median: ~${Math.round(1e6 / middle.median)} forward hops/s per core`)
}

if (import.meta.main) main()
