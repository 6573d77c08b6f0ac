/**
 * Tampering in flight, hop by hop: a sealed, signed chat message in a 3-relay onion (and its receipt
 * in a SURB reply) with one bit flipped on one link, at many positions of header and body. Every
 * flip is dropped at the next hop (MAC) or detected at the recipient (payload integrity, AEAD,
 * signature); none is delivered as a different message.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  createMessage, createReceipt, decodeEnvelope, ed25519SignerFromSeed, encodeEnvelope, generateEd25519Seed,
  generateX25519KeyPair, openMessage, sealMessage, verifyReceipt
} from '../protocols/chat/index.ts'
import {
  createPacket, createSurb, HEADER_LENGTH, onionPrivateKeyFromRaw, openReply, PACKET_SIZE, packetFromSurb, processPacket
} from '../protocols/onion/sphinx.ts'
import type { OnionPrivateKey } from '../protocols/onion/sphinx.ts'
import { count } from './fuzz/generators.ts'

interface Hop { address: Uint8Array, onionKey: Uint8Array, key: OnionPrivateKey }
function hop (i: number): Hop {
  const k = generateX25519KeyPair()
  return { address: new Uint8Array(32).fill(i + 1), onionKey: k.publicKey, key: onionPrivateKeyFromRaw(k.privateKey) }
}

/** Runs a packet from hop `from` on; returns where it ended. */
function travel (path: Hop[], packet: Uint8Array, from: number): { at: number, result: ReturnType<typeof processPacket> } {
  let p = packet
  for (let i = from; i < path.length; i++) {
    const res = processPacket(p, path[i].key)
    if (!res.ok || res.type === 'final') return { at: i, result: res }
    p = res.packet
  }
  throw new Error('fell off the path')
}

/** Positions to flip: every header byte (one bit each, rotating), and the body at a stride, plus its edges. */
function positions (stride: number): number[] {
  const out: number[] = []
  for (let i = 0; i < HEADER_LENGTH; i++) out.push(i)
  for (let i = HEADER_LENGTH; i < PACKET_SIZE; i += stride) out.push(i)
  out.push(HEADER_LENGTH + 1, HEADER_LENGTH + 16, HEADER_LENGTH + 17, PACKET_SIZE - 1)
  return out
}

describe('a bit flipped in flight is dropped or detected, never delivered as another message', () => {
  const relays = [hop(1), hop(2), hop(3)]
  const bob = hop(4)
  const alice = hop(5)
  const bobChat = generateX25519KeyPair()
  const aliceSigner = ed25519SignerFromSeed(generateEd25519Seed())
  const bobSigner = ed25519SignerFromSeed(generateEd25519Seed())
  const path = [...relays, { ...bob, onionKey: bobChat.publicKey, key: onionPrivateKeyFromRaw(bobChat.privateKey) }]

  it('forward message: flips on each of the 4 links, header and body', () => {
    const surb = createSurb([relays[2], relays[1], relays[0], alice])
    const message = createMessage({ id: new Uint8Array(16).fill(7), senderNick: 'alice', senderIdentityKey: aliceSigner.publicKey, timestamp: Date.now(), text: 'the genuine text', replyBlock: surb.surb })
    const envelope = sealMessage(message, aliceSigner, { identityKey: bobSigner.publicKey, onionKey: bobChat.publicKey, epoch: 0 })
    const { packet } = createPacket(path, envelope)
    // the packet as it looks on each link: sender->r1, r1->r2, r2->r3, r3->bob
    const links = [packet]
    for (let i = 0; i < 3; i++) {
      const res = processPacket(links[i], path[i].key)
      assert.ok(res.ok && res.type === 'forward')
      links.push(res.packet)
    }
    const outcomes: Record<string, number> = {}
    let flips = 0
    for (const [link, onLink] of links.entries()) {
      for (const pos of positions(5)) {
        const bad = onLink.slice()
        bad[pos] ^= 1 << ((pos + link) % 8)
        flips++
        const { at, result } = travel(path, bad, link)
        if (!result.ok) {
          if (pos < HEADER_LENGTH) assert.equal(at, link, `a header flip at ${pos} on link ${link} must be dropped at the very next hop`)
          count(outcomes, `${pos < HEADER_LENGTH ? 'header' : 'body'}: dropped at hop ${at + 1} (${result.reason})`)
          continue
        }
        assert.ok(result.type === 'final' && result.command === 'service')
        // delivered by the onion layer: the chat layer must still refuse anything but the original
        const opened = openMessage(result.payload, () => bobChat.privateKey, bobSigner.publicKey)
        if (opened?.ok === true && opened.signatureValid) {
          assert.equal(opened.message.text, 'the genuine text', `flip at ${pos} on link ${link} changed the message`)
          count(outcomes, 'delivered unchanged')
        } else {
          count(outcomes, 'detected by the chat layer')
        }
      }
    }
    console.log(`forward flips: ${flips}`, outcomes)
    assert.equal(outcomes['delivered unchanged'] ?? 0, 0, 'no flip leaves the packet intact')
    assert.ok(flips > 3000)
  })

  it('receipt through a SURB: flips on each link of the reply path, header and body', () => {
    const replyPath = [relays[2], relays[1], relays[0], alice]
    const surb = createSurb(replyPath)
    const receipt = createReceipt([new Uint8Array(16).fill(9)], bobSigner, aliceSigner.publicKey)
    const { packet } = packetFromSurb(surb.surb, encodeEnvelope({ type: 'receipt', receipt }))
    const links = [packet]
    for (let i = 0; i < 3; i++) {
      const res = processPacket(links[i], replyPath[i].key)
      assert.ok(res.ok && res.type === 'forward')
      links.push(res.packet)
    }
    const outcomes: Record<string, number> = {}
    let flips = 0
    for (const [link, onLink] of links.entries()) {
      for (const pos of positions(11)) {
        const bad = onLink.slice()
        bad[pos] ^= 1 << (pos % 8)
        flips++
        const { result } = travel(replyPath, bad, link)
        if (!result.ok) { count(outcomes, `dropped (${result.reason})`); continue }
        assert.ok(result.type === 'final' && result.command === 'reply')
        const opened = openReply(result.payload, surb.secret)
        if (!opened.ok) { count(outcomes, `openReply: ${opened.reason}`); continue }
        const env = decodeEnvelope(opened.payload, aliceSigner.publicKey)
        assert.ok(!(env.ok && env.type === 'receipt' && verifyReceipt(env.receipt, bobSigner.publicKey, aliceSigner.publicKey) &&
          Buffer.compare(env.receipt.messageIds[0], receipt.messageIds[0]) !== 0), 'a different receipt verified')
        count(outcomes, 'opened')
      }
    }
    console.log(`reply flips: ${flips}`, outcomes)
    assert.equal(outcomes.opened ?? 0, 0, 'no flipped reply opens')
  })
})
