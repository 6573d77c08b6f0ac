/**
 * Tampering in flight, hop by hop, on the paths of protocol v2 (PROTOCOL-V2.md sections 3 and 5):
 *
 * - a deposit: alice's sealed, signed message to bob inside a mailbox DEPOSIT inside a SERVICE body
 *   (with alice's reply block for the answer), over mix -> mix -> bob's mailbox relay, one bit flipped
 *   on one link (client -> first mix, mix -> mix, mix -> mailbox relay);
 * - a push: bob's sealed receipt in a mailbox PUSH answer, sent by alice's mailbox relay through a reply
 *   block alice stocked (mix -> mix -> entry relay (CLIENT) -> alice), one bit flipped on each link.
 *
 * Every flip of header or body is dropped at the next hop (header: MAC) or at the end of the path
 * (payload integrity, reply integrity, the seal's AEAD, the signature); none arrives as a different
 * message or a receipt for other messages.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  createMessage, createReceipt, ed25519SignerFromSeed, generateEd25519Seed, generateX25519KeyPair, openSealed, sealMessage,
  sealReceipt, verifyReceipt
} from '../protocols/chat/index.ts'
import { decodeAnswer, decodeRequest, encodeAnswer, encodeDeposit } from '../protocols/mailbox/codec.ts'
import { MAILBOX_SERVICE } from '../protocols/mailbox/constants.ts'
import { decodeServiceBody, encodeServiceBody, SERVICE_MAILBOX } from '../protocols/onion/service-body.ts'
import {
  createPacket, createSurb, HEADER_LENGTH, onionPrivateKeyFromRaw, openReply, PACKET_SIZE, packetFromSurb, processPacket
} from '../protocols/onion/sphinx.ts'
import type { OnionPrivateKey } from '../protocols/onion/sphinx.ts'
import { count } from './fuzz/generators.ts'

interface Hop { address: Uint8Array, onionKey: Uint8Array, key: OnionPrivateKey, client?: boolean }
function hop (i: number, client = false): Hop {
  const k = generateX25519KeyPair()
  return { address: new Uint8Array(32).fill(i + 1), onionKey: k.publicKey, key: onionPrivateKeyFromRaw(k.privateKey), client }
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

/** The packet as it looks on each link: links[i] is what hop i reads. */
function linksOf (path: Hop[], packet: Uint8Array): Uint8Array[] {
  const links = [packet]
  for (let i = 0; i < path.length - 1; i++) {
    const res = processPacket(links[i], path[i].key)
    assert.ok(res.ok && res.type === 'forward')
    links.push(res.packet)
  }
  return links
}

/** Positions to flip: every header byte (one bit each, rotating), and the body at a stride, plus its edges. */
function positions (stride: number): number[] {
  const out: number[] = []
  for (let i = 0; i < HEADER_LENGTH; i++) out.push(i)
  for (let i = HEADER_LENGTH; i < PACKET_SIZE; i += stride) out.push(i)
  out.push(HEADER_LENGTH + 1, HEADER_LENGTH + 16, HEADER_LENGTH + 17, PACKET_SIZE - 1)
  return out
}

