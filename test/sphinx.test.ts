import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { BETA_OFFSET, GAMMA_OFFSET, HEADER_LENGTH, PAYLOAD_OFFSET } from '../protocols/onion/constants.ts'
import {
  x25519, x25519PrivateKeyObject as importPrivateKey, x25519PrivateKeyObjectDer as importPrivateKeyDer,
  x25519PublicKeyObject as importPublicKey, x25519PublicKeyObjectDer as importPublicKeyDer
} from '../protocols/crypto/keys.ts'
import { lionessDecrypt, lionessEncrypt, lionessKey } from '../protocols/onion/lioness.ts'
import {
  BODY_LENGTH, MAX_HOPS, PACKET_SIZE, PAYLOAD_CAPACITY, SURB_SIZE,
  createPacket, createSurb, generateOnionKey, onionPrivateKeyFromRaw, openReply, packetFromSurb, processPacket,
  surbSecretFromBytes, surbSecretToBytes
} from '../protocols/onion/sphinx.ts'
import type { Hop, OnionPrivateKey, ProcessResult, RandomSource } from '../protocols/onion/sphinx.ts'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'))
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

interface TestHop extends Hop { key: OnionPrivateKey }

function makeHop (): TestHop {
  const raw = generateOnionKey()
  const peerId = new Uint8Array(38)
  peerId.set([0x00, 0x24, 0x08, 0x01, 0x12, 0x20])
  peerId.set(randomBytes(32), 6)
  return { peerId, onionKey: raw.publicKey, key: onionPrivateKeyFromRaw(raw.privateKey) }
}

const pool: TestHop[] = Array.from({ length: MAX_HOPS }, makeHop)

function flipBit (bytes: Uint8Array, index: number, bit = 0): Uint8Array {
  const copy = bytes.slice()
  copy[index] ^= 1 << bit
  return copy
}

/** Process along `path`, checking every intermediate packet, and return every packet seen and the last result. */
function run (path: TestHop[], packet: Uint8Array): { packets: Uint8Array[], result: ProcessResult } {
  const packets = [packet]
  for (let i = 0; i < path.length; i++) {
    const result = processPacket(packet, path[i].key)
    if (!result.ok || result.type === 'final') {
      assert.equal(i, result.ok ? path.length - 1 : i)
      return { packets, result }
    }
    assert.equal(result.packet.length, PACKET_SIZE)
    assert.deepEqual(result.nextHop, path[i + 1]?.peerId, `hop ${i} forwards to the next hop`)
    packet = result.packet
    packets.push(packet)
  }
  throw new Error('path ended with a forward result')
}

function contains (haystack: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(haystack).indexOf(Buffer.from(needle)) !== -1
}

/** Replays a recorded random tape; fails when the code draws more than was recorded. */
function replay (tapeHex: string): { random: RandomSource, rest: () => number } {
  const tape = unhex(tapeHex)
  let at = 0
  return {
    random: (n) => {
      assert.ok(at + n <= tape.length, 'random tape exhausted: the draw order changed')
      const out = tape.slice(at, at + n)
      at += n
      return out
    },
    rest: () => tape.length - at
  }
}

