/**
 * Writes test/vectors/sphinx-v1.json: a Sphinx packet built from fixed keys and a recorded random tape,
 * and what each hop's processing gives. Run it only when the format changes on purpose:
 *
 *   npx node test/vectors/make-sphinx-vector.ts
 *
 * test/sphinx.test.ts replays the tape and compares; it never regenerates.
 * The tape comes from ChaCha20 under SHA-256(label) with a zero IV, so this script is deterministic too.
 */

import { createCipheriv, createHash, createPublicKey, diffieHellman } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { createPacket, createSurb, onionPrivateKeyFromRaw, openReply, packetFromSurb, processPacket, surbSecretToBytes } from '../../protocols/onion/sphinx.ts'
import type { RandomSource } from '../../protocols/onion/sphinx.ts'

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

/** Fixed hop i: onion private key = SHA-256("sphinx-v1 hop i onion key"), peer id from SHA-256("... peer id"). */
const hops = Array.from({ length: 6 }, (_, i) => {
  const privateKey = createHash('sha256').update(`sphinx-v1 hop ${i} onion key`).digest()
  const key = onionPrivateKeyFromRaw(privateKey)
  const peerId = Buffer.concat([Buffer.from('002408011220', 'hex'), createHash('sha256').update(`sphinx-v1 hop ${i} peer id`).digest()])
  return { peerId: new Uint8Array(peerId), onionKey: key.publicKey, privateKey, key }
})

function sharedSecret (privateKey: Uint8Array, packet: Uint8Array): string {
  const key = onionPrivateKeyFromRaw(privateKey).privateKey
  const alpha = createPublicKey({ key: Buffer.from(packet.subarray(1, 33)), format: 'raw-public', asymmetricKeyType: 'x25519' })
  return hex(diffieHellman({ privateKey: key, publicKey: alpha }))
}

function walk (path: typeof hops, packet: Uint8Array): Array<Record<string, string | boolean>> {
  const steps: Array<Record<string, string | boolean>> = []
  for (let i = 0; i < path.length; i++) {
    const result = processPacket(packet, path[i].key)
    if (!result.ok) throw new Error(`hop ${i} dropped the vector packet: ${result.reason}`)
    const step: Record<string, string | boolean> = { sharedSecret: sharedSecret(path[i].privateKey, packet), replayTag: hex(result.replayTag), type: result.type }
    if (result.type === 'forward') {
      step.nextHop = hex(result.nextHop)
      step.packetSha256 = sha(result.packet)
      packet = result.packet
    } else {
      step.reply = result.reply
      step.id = hex(result.id)
      step.payload = hex(result.payload)
    }
    steps.push(step)
  }
  return steps
}

// Forward packet over 4 hops (3 relays + recipient).
const forwardPath = hops.slice(0, 4)
const forwardTape = tape('p2pchat sphinx-v1 forward')
const payload = new TextEncoder().encode('Sphinx test vector v1: hello through three relays.')
const id = createHash('sha256').update('sphinx-v1 message id').digest().subarray(0, 16)
const forward = createPacket(forwardPath, payload, { id, random: forwardTape.random })

// SURB over 3 hops (2 relays + creator), then a reply through it.
const surbPath = [hops[4], hops[5], hops[0]]
const surbTape = tape('p2pchat sphinx-v1 surb')
const surb = createSurb(surbPath, surbTape.random)
const replyTape = tape('p2pchat sphinx-v1 reply')
const replyPayload = new TextEncoder().encode('receipt: delivered')
const reply = packetFromSurb(surb.surb, replyPayload, { random: replyTape.random })
const replySteps = walk(surbPath, reply.packet)
const opened = openReply(Buffer.from(replySteps[replySteps.length - 1].payload as string, 'hex'), surb.secret)
if (!opened.ok) throw new Error('reply did not open')

const vector = {
  description: 'p2pchat Sphinx v1 known answers. Keys: see make-sphinx-vector.ts. "random" is every byte the random source returned, in order.',
  hops: hops.map((h) => ({ peerId: hex(h.peerId), onionPrivateKey: hex(h.privateKey), onionPublicKey: hex(h.onionKey) })),
  forward: {
    path: [0, 1, 2, 3],
    payload: hex(payload),
    id: hex(id),
    random: forwardTape.drawn(),
    firstHop: hex(forward.firstHop),
    packet: hex(forward.packet),
    hops: walk(forwardPath, forward.packet)
  },
  surb: {
    path: [4, 5, 0],
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

const out = new URL('./sphinx-v1.json', import.meta.url)
writeFileSync(out, JSON.stringify(vector, null, 2) + '\n')
console.log(`wrote ${out.pathname}`)
