/**
 * node/noise-crypto.ts: the libsodium crypto under Noise gives the same bytes as the library's own
 * (pure JavaScript) crypto, refuses a tampered message, and a node using it talks Noise to a node
 * using the library's default crypto over loopback TCP (the wire did not change).
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, describe, it } from 'node:test'
import { noise, pureJsCrypto } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import type { Libp2p } from '@libp2p/interface'
import { Uint8ArrayList } from 'uint8arraylist'
import { sodiumNoiseCrypto } from '../node/noise-crypto.ts'
import { within } from './helpers/wait.ts'

function nonceOf (n: number): Uint8Array {
  const nonce = new Uint8Array(12)
  new DataView(nonce.buffer).setBigUint64(4, BigInt(n), true)
  return nonce
}

describe('Noise crypto (libsodium)', () => {
  it('seals and opens exactly as the library crypto does, for one buffer and for a list', () => {
    for (const size of [0, 1, 12, 1199, 1200, 3105, 16 * 3106, 65_519]) {
      const k = randomBytes(32)
      const ad = randomBytes(size % 3 === 0 ? 0 : 32)
      const nonce = nonceOf(size)
      const pt = new Uint8Array(randomBytes(size))
      const expected = pureJsCrypto.chaCha20Poly1305Encrypt(pt, nonce, ad, k).subarray()
      assert.deepEqual(new Uint8Array(sodiumNoiseCrypto.chaCha20Poly1305Encrypt(pt, nonce, ad, k).subarray()), new Uint8Array(expected), `seal of ${size} bytes`)
      const list = new Uint8ArrayList(pt.subarray(0, Math.min(12, size)), pt.subarray(Math.min(12, size)))
      assert.deepEqual(new Uint8Array(sodiumNoiseCrypto.chaCha20Poly1305Encrypt(list, nonce, ad, k).subarray()), new Uint8Array(expected), `seal of a list of ${size} bytes`)
      // opened into a fresh buffer, and in place as the library asks (dst over the ciphertext)
      assert.deepEqual(new Uint8Array(sodiumNoiseCrypto.chaCha20Poly1305Decrypt(expected, nonce, ad, k).subarray()), pt)
      const copy = new Uint8Array(expected)
      const opened = sodiumNoiseCrypto.chaCha20Poly1305Decrypt(copy, nonce, ad, k, copy.subarray(0, size)).subarray()
      assert.deepEqual(new Uint8Array(opened), pt)
      assert.deepEqual(new Uint8Array(sodiumNoiseCrypto.chaCha20Poly1305Decrypt(new Uint8ArrayList(expected.subarray(0, 5), expected.subarray(5)), nonce, ad, k).subarray()), pt)
      // a destination elsewhere (the library copies a list first) is written; one shifted over the ciphertext is not used
      const elsewhere = new Uint8Array(size)
      assert.deepEqual(new Uint8Array(sodiumNoiseCrypto.chaCha20Poly1305Decrypt(expected, nonce, ad, k, elsewhere).subarray()), pt)
      assert.deepEqual(elsewhere, pt)
      if (size > 0) {
        const shared = new Uint8Array(expected.length + 1)
        shared.set(expected, 1)
        assert.deepEqual(new Uint8Array(sodiumNoiseCrypto.chaCha20Poly1305Decrypt(shared.subarray(1), nonce, ad, k, shared.subarray(0, size)).subarray()), pt)
      }
    }
  })

  it('refuses a tampered message, a wrong nonce and a message shorter than its tag', () => {
    const k = randomBytes(32)
    const sealed = new Uint8Array(sodiumNoiseCrypto.chaCha20Poly1305Encrypt(new Uint8Array(3000), nonceOf(1), new Uint8Array(0), k).subarray())
    const flipped = new Uint8Array(sealed)
    flipped[100] ^= 1
    assert.throws(() => sodiumNoiseCrypto.chaCha20Poly1305Decrypt(flipped, nonceOf(1), new Uint8Array(0), k), { name: 'NoiseDecryptError' })
    assert.throws(() => sodiumNoiseCrypto.chaCha20Poly1305Decrypt(sealed, nonceOf(2), new Uint8Array(0), k), { name: 'NoiseDecryptError' })
    assert.throws(() => sodiumNoiseCrypto.chaCha20Poly1305Decrypt(new Uint8Array(15), nonceOf(1), new Uint8Array(0), k), { name: 'NoiseDecryptError' })
  })

  it('derives the same X25519 keys and shared secrets as the library crypto', () => {
    const a = sodiumNoiseCrypto.generateX25519KeyPair()
    const b = pureJsCrypto.generateX25519KeyPair()
    assert.deepEqual(new Uint8Array(pureJsCrypto.generateX25519KeyPairFromSeed(a.privateKey).publicKey), new Uint8Array(a.publicKey))
    assert.deepEqual(new Uint8Array(sodiumNoiseCrypto.generateX25519KeyPairFromSeed(b.privateKey).publicKey), new Uint8Array(b.publicKey))
    assert.deepEqual(new Uint8Array(sodiumNoiseCrypto.generateX25519SharedKey(a.privateKey, b.publicKey)), new Uint8Array(pureJsCrypto.generateX25519SharedKey(b.privateKey, a.publicKey)))
    // a small-order point (all-zero result) is refused, as the library's node:crypto path does
    assert.throws(() => sodiumNoiseCrypto.generateX25519SharedKey(a.privateKey, new Uint8Array(32)))
  })

  describe('a connection between a node with this crypto and one with the library default', () => {
    const nodes: Libp2p[] = []
    after(async () => { await Promise.all(nodes.map(async n => { await within(Promise.resolve(n.stop()), 10_000, 'node stop') })) })

    it('carries 1 MiB each way intact', { timeout: 120_000 }, async () => {
      const make = async (crypto?: typeof sodiumNoiseCrypto): Promise<Libp2p> => {
        const n = await createLibp2p({
          addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
          transports: [tcp()],
          connectionEncrypters: [noise(crypto == null ? {} : { crypto })],
          streamMuxers: [yamux()],
          connectionManager: { allow: ['/ip4/127.0.0.1/ipcidr/8'] }
        })
        nodes.push(n)
        return n
      }
      const ours = await make(sodiumNoiseCrypto)
      const theirs = await make()
      const PROTOCOL = '/p2pchat-test/echo/1.0'
      await theirs.handle(PROTOCOL, async (stream) => {
        for await (const chunk of stream) stream.send(chunk instanceof Uint8Array ? chunk : chunk.subarray())
        await stream.close()
      })
      const stream = await ours.dialProtocol(theirs.getMultiaddrs()[0], PROTOCOL, { signal: AbortSignal.timeout(30_000) })
      const sent = new Uint8Array(randomBytes(1 << 20))
      const parts: Uint8Array[] = []
      const reading = (async () => { for await (const chunk of stream) parts.push(chunk instanceof Uint8Array ? chunk : chunk.subarray()) })()
      for (let o = 0; o < sent.length; o += 40_000) {
        if (!stream.send(sent.subarray(o, o + 40_000))) await stream.onDrain({ signal: AbortSignal.timeout(30_000) })
      }
      await stream.close({ signal: AbortSignal.timeout(30_000) })
      await within(reading, 60_000, 'the echo')
      const received = Buffer.concat(parts)
      assert.equal(received.byteLength, sent.length)
      assert.ok(received.equals(sent), 'the echo is the bytes sent')
    })
  })
})
