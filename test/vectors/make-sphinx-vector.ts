/**
 * Writes test/vectors/sphinx-v2.json: Sphinx version 2 packets built from fixed keys and recorded random
 * tapes, and what each hop's processing gives. Run it only when the format changes on purpose:
 *
 *   node_modules/.bin/node test/vectors/make-sphinx-vector.ts
 *
 * test/sphinx.test.ts replays the tapes and compares byte for byte; it never regenerates.
 * The tapes come from ChaCha20 under SHA-256(label) with a zero IV, so this script is deterministic too.
 *
 * Cases (SPEC.md section 11): a 4-hop forward packet whose third hop is reached as a CLIENT and whose
 * first two slots carry delay extensions; a 4-hop reply block shaped as PROTOCOL-V2.md's (mix, mix,
 * entry relay, then the creator as its CLIENT, with a delay at the first mix), and a reply through it.
 * Every hop's shared secret and derived keys are computed here with node:crypto (OpenSSL), apart from
 * the libsodium code under test, so the file also cross-checks the two implementations.
 */

import { createCipheriv, createHash, createHmac, createPrivateKey, createPublicKey, diffieHellman } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import {
  createPacket, createSurb, onionPrivateKeyFromRaw, openReply, packetFromSurb, processPacket, surbSecretToBytes
} from '../../protocols/onion/sphinx.ts'
import type { Hop, RandomSource } from '../../protocols/onion/sphinx.ts'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

/** A deterministic byte stream that records what was drawn. */
function tape (label: string): { random: RandomSource, drawn: () => string } {
  const cipher = createCipheriv('chacha20', createHash('sha256').update(label).digest(), Buffer.alloc(16))
  const chunks: Buffer[] = []
  return {
    random: (n) => { const b = cipher.update(Buffer.alloc(n)); chunks.push(b); return new Uint8Array(b) },
    drawn: () => hex(Buffer.concat(chunks))
  }
}

/** Fixed hop i: onion private key = SHA-256("sphinx-v2 hop i onion key"), address = SHA-256("sphinx-v2 hop i address"). */
const hops = Array.from({ length: 5 }, (_, i) => {
  const privateKey = new Uint8Array(createHash('sha256').update(`sphinx-v2 hop ${i} onion key`).digest())
  const key = onionPrivateKeyFromRaw(privateKey)
  const address = new Uint8Array(createHash('sha256').update(`sphinx-v2 hop ${i} address`).digest())
  return { address, onionKey: key.publicKey, privateKey, key }
})
type FixedHop = typeof hops[number]

/** s = X25519(k, alpha) and the keys of SPEC.md section 4, through node:crypto. */
function hopKeys (privateKey: Uint8Array, packet: Uint8Array): Record<string, string> {
  const k = createPrivateKey({ key: Buffer.from(privateKey), format: 'raw-private', asymmetricKeyType: 'x25519' })
  const alpha = createPublicKey({ key: Buffer.from(packet.subarray(1, 33)), format: 'raw-public', asymmetricKeyType: 'x25519' })
  const s = diffieHellman({ privateKey: k, publicKey: alpha })
  const label = (l: string): string => createHmac('sha256', l).update(s).digest('hex')
  return { sharedSecret: hex(s), rho: label('rho'), mu: label('mu'), pi: label('pi'), replayTag: label('replay') }
}

function walk (path: FixedHop[], packet: Uint8Array): Array<Record<string, string | number>> {
  const steps: Array<Record<string, string | number>> = []
  for (let i = 0; i < path.length; i++) {
    const keys = hopKeys(path[i].privateKey, packet)
    const result = processPacket(packet, path[i].key)
    if (!result.ok) throw new Error(`hop ${i} dropped the vector packet: ${result.reason}`)
    if (hex(result.replayTag) !== keys.replayTag) throw new Error(`hop ${i}: libsodium and node:crypto disagree`)
    const step: Record<string, string | number> = { ...keys, type: result.type, command: result.command }
    if (result.type === 'forward') {
      step.next = hex(result.next)
      step.delayMs = result.delayMs
      step.packetSha256 = sha(result.packet)
      packet = result.packet
    } else {
      step.id = hex(result.id)
      step.payload = hex(result.payload)
    }
    steps.push(step)
  }
  return steps
}

const asHop = (h: FixedHop, extra: Partial<Hop> = {}): Hop => ({ address: h.address, onionKey: h.onionKey, ...extra })

// Forward packet over 4 hops: delays in the first two slots; hop 2 is reached as hop 1's CLIENT.
const forwardPath = [hops[0], hops[1], hops[2], hops[3]]
const forwardHops = [asHop(hops[0], { delayMs: 1500 }), asHop(hops[1], { delayMs: 250 }), asHop(hops[2], { client: true }), asHop(hops[3])]
const forwardTape = tape('p2pchat sphinx-v2 forward')
const payload = new TextEncoder().encode('Sphinx test vector v2: hello through a client hop, with delays.')
const id = createHash('sha256').update('sphinx-v2 message id').digest().subarray(0, 16)
const forward = createPacket(forwardHops, payload, { id, random: forwardTape.random })

// Reply block: mix (delay 40 ms), mix, entry relay, then its creator as the entry relay's CLIENT.
const surbPath = [hops[4], hops[1], hops[2], hops[0]]
const surbHops = [asHop(hops[4], { delayMs: 40 }), asHop(hops[1]), asHop(hops[2]), asHop(hops[0], { client: true })]
const surbTape = tape('p2pchat sphinx-v2 surb')
const surb = createSurb(surbHops, surbTape.random)
const replyTape = tape('p2pchat sphinx-v2 reply')
const replyPayload = new TextEncoder().encode('service answer: stored')
const reply = packetFromSurb(surb.surb, replyPayload, { random: replyTape.random })
const replySteps = walk(surbPath, reply.packet)
const opened = openReply(Buffer.from(replySteps[replySteps.length - 1].payload as string, 'hex'), surb.secret)
if (!opened.ok) throw new Error('reply did not open')

const vector = {
  description: 'p2pchat Sphinx version 2 known answers (protocols/onion/SPEC.md). Keys: see make-sphinx-vector.ts. "random" is every byte the random source returned, in order. Per hop: the shared secret and derived keys computed with node:crypto, and what processPacket returned.',
  hops: hops.map((h) => ({ address: hex(h.address), onionPrivateKey: hex(h.privateKey), onionPublicKey: hex(h.onionKey) })),
  forward: {
    path: forwardHops.map((h, i) => ({ hop: hops.indexOf(forwardPath[i]), client: h.client === true, delayMs: h.delayMs ?? 0 })),
    payload: hex(payload),
    id: hex(id),
    random: forwardTape.drawn(),
    firstHop: hex(forward.firstHop),
    packet: hex(forward.packet),
    hops: walk(forwardPath, forward.packet)
  },
  surb: {
    path: surbHops.map((h, i) => ({ hop: hops.indexOf(surbPath[i]), client: h.client === true, delayMs: h.delayMs ?? 0 })),
    random: surbTape.drawn(),
    id: hex(surb.id),
    surb: hex(surb.surb),
    secret: hex(surbSecretToBytes(surb.secret)),
    replyPayload: hex(replyPayload),
    replyRandom: replyTape.drawn(),
    replyFirstHop: hex(reply.firstHop),
    replyPacket: hex(reply.packet),
    hops: replySteps,
    opened: hex(opened.payload)
  }
}

const out = new URL('./sphinx-v2.json', import.meta.url)
writeFileSync(out, JSON.stringify(vector, null, 2) + '\n')
console.log(`wrote ${out.pathname}`)