describe('a bit flipped in flight on a v2 path is dropped or detected, never delivered as another message', () => {
  const [mix1, mix2, mailboxRelay, entryA] = [hop(1), hop(2), hop(3), hop(4)]
  const aliceClient = hop(5, true)
  const aliceChat = generateX25519KeyPair()
  const bobChat = generateX25519KeyPair()
  const aliceSigner = ed25519SignerFromSeed(generateEd25519Seed())
  const bobSigner = ed25519SignerFromSeed(generateEd25519Seed())
  const mailboxId = new Uint8Array(32).fill(0x42)

  it('a deposit: flips on each of the 3 links to the mailbox relay, header and body', () => {
    // alice's reply block for the mailbox's answer: mix -> mix -> her entry relay -> her
    const answerBlock = createSurb([mix2, mix1, entryA, aliceClient])
    const message = createMessage({ id: new Uint8Array(16).fill(7), senderNick: 'alice', senderIdentityKey: aliceSigner.publicKey, timestamp: Date.now(), text: 'the genuine text' })
    const item = sealMessage(message, aliceSigner, { identityKey: bobSigner.publicKey, onionKey: bobChat.publicKey, epoch: 3 })
    const body = encodeServiceBody({ service: SERVICE_MAILBOX, replyBlock: answerBlock.surb, request: encodeDeposit(mailboxId, item) })
    const path = [mix1, mix2, mailboxRelay]
    const { packet } = createPacket(path, body)
    // link 0 is client -> entry relay -> first mix (the entry relay passes the packet on unchanged)
    const links = linksOf(path, packet)
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
        // the mailbox relay took it: what it stores must still open only as the original
        const decoded = decodeServiceBody(result.payload)
        const request = decoded.ok ? decodeRequest(decoded.body.request) : undefined
        if (request?.ok !== true || request.request.op !== 'deposit') { count(outcomes, 'refused by the mailbox'); continue }
        const opened = openSealed(request.request.item, () => bobChat.privateKey, bobSigner.publicKey)
        if (opened.ok && opened.type === 'message' && opened.signatureValid) {
          assert.equal(opened.message.text, 'the genuine text', `flip at ${pos} on link ${link} changed the message`)
          count(outcomes, 'delivered unchanged')
        } else {
          count(outcomes, 'detected by the chat layer')
        }
      }
    }
    console.log(`deposit flips: ${flips}`, outcomes)
    assert.equal(outcomes['delivered unchanged'] ?? 0, 0, 'no flip leaves the packet intact')
    assert.ok(flips > 2000)
  })

  it('a push: flips on each of the 4 links of the reply path (mailbox relay -> mix -> mix -> entry relay -> client), header and body', () => {
    const replyPath = [mix1, mix2, entryA, aliceClient]
    const block = createSurb(replyPath)
    const receipt = createReceipt([new Uint8Array(16).fill(9)], bobSigner, aliceSigner.publicKey)
    const item = sealReceipt(receipt, { onionKey: aliceChat.publicKey, epoch: 4 })
    const answer = encodeAnswer({ kind: 'push', mailboxId, itemId: new Uint8Array(16).fill(1), item, waiting: 0 })
    const payload = new Uint8Array(1 + answer.length)
    payload[0] = MAILBOX_SERVICE
    payload.set(answer, 1)
    const { packet } = packetFromSurb(block.surb, payload)
    const links = linksOf(replyPath, packet)
    const outcomes: Record<string, number> = {}
    let flips = 0
    for (const [link, onLink] of links.entries()) {
      for (const pos of positions(11)) {
        const bad = onLink.slice()
        bad[pos] ^= 1 << (pos % 8)
        flips++
        const { at, result } = travel(replyPath, bad, link)
        if (!result.ok) {
          if (pos < HEADER_LENGTH) assert.equal(at, link, `a header flip at ${pos} on link ${link} must be dropped at the very next hop`)
          count(outcomes, `dropped (${result.reason})`)
          continue
        }
        assert.ok(result.type === 'final' && result.command === 'reply')
        const opened = openReply(result.payload, block.secret)
        if (!opened.ok) { count(outcomes, `openReply: ${opened.reason}`); continue }
        const decoded = decodeAnswer(opened.payload.subarray(1))
        assert.ok(decoded.ok && decoded.answer.kind === 'push')
        const env = openSealed(decoded.answer.item, () => aliceChat.privateKey, aliceSigner.publicKey)
        assert.ok(!(env.ok && env.type === 'receipt' && verifyReceipt(env.receipt, bobSigner.publicKey, aliceSigner.publicKey) &&
          Buffer.compare(env.receipt.messageIds[0], receipt.messageIds[0]) !== 0), 'a different receipt verified')
        count(outcomes, 'opened')
      }
    }
    console.log(`push flips: ${flips}`, outcomes)
    assert.equal(outcomes.opened ?? 0, 0, 'no flipped push opens')
    assert.ok(flips > 1500)
  })
})
