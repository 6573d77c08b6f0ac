import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createCipheriv, createHash, createHmac, randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import {
  BETA_OFFSET, GAMMA_OFFSET, HEADER_LENGTH, PAYLOAD_OFFSET, ROUTING_INFO_LENGTH, SLOT_SIZE
} from '../protocols/onion/constants.ts'
import type { Label } from '../protocols/onion/keys.ts'
import {
  x25519, x25519BaseRaw, x25519PrivateKeyObject as importPrivateKey, x25519PrivateKeyObjectDer as importPrivateKeyDer,
  x25519PublicKeyObject as importPublicKey, x25519PublicKeyObjectDer as importPublicKeyDer, x25519Raw
} from '../protocols/crypto/keys.ts'
import { chacha20, deriveKey, hmacSha256, sha256 } from '../protocols/onion/keys.ts'
import { lionessDecrypt, lionessEncrypt, lionessKey } from '../protocols/onion/lioness.ts'
import {
  BODY_LENGTH, MAX_HOPS, PACKET_SIZE, PACKET_VERSION, PAYLOAD_CAPACITY, SURB_SIZE,
  createPacket, createSurb, generateOnionKey, onionPrivateKeyFromRaw, openReply, packetFromSurb,
  processPacket, surbSecretFromBytes, surbSecretToBytes
} from '../protocols/onion/sphinx.ts'
import { addressFromPeerId, peerIdBytesFromAddress, peerIdFromAddress } from '../protocols/onion/address.ts'
import type { Hop, OnionPrivateKey, ProcessResult, RandomSource } from '../protocols/onion/sphinx.ts'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'))
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

interface TestHop extends Hop { key: OnionPrivateKey }