describe('sphinx: known-answer vector (test/vectors/sphinx-v1.json)', () => {
  const vector = JSON.parse(readFileSync(new URL('./vectors/sphinx-v1.json', import.meta.url), 'utf8'))
  const hops = vector.hops.map((h: { peerId: string, onionPrivateKey: string, onionPublicKey: string }) => ({
    peerId: unhex(h.peerId), onionKey: unhex(h.onionPublicKey), privateKey: unhex(h.onionPrivateKey), key: onionPrivateKeyFromRaw(unhex(h.onionPrivateKey))
  }))

  it('fixed onion keys give the recorded public keys', () => {
    for (const h of hops) assert.equal(hex(h.key.publicKey), hex(h.onionKey))
  })

  function checkWalk (path: typeof hops, packet: Uint8Array, steps: Array<Record<string, string | boolean>>): Uint8Array {
    let last: Uint8Array = new Uint8Array(0)
    for (let i = 0; i < path.length; i++) {
      const expected = steps[i]
      const s = x25519(importPrivateKey(path[i].privateKey), importPublicKey(packet.subarray(1, 33)))
      assert.equal(hex(s), expected.sharedSecret, `hop ${i} shared secret`)
      const result = processPacket(packet, path[i].key)
      assert.ok(result.ok, `hop ${i} accepts`)
      assert.equal(result.type, expected.type)
      assert.equal(hex(result.replayTag), expected.replayTag, `hop ${i} replay tag`)
      if (result.type === 'forward') {
        assert.equal(hex(result.nextHop), expected.nextHop, `hop ${i} next hop`)
        assert.equal(sha(result.packet), expected.packetSha256, `hop ${i} outgoing packet`)
        packet = result.packet
      } else {
        assert.equal(result.reply, expected.reply)
        assert.equal(hex(result.id), expected.id)
        assert.equal(hex(result.payload), expected.payload)
        last = result.payload
      }
    }
    return last
  }

  it('forward packet is byte-for-byte the recorded one, and each hop gives the recorded answers', () => {
    const f = vector.forward
    const path = f.path.map((i: number) => hops[i])
    const tape = replay(f.random)
    const built = createPacket(path, unhex(f.payload), { id: unhex(f.id), random: tape.random })
    assert.equal(tape.rest(), 0, 'the whole tape was used')
    assert.equal(hex(built.firstHop), f.firstHop)
    assert.equal(hex(built.packet), f.packet)
    const delivered = checkWalk(path, built.packet, f.hops)
    assert.equal(hex(delivered), f.payload)
  })

  it('SURB, reply packet and opened reply are the recorded ones', () => {
    const v = vector.surb
    const path = v.path.map((i: number) => hops[i])
    const tape = replay(v.random)
    const surb = createSurb(path, tape.random)
    assert.equal(tape.rest(), 0)
    assert.equal(hex(surb.surb), v.surb)
    assert.equal(hex(surb.id), v.id)
    assert.equal(hex(surbSecretToBytes(surb.secret)), v.secret)
    const replyTape = replay(v.replyRandom)
    const reply = packetFromSurb(unhex(v.surb), unhex(v.replyPayload), { random: replyTape.random })
    assert.equal(replyTape.rest(), 0)
    assert.equal(hex(reply.firstHop), v.replyFirstHop)
    assert.equal(hex(reply.packet), v.replyPacket)
    const body = checkWalk(path, reply.packet, v.hops)
    const opened = openReply(body, surbSecretFromBytes(unhex(v.secret)))
    assert.ok(opened.ok)
    assert.equal(hex(opened.payload), v.opened)
    assert.equal(hex(opened.payload), v.replyPayload)
  })
})

describe('sphinx: round trips for every path length', () => {
  for (let n = 1; n <= MAX_HOPS; n++) {
    it(`${n} hop(s): delivered payload equals the sent one; every packet is PACKET_SIZE; no plaintext on the way`, () => {
      const path = pool.slice(0, n)
      const payload = randomBytes(1000)
      const built = createPacket(path, payload)
      assert.deepEqual(built.firstHop, path[0].peerId)
      const { packets, result } = run(path, built.packet)
      assert.ok(result.ok && result.type === 'final')
      assert.equal(result.reply, false)
      assert.deepEqual(result.id, built.id)
      assert.deepEqual(result.payload, new Uint8Array(payload))
      assert.equal(packets.length, n)
      for (const p of packets) {
        assert.equal(p.length, PACKET_SIZE)
        assert.equal(p[0], 0x01)
        for (let at = 0; at + 16 <= payload.length; at += 100) assert.ok(!contains(p, payload.subarray(at, at + 16)), 'plaintext leaked')
      }
    })

    it(`${n} hop(s): SURB round trip`, () => {
      const path = pool.slice(MAX_HOPS - n)
      const { surb, id, secret } = createSurb(path)
      assert.equal(surb.length, SURB_SIZE)
      const stored = surbSecretFromBytes(surbSecretToBytes(secret))
      const replyText = randomBytes(300)
      const reply = packetFromSurb(surb, replyText)
      assert.deepEqual(reply.firstHop, path[0].peerId)
      assert.equal(reply.packet.length, PACKET_SIZE)
      const { packets, result } = run(path, reply.packet)
      assert.ok(result.ok && result.type === 'final')
      assert.equal(result.reply, true)
      assert.deepEqual(result.id, id)
      for (const p of packets) assert.ok(!contains(p, replyText.subarray(0, 16)))
      const opened = openReply(result.payload, stored)
      assert.ok(opened.ok)
      assert.deepEqual(opened.payload, new Uint8Array(replyText))
    })
  }

  it('carries an empty payload and a PAYLOAD_CAPACITY payload', () => {
    const path = pool.slice(0, 3)
    for (const size of [0, 1, PAYLOAD_CAPACITY]) {
      const payload = randomBytes(size)
      const { result } = run(path, createPacket(path, payload).packet)
      assert.ok(result.ok && result.type === 'final')
      assert.deepEqual(result.payload, new Uint8Array(payload))
    }
  })

  it('the same packet gives the same replay tag; different packets give different tags', () => {
    const path = pool.slice(0, 2)
    const a = createPacket(path, new Uint8Array(10)).packet
    const b = createPacket(path, new Uint8Array(10)).packet
    const ra = processPacket(a, path[0].key)
    const ra2 = processPacket(a, path[0].key)
    const rb = processPacket(b, path[0].key)
    assert.ok(ra.ok && ra2.ok && rb.ok)
    assert.deepEqual(ra.replayTag, ra2.replayTag)
    assert.notDeepEqual(ra.replayTag, rb.replayTag)
  })

  it('packets are reproducible from the random source and differ without it', () => {
    const path = pool.slice(0, 4)
    const seeded = (): RandomSource => { let c = 0; return (n) => new Uint8Array(n).map(() => (c = (c * 31 + 7) & 0xff)) }
    const payload = new Uint8Array(50)
    assert.deepEqual(createPacket(path, payload, { random: seeded() }).packet, createPacket(path, payload, { random: seeded() }).packet)
    assert.notDeepEqual(createPacket(path, payload).packet, createPacket(path, payload).packet)
  })
})