function makeHop (): TestHop {
  const raw = generateOnionKey()
  return { address: new Uint8Array(randomBytes(32)), onionKey: raw.publicKey, key: onionPrivateKeyFromRaw(raw.privateKey) }
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
    assert.deepEqual(result.next, path[i + 1]?.address, `hop ${i} forwards to the next hop`)
    assert.equal(result.command, path[i + 1]?.client === true ? 'client' : 'relay')
    assert.equal(result.delayMs, path[i].delayMs ?? 0)
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

describe('sphinx: known-answer vector (test/vectors/sphinx-v2.json)', () => {
  const vector = JSON.parse(readFileSync(new URL('./vectors/sphinx-v2.json', import.meta.url), 'utf8'))
  const hops = vector.hops.map((h: { address: string, onionPrivateKey: string, onionPublicKey: string }) => ({
    address: unhex(h.address), onionKey: unhex(h.onionPublicKey), privateKey: unhex(h.onionPrivateKey), key: onionPrivateKeyFromRaw(unhex(h.onionPrivateKey))
  }))
  type VectorHop = typeof hops[number]
  type PathEntry = { hop: number, client: boolean, delayMs: number }
  const pathOf = (entries: PathEntry[]): VectorHop[] => entries.map(e => hops[e.hop])
  const hopsOf = (entries: PathEntry[]): Hop[] => entries.map(e => ({
    address: hops[e.hop].address, onionKey: hops[e.hop].onionKey, ...(e.client ? { client: true } : {}), ...(e.delayMs > 0 ? { delayMs: e.delayMs } : {})
  }))

  it('fixed onion keys give the recorded public keys (libsodium and node:crypto agree)', () => {
    for (const h of hops) {
      assert.equal(hex(h.key.publicKey), hex(h.onionKey))
      assert.equal(hex(x25519BaseRaw(h.privateKey)), hex(h.onionKey))
    }
  })

  function checkWalk (path: VectorHop[], packet: Uint8Array, steps: Array<Record<string, string | number>>): Uint8Array {
    let last: Uint8Array = new Uint8Array(0)
    for (let i = 0; i < path.length; i++) {
      const expected = steps[i]
      // node:crypto, independently of the libsodium code under test
      const s = x25519(importPrivateKey(path[i].privateKey), importPublicKey(packet.subarray(1, 33)))
      assert.equal(hex(s), expected.sharedSecret, `hop ${i} shared secret`)
      for (const label of ['rho', 'mu', 'pi'] as const) {
        assert.equal(createHmac('sha256', label).update(s).digest('hex'), expected[label], `hop ${i} key_${label}`)
      }
      const result = processPacket(packet, path[i].key)
      assert.ok(result.ok, `hop ${i} accepts`)
      assert.equal(result.type, expected.type)
      assert.equal(result.command, expected.command)
      assert.equal(hex(result.replayTag), expected.replayTag, `hop ${i} replay tag`)
      if (result.type === 'forward') {
        assert.equal(hex(result.next), expected.next, `hop ${i} next hop`)
        assert.equal(result.delayMs, expected.delayMs, `hop ${i} delay`)
        assert.equal(sha(result.packet), expected.packetSha256, `hop ${i} outgoing packet`)
        packet = result.packet
      } else {
        assert.equal(hex(result.id), expected.id)
        assert.equal(hex(result.payload), expected.payload)
        last = result.payload
      }
    }
    return last
  }

  it('forward packet (a CLIENT hop, delay extensions) is byte-for-byte the recorded one, and each hop gives the recorded answers', () => {
    const f = vector.forward
    const tape = replay(f.random)
    const built = createPacket(hopsOf(f.path), unhex(f.payload), { id: unhex(f.id), random: tape.random })
    assert.equal(tape.rest(), 0, 'the whole tape was used')
    assert.equal(hex(built.firstHop), f.firstHop)
    assert.equal(hex(built.packet), f.packet)
    const delivered = checkWalk(pathOf(f.path), built.packet, f.hops)
    assert.equal(hex(delivered), f.payload)
  })

  it('the first slot decrypts (with OpenSSL ChaCha20) to the bytes of SPEC.md section 3', () => {
    const f = vector.forward
    const packet = unhex(f.packet)
    const rho = Buffer.from(f.hops[0].rho, 'hex')
    const routing = createCipheriv('chacha20', rho, Buffer.alloc(16)).update(Buffer.concat([packet.subarray(BETA_OFFSET, GAMMA_OFFSET), Buffer.alloc(SLOT_SIZE)]))
    const slot = routing.subarray(0, SLOT_SIZE)
    assert.equal(slot[0], 0x00, 'RELAY')
    assert.equal(hex(slot.subarray(1, 33)), f.hops[0].next)
    assert.equal(hex(slot.subarray(33, 48)), '0104000005dc' + '00'.repeat(9), 'delay 1500 ms, then zeros')
    const after = processPacket(packet, hops[f.path[0].hop].key)
    assert.ok(after.ok && after.type === 'forward')
    assert.equal(hex(slot.subarray(48, 80)), hex(after.packet.subarray(GAMMA_OFFSET, HEADER_LENGTH)), 'next gamma')
    assert.equal(hex(after.packet.subarray(BETA_OFFSET, GAMMA_OFFSET)), hex(routing.subarray(SLOT_SIZE, SLOT_SIZE + ROUTING_INFO_LENGTH)), 'beta shifted by one slot')
    // gamma = HMAC(key_mu, beta || version)
    const mu = Buffer.from(f.hops[0].mu, 'hex')
    assert.equal(createHmac('sha256', mu).update(packet.subarray(BETA_OFFSET, GAMMA_OFFSET)).update(Uint8Array.of(PACKET_VERSION)).digest('hex'),
      hex(packet.subarray(GAMMA_OFFSET, HEADER_LENGTH)))
  })

  it('reply block, reply packet and opened reply are the recorded ones', () => {
    const v = vector.surb
    const tape = replay(v.random)
    const surb = createSurb(hopsOf(v.path), tape.random)
    assert.equal(tape.rest(), 0)
    assert.equal(surb.surb.length, 529)
    assert.equal(hex(surb.surb), v.surb)
    assert.equal(hex(surb.id), v.id)
    assert.equal(hex(surbSecretToBytes(surb.secret)), v.secret)
    // with the creator's own key for the last hop (one X25519 instead of one per hop): the same bytes
    const path = pathOf(v.path)
    const ownTape = replay(v.random)
    const own = createSurb(hopsOf(v.path), ownTape.random, path[path.length - 1].key)
    assert.equal(ownTape.rest(), 0)
    assert.equal(hex(own.surb), v.surb)
    assert.equal(hex(surbSecretToBytes(own.secret)), v.secret)
    const replyTape = replay(v.replyRandom)
    const reply = packetFromSurb(unhex(v.surb), unhex(v.replyPayload), { random: replyTape.random })
    assert.equal(replyTape.rest(), 0)
    assert.equal(hex(reply.firstHop), v.replyFirstHop)
    assert.equal(hex(reply.packet), v.replyPacket)
    const body = checkWalk(pathOf(v.path), reply.packet, v.hops)
    const opened = openReply(body, surbSecretFromBytes(unhex(v.secret)))
    assert.ok(opened.ok)
    assert.equal(hex(opened.payload), v.opened)
    assert.equal(hex(opened.payload), v.replyPayload)
  })
})

describe('sphinx: round trips for every path length', () => {
  for (let n = 1; n <= MAX_HOPS; n++) {
    it(`${n} hop(s): delivered payload equals the sent one; every packet is PACKET_SIZE; no plaintext on the way`, () => {
      // every other hop after the first reached as a CLIENT, and a delay in every forwarding slot
      const path = pool.slice(0, n).map((h, i) => ({ ...h, client: i % 2 === 1, delayMs: i < n - 1 ? 1000 * i + 1 : undefined }))
      const payload = randomBytes(1000)
      const built = createPacket(path, payload)
      assert.deepEqual(built.firstHop, path[0].address)
      const { packets, result } = run(path, built.packet)
      assert.ok(result.ok && result.type === 'final')
      assert.equal(result.command, 'service')
      assert.deepEqual(result.id, built.id)
      assert.deepEqual(result.payload, new Uint8Array(payload))
      assert.equal(packets.length, n)
      for (const p of packets) {
        assert.equal(p.length, PACKET_SIZE)
        assert.equal(p[0], 0x02)
        for (let at = 0; at + 16 <= payload.length; at += 100) assert.ok(!contains(p, payload.subarray(at, at + 16)), 'plaintext leaked')
      }
    })

    it(`${n} hop(s): SURB round trip`, () => {
      const path = pool.slice(MAX_HOPS - n).map((h, i) => ({ ...h, client: i === n - 1 && n > 1 }))
      const { surb, id, secret } = createSurb(path)
      assert.equal(surb.length, SURB_SIZE)
      const stored = surbSecretFromBytes(surbSecretToBytes(secret))
      const replyText = randomBytes(300)
      const reply = packetFromSurb(surb, replyText)
      assert.deepEqual(reply.firstHop, path[0].address)
      assert.equal(reply.packet.length, PACKET_SIZE)
      const { packets, result } = run(path, reply.packet)
      assert.ok(result.ok && result.type === 'final')
      assert.equal(result.command, 'reply')
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

describe('sphinx: a reply block built with its creator\'s own key', () => {
  it('is byte for byte the block built without it, for every path length, and opens the reply', () => {
    for (let n = 1; n <= MAX_HOPS; n++) {
      for (let round = 0; round < 4; round++) {
        const path = [...pool.slice(0, n - 1), makeHop()]
        const seed = new Uint8Array(randomBytes(16))
        const tape = (): RandomSource => { let c = 0; return (len) => { const out = new Uint8Array(len); for (let i = 0; i < len; i++) out[i] = seed[(c++) % 16] ^ (c >>> 4); return out } }
        const plain = createSurb(path, tape())
        const own = createSurb(path, tape(), path[n - 1].key)
        assert.equal(hex(own.surb), hex(plain.surb), `${n} hops, round ${round}`)
        assert.equal(hex(surbSecretToBytes(own.secret)), hex(surbSecretToBytes(plain.secret)))
        const reply = packetFromSurb(own.surb, new Uint8Array([1, 2, 3]))
        const { result } = run(path, reply.packet)
        assert.ok(result.ok && result.type === 'final' && result.command === 'reply')
        const opened = openReply(result.payload, own.secret)
        assert.ok(opened.ok)
        assert.deepEqual([...opened.payload], [1, 2, 3])
      }
    }
  })

  it('refuses a key that is not the last hop\'s', () => {
    const path = pool.slice(0, 3)
    assert.throws(() => createSurb(path, undefined, pool[0].key), { name: 'InvalidPathError', message: /ownKey is not the private key of the last hop/ })
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
    for (const version of [0x00, 0x01, 0x03, 0xff]) {
      const p = valid.slice(); p[0] = version
      assert.deepEqual(processPacket(p, key), { ok: false, reason: 'version' })
    }
    for (let i = 0; i < 300; i++) {
      const garbage = randomBytes(PACKET_SIZE)
      if (i % 2 === 0) garbage[0] = 0x02
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
      assert.ok(result.ok && result.type === 'final' && result.command === 'reply')
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
    assert.throws(() => createPacket([{ address: new Uint8Array(32), onionKey: pool[0].onionKey }], new Uint8Array(1)), { name: 'InvalidPathError' })
    assert.throws(() => createPacket([{ address: new Uint8Array(38).fill(1), onionKey: pool[0].onionKey }], new Uint8Array(1)), { name: 'InvalidPathError' })
    assert.throws(() => createPacket([{ address: pool[0].address, onionKey: new Uint8Array(31) }], new Uint8Array(1)), { name: 'InvalidPathError' })
    assert.throws(() => createPacket([{ address: pool[0].address, onionKey: new Uint8Array(32) }], new Uint8Array(1)), { name: 'InvalidPathError' })
    assert.throws(() => createPacket([{ ...pool[0], client: true }, pool[1]], new Uint8Array(1)), { name: 'InvalidPathError' }, 'a first hop cannot be a client')
    assert.throws(() => createPacket([pool[0], { ...pool[1], delayMs: 5 }], new Uint8Array(1)), { name: 'InvalidPathError' }, 'no delay on the last hop')
    for (const delayMs of [-1, 1.5, 2 ** 32, Number.NaN]) {
      assert.throws(() => createPacket([{ ...pool[0], delayMs }, pool[1]], new Uint8Array(1)), { name: 'InvalidPathError' }, `delay ${delayMs}`)
    }
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

/**
 * A one-hop packet whose (only) slot is given raw, built here from the primitives exactly as SPEC.md
 * section 6 says (n = 1: no filler): the hop's MAC passes, so processPacket reaches the slot's contents.
 */
function packetWithSlot (onionKey: Uint8Array, slot: Uint8Array, payload = new Uint8Array(0)): Uint8Array {
  const x = new Uint8Array(randomBytes(32))
  const s = x25519Raw(x, onionKey)
  const packet = new Uint8Array(PACKET_SIZE)
  packet[0] = PACKET_VERSION
  packet.set(x25519BaseRaw(x), 1)
  const beta = new Uint8Array(ROUTING_INFO_LENGTH)
  beta.set(randomBytes(ROUTING_INFO_LENGTH))
  beta.set(slot, 0)
  chacha20(deriveKey('rho', s), beta, beta)
  packet.set(beta, BETA_OFFSET)
  packet.set(hmacSha256(deriveKey('mu', s), beta, undefined, PACKET_VERSION), GAMMA_OFFSET)
  const body = packet.subarray(PAYLOAD_OFFSET)
  body[17] = payload.length
  body.set(payload, 18)
  lionessEncrypt(lionessKey(deriveKey('pi', s)), body, body)
  return packet
}

function slotOf (command: number, extensions: number[], address: Uint8Array = new Uint8Array(32).fill(7)): Uint8Array {
  const slot = new Uint8Array(SLOT_SIZE)
  slot[0] = command
  slot.set(address, 1)
  slot.set(extensions, 33)
  return slot
}

describe('sphinx: slot commands and extensions (SPEC.md sections 3 and 7)', () => {
  const hop = pool[0]
  const process = (command: number, extensions: number[], address?: Uint8Array): ProcessResult =>
    processPacket(packetWithSlot(hop.onionKey, slotOf(command, extensions, address)), hop.key)

  it('reads a delay, skips unknown optional types (>= 0x80), and tells RELAY from CLIENT', () => {
    const relay = process(0x00, [0x01, 4, 0, 0, 0, 5])
    assert.ok(relay.ok && relay.type === 'forward')
    assert.equal(relay.command, 'relay')
    assert.equal(relay.delayMs, 5)
    assert.deepEqual(relay.next, new Uint8Array(32).fill(7))
    const client = process(0x01, [0x80, 2, 0xaa, 0xbb, 0x01, 4, 0xff, 0xff, 0xff, 0xff])
    assert.ok(client.ok && client.type === 'forward')
    assert.equal(client.command, 'client')
    assert.equal(client.delayMs, 0xffff_ffff)
    const full = process(0x00, [0xff, 13, ...new Array(13).fill(9)])
    assert.ok(full.ok && full.type === 'forward' && full.delayMs === 0, 'one optional entry filling all 15 bytes')
    const none = process(0x00, [])
    assert.ok(none.ok && none.type === 'forward' && none.delayMs === 0)
  })

  it('drops unknown required types, malformed lists and bytes after the end with reason extension', () => {
    const cases: Array<[string, number[]]> = [
      ['unknown required type 0x02', [0x02, 0]],
      ['unknown required type 0x7f', [0x7f, 1, 0]],
      ['a delay of 3 bytes', [0x01, 3, 0, 0, 1]],
      ['a delay given twice', [0x01, 4, 0, 0, 0, 1, 0x01, 4, 0, 0, 0, 2]],
      ['an entry running past the 15 bytes', [0x80, 14]],
      ['a type byte in the last position', [0xff, 12, ...new Array(12).fill(0), 0x80]],
      ['a non-zero byte after the end of the list', [0x00, 0, 0, 1]],
      ['a non-zero byte after a delay and the end', [0x01, 4, 0, 0, 0, 1, 0x00, 0, 0, 0, 0, 0, 0, 0, 5]]
    ]
    for (const [name, ext] of cases) assert.deepEqual(process(0x00, ext), { ok: false, reason: 'extension' }, name)
    assert.deepEqual(process(0x02, [0x05, 0]), { ok: false, reason: 'extension' }, 'final slots follow the same rules')
  })

  it('drops unknown commands (slot-type) and an all-zero address (next-hop)', () => {
    for (const command of [0x04, 0x7f, 0xff]) assert.deepEqual(process(command, []), { ok: false, reason: 'slot-type' })
    assert.deepEqual(process(0x00, [], new Uint8Array(32)), { ok: false, reason: 'next-hop' })
    assert.deepEqual(process(0x01, [], new Uint8Array(32)), { ok: false, reason: 'next-hop' })
  })

  it('a SERVICE slot delivers the payload and the id; a REPLY slot the whole body', () => {
    const id = new Uint8Array(32)
    id.set(randomBytes(16))
    const service = processPacket(packetWithSlot(hop.onionKey, slotOf(0x02, [], id), Uint8Array.of(1, 2, 3)), hop.key)
    assert.ok(service.ok && service.type === 'final' && service.command === 'service')
    assert.deepEqual(service.id, id.subarray(0, 16))
    assert.deepEqual(service.payload, Uint8Array.of(1, 2, 3))
    const reply = processPacket(packetWithSlot(hop.onionKey, slotOf(0x03, [], id)), hop.key)
    assert.ok(reply.ok && reply.type === 'final' && reply.command === 'reply')
    assert.equal(reply.payload.length, BODY_LENGTH)
  })
})

describe('sphinx: primitives match node:crypto (libsodium and the precomputed-pad HMAC)', () => {
  it('HMAC-SHA256: RFC 4231 test case 2, and random keys and lengths against createHmac', () => {
    assert.equal(hex(hmacSha256(new TextEncoder().encode('Jefe'), new TextEncoder().encode('what do ya want for nothing?'))),
      '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843')
    for (let i = 0; i < 200; i++) {
      const key = randomBytes(1 + (i % 64))
      const message = randomBytes((i * 37) % 2700)
      assert.equal(hex(hmacSha256(key, message)), createHmac('sha256', key).update(message).digest('hex'))
      assert.equal(hex(hmacSha256(key, message, undefined, i % 256)), createHmac('sha256', key).update(message).update(Uint8Array.of(i % 256)).digest('hex'))
    }
    for (const label of ['rho', 'mu', 'pi', 'replay', 'pad'] as Label[]) {
      const secret = randomBytes(32)
      assert.equal(hex(deriveKey(label, secret)), createHmac('sha256', label).update(secret).digest('hex'), label)
    }
  })

  it('ChaCha20 (zero nonce, counter 0) equals OpenSSL chacha20 with a zero 16-byte IV; SHA-256 equals createHash', () => {
    for (const length of [0, 1, 63, 64, 65, 128, 480, 2575, 2607, 4000]) {
      const key = randomBytes(32)
      const data = randomBytes(length)
      assert.equal(hex(chacha20(key, data)), createCipheriv('chacha20', key, Buffer.alloc(16)).update(data).toString('hex'), `${length} bytes`)
      assert.equal(hex(sha256(data)), createHash('sha256').update(data).digest('hex'))
    }
  })

  it('X25519 on raw bytes equals node:crypto (clamping included) and refuses small-order points', () => {
    for (let i = 0; i < 50; i++) {
      const scalar = randomBytes(32)
      const point = generateOnionKey().publicKey
      assert.equal(hex(x25519Raw(scalar, point)), hex(x25519(importPrivateKey(scalar), importPublicKey(point))))
      assert.equal(hex(x25519BaseRaw(scalar)), hex(onionPrivateKeyFromRaw(scalar).publicKey))
      assert.equal(hex(x25519BaseRaw(scalar)), hex(x25519(importPrivateKey(scalar), importPublicKey(Uint8Array.of(9, ...new Uint8Array(31))))))
    }
    assert.throws(() => x25519Raw(randomBytes(32), new Uint8Array(32)), { name: 'InvalidKeyError' })
    assert.throws(() => x25519Raw(randomBytes(31), new Uint8Array(32)), { name: 'InvalidKeyError' })
  })
})

describe('sphinx: addresses and libp2p peer ids', () => {
  it('an Ed25519 peer id and its 32-byte address convert both ways', async () => {
    const key = await generateKeyPair('Ed25519')
    const peerId = peerIdFromPrivateKey(key)
    const address = addressFromPeerId(peerId)
    assert.deepEqual(address, key.publicKey.raw)
    assert.deepEqual(addressFromPeerId(peerId.toString()), address)
    assert.ok(peerIdFromAddress(address).equals(peerId))
    assert.deepEqual(peerIdBytesFromAddress(address), peerId.toMultihash().bytes)
    assert.equal(hex(peerIdBytesFromAddress(address).subarray(0, 6)), '002408011220')
  })

  it('other key types, bad strings and wrong lengths are named errors', async () => {
    const secp = peerIdFromPrivateKey(await generateKeyPair('secp256k1'))
    assert.throws(() => addressFromPeerId(secp), { name: 'InvalidAddressError' })
    assert.throws(() => addressFromPeerId('not a peer id'), { name: 'InvalidAddressError' })
    assert.throws(() => peerIdFromAddress(new Uint8Array(31)), { name: 'InvalidAddressError' })
    assert.throws(() => peerIdBytesFromAddress(new Uint8Array(38)), { name: 'InvalidAddressError' })
  })
})