describe('sphinx: tampering and garbage', () => {
  it('a flipped bit anywhere in the header is dropped at the hop that receives it', () => {
    const path = pool.slice(0, 4)
    const first = createPacket(path, randomBytes(100)).packet
    const second = processPacket(first, path[0].key)
    assert.ok(second.ok && second.type === 'forward')
    for (const [packet, hop] of [[first, path[0]], [second.packet, path[1]]] as const) {
      const flips: Array<[number, number]> = []
      for (let i = 0; i < HEADER_LENGTH; i++) {
        // every bit of the version, alpha and gamma; one bit (rotating) of every beta byte
        if (i < BETA_OFFSET || i >= GAMMA_OFFSET) for (let bit = 0; bit < 8; bit++) flips.push([i, bit])
        else flips.push([i, i % 8])
      }
      for (const [i, bit] of flips) {
        const result = processPacket(flipBit(packet, i, bit), hop.key)
        assert.equal(result.ok, false, `byte ${i} bit ${bit} flipped was accepted`)
        const reason = (result as { reason: string }).reason
        if (i === 0) assert.equal(reason, 'version')
        else if (i < BETA_OFFSET) assert.ok(reason === 'mac' || reason === 'bad-point', `alpha byte ${i}: ${reason}`)
        else assert.equal(reason, 'mac', `${i < GAMMA_OFFSET ? 'beta' : 'gamma'} byte ${i}`)
      }
    }
  })

  it('a flipped bit in the body is caught at the final hop (payload-integrity)', () => {
    const path = pool.slice(0, 4)
    const packet = createPacket(path, randomBytes(700)).packet
    const positions = [PAYLOAD_OFFSET, PAYLOAD_OFFSET + 15, PAYLOAD_OFFSET + 16, PAYLOAD_OFFSET + 31, PAYLOAD_OFFSET + 32,
      PAYLOAD_OFFSET + 500, PAYLOAD_OFFSET + 2000, PACKET_SIZE - 1]
    for (const at of positions) {
      for (const tamperAt of [0, 2]) { // tampered before the first relay or by a middle relay
        let p = packet
        for (let i = 0; i < path.length - 1; i++) {
          if (i === tamperAt) p = flipBit(p, at, 7)
          const r = processPacket(p, path[i].key)
          assert.ok(r.ok && r.type === 'forward', 'relays cannot see body tampering')
          p = r.packet
        }
        const final = processPacket(p, path[3].key)
        assert.deepEqual(final, { ok: false, reason: 'payload-integrity' }, `body byte ${at}`)
      }
    }
  })

  it('wrong size, wrong version, garbage and small-order points give ok:false and never throw', () => {
    const key = pool[0].key
    const valid = createPacket(pool.slice(0, 2), new Uint8Array(5)).packet
    for (const size of [0, 1, HEADER_LENGTH, PACKET_SIZE - 1, PACKET_SIZE + 1, 2 * PACKET_SIZE]) {
      assert.deepEqual(processPacket(new Uint8Array(size), key), { ok: false, reason: 'size' })
    }
    for (const notBytes of [null, undefined, 'x'.repeat(PACKET_SIZE), Array(PACKET_SIZE).fill(1), {}, 42]) {
      assert.deepEqual(processPacket(notBytes as unknown as Uint8Array, key), { ok: false, reason: 'size' })
    }
    for (const version of [0x00, 0x02, 0xff]) {
      const p = valid.slice(); p[0] = version
      assert.deepEqual(processPacket(p, key), { ok: false, reason: 'version' })
    }
    for (let i = 0; i < 300; i++) {
      const garbage = randomBytes(PACKET_SIZE)
      if (i % 2 === 0) garbage[0] = 0x01
      const r = processPacket(garbage, key)
      assert.equal(r.ok, false)
    }
    // RFC 7748 small-order u-coordinates (and their non-canonical forms): X25519 gives all zero.
    const smallOrder = ['00', '01', 'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
      '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157', 'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
      'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', 'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f']
    for (const u of smallOrder) {
      const p = valid.slice()
      p.set(Buffer.from(u.padEnd(64, '0'), 'hex'), 1)
      assert.deepEqual(processPacket(p, key), { ok: false, reason: 'bad-point' }, u)
    }
    // Non-canonical encodings of a valid alpha (top bit set; u + p) are refused, not reduced.
    const topBit = valid.slice(); topBit[32] |= 0x80
    assert.deepEqual(processPacket(topBit, key), { ok: false, reason: 'bad-point' })
    const plusP = valid.slice()
    plusP.set(Buffer.from('edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', 'hex'), 1) // p itself, u = 0
    assert.deepEqual(processPacket(plusP, key), { ok: false, reason: 'bad-point' })
    const shared = new Uint8Array(new SharedArrayBuffer(PACKET_SIZE))
    assert.equal(processPacket(shared, key).ok, false)
  })

  it('accepts Buffer inputs and never changes the bytes it is given', () => {
    const path = pool.slice(0, 2)
    const payload = Buffer.from(randomBytes(64))
    const packet = Buffer.from(createPacket(path, payload, { id: Buffer.alloc(16, 7) }).packet)
    const before = Buffer.from(packet)
    const first = processPacket(packet, path[0].key)
    assert.ok(first.ok && first.type === 'forward')
    assert.deepEqual(packet, before)
    const forwarded = Buffer.from(first.packet)
    const final = processPacket(forwarded, path[1].key)
    assert.ok(final.ok && final.type === 'final')
    assert.deepEqual(final.payload, new Uint8Array(payload))
    assert.equal(hex(first.packet), hex(forwarded))
  })

  it('a packet for another key (or another epoch) is dropped with reason mac', () => {
    const packet = createPacket(pool.slice(0, 2), new Uint8Array(5)).packet
    assert.deepEqual(processPacket(packet, pool[1].key), { ok: false, reason: 'mac' })
  })

  it('openReply fails on a tampered reply', () => {
    const path = pool.slice(0, 3)
    const { surb, secret } = createSurb(path)
    const reply = packetFromSurb(surb, randomBytes(200))
    // tampered on the wire, before the first relay: relays pass it, the creator's openReply rejects it
    for (const at of [PAYLOAD_OFFSET, PAYLOAD_OFFSET + 1000, PACKET_SIZE - 1]) {
      const { result } = run(path, flipBit(reply.packet, at))
      assert.ok(result.ok && result.type === 'final' && result.reply)
      assert.deepEqual(openReply(result.payload, secret), { ok: false, reason: 'payload-integrity' })
    }
    const { result } = run(path, reply.packet)
    assert.ok(result.ok && result.type === 'final')
    assert.deepEqual(openReply(flipBit(result.payload, 5), secret), { ok: false, reason: 'payload-integrity' })
    assert.deepEqual(openReply(result.payload.subarray(1), secret), { ok: false, reason: 'size' })
    const other = createSurb(path).secret
    assert.deepEqual(openReply(result.payload, other), { ok: false, reason: 'payload-integrity' })
    assert.ok(openReply(result.payload, secret).ok)
  })
})

describe('sphinx: build-time errors are named', () => {
  const path = pool.slice(0, 3)
  it('rejects bad paths, oversized payloads, bad ids and bad SURBs', () => {
    assert.throws(() => createPacket(path, new Uint8Array(PAYLOAD_CAPACITY + 1)), { name: 'PayloadTooLargeError' })
    assert.throws(() => createPacket([], new Uint8Array(1)), { name: 'InvalidPathError' })
    assert.throws(() => createPacket([...pool, pool[0]], new Uint8Array(1)), { name: 'InvalidPathError' })
    assert.throws(() => createPacket([{ peerId: new Uint8Array(38), onionKey: pool[0].onionKey }], new Uint8Array(1)), { name: 'InvalidPathError' })
    assert.throws(() => createPacket([{ peerId: pool[0].peerId, onionKey: new Uint8Array(31) }], new Uint8Array(1)), { name: 'InvalidPathError' })
    assert.throws(() => createPacket([{ peerId: pool[0].peerId, onionKey: new Uint8Array(32) }], new Uint8Array(1)), { name: 'InvalidPathError' })
    assert.throws(() => createPacket(path, new Uint8Array(1), { id: new Uint8Array(15) }), { name: 'InvalidIdError' })
    assert.throws(() => createPacket(path, new Uint8Array(1), { random: () => new Uint8Array(1) }), { name: 'RandomSourceError' })
    assert.throws(() => createSurb([]), { name: 'InvalidPathError' })
    assert.throws(() => packetFromSurb(new Uint8Array(SURB_SIZE - 1), new Uint8Array(1)), { name: 'InvalidSurbError' })
    assert.throws(() => packetFromSurb(new Uint8Array(SURB_SIZE), new Uint8Array(1)), { name: 'InvalidSurbError' })
    assert.throws(() => packetFromSurb(createSurb(path).surb, new Uint8Array(PAYLOAD_CAPACITY + 1)), { name: 'PayloadTooLargeError' })
    assert.throws(() => surbSecretFromBytes(new Uint8Array(10)), { name: 'InvalidSurbSecretError' })
    assert.throws(() => onionPrivateKeyFromRaw(new Uint8Array(31)), { name: 'InvalidKeyError' })
  })
})

describe('sphinx: building blocks', () => {
  it('raw and DER key imports give the same X25519 results (blinding commutes with clamping)', () => {
    const a = randomBytes(32)
    const b = randomBytes(32)
    const pub = generateOnionKey().publicKey
    assert.deepEqual(x25519(importPrivateKey(a), importPublicKey(pub)), x25519(importPrivateKeyDer(a), importPublicKeyDer(pub)))
    const bA = x25519(importPrivateKey(b), importPublicKey(x25519(importPrivateKey(a), importPublicKey(pub))))
    const aB = x25519(importPrivateKey(a), importPublicKey(x25519(importPrivateKey(b), importPublicKey(pub))))
    assert.deepEqual(aB, bA)
  })

  it('LIONESS round-trips and one flipped bit garbles the whole block', () => {
    const key = lionessKey(randomBytes(32))
    const block = randomBytes(BODY_LENGTH)
    const ct = lionessEncrypt(key, block)
    assert.deepEqual(lionessDecrypt(key, ct), new Uint8Array(block))
    for (const at of [0, 31, 32, BODY_LENGTH - 1]) {
      const garbled = lionessDecrypt(key, flipBit(ct, at))
      for (let chunk = 0; chunk < BODY_LENGTH; chunk += 16) {
        assert.notDeepEqual(garbled.subarray(chunk, chunk + 16), new Uint8Array(block.subarray(chunk, chunk + 16)), `chunk ${chunk} survived a flip at ${at}`)
      }
    }
  })

  it('a reply packet looks like a forward packet to the first relay', () => {
    const path = pool.slice(0, 3)
    const reply = packetFromSurb(createSurb(path).surb, new Uint8Array(10)).packet
    const forward = createPacket(path, new Uint8Array(10)).packet
    assert.equal(reply.length, forward.length)
    assert.equal(reply[0], forward[0])
    const r = processPacket(reply, path[0].key)
    const f = processPacket(forward, path[0].key)
    assert.ok(r.ok && f.ok)
    assert.equal(r.type, f.type)
    assert.deepEqual(Object.keys(r).sort(), Object.keys(f).sort())
  })
})
