/**
 * Sends made ahead (issue 13, protocols/onion/client.ts `prepareDelayMs`), without a network and on
 * mocked timers: after a send to a final relay the client makes the next one to it `prepareDelayMs`
 * later; the next send uses it (no X25519 left but the body's), and its packet and reply block work
 * hop by hop like a fresh one's; one made from another relay set, entry relay or final relay key, or
 * older than MAX_PREPARED_AGE_MS, is wiped and never sent; at most MAX_PREPARED are kept; close()
 * wipes them. Also sphinx.ts: createPacket is preparePacket then finishPacket, byte for byte, and a
 * prepared packet goes out once.
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import type { TestContext } from 'node:test'
import { MAX_PREPARED, MAX_PREPARED_AGE_MS, OnionClient } from '../protocols/onion/client.ts'
import type { EntryLink } from '../protocols/onion/client.ts'
import { decodeServiceBody, encodeAnswer } from '../protocols/onion/service-body.ts'
import { createPacket, discardPacket, finishPacket, generateOnionKey, onionPrivateKeyFromRaw, packetFromSurb, preparePacket, processPacket } from '../protocols/onion/sphinx.ts'
import type { OnionPrivateKey } from '../protocols/onion/sphinx.ts'
import type { PathRelay } from '../protocols/onion/paths.ts'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const DELAY_MS = 100

function relaySet (n: number): { relays: PathRelay[], keys: Map<string, OnionPrivateKey> } {
  const relays: PathRelay[] = []
  const keys = new Map<string, OnionPrivateKey>()
  for (let i = 0; i < n; i++) {
    const k = generateOnionKey()
    const address = new Uint8Array(randomBytes(32))
    relays.push({ address, onionKey: k.publicKey, peerId: `relay-${i}`, subnets: [`ip4:10.${i}`] })
    keys.set(hex(address), onionPrivateKeyFromRaw(k.privateKey))
  }
  return { relays, keys }
}

function setup (n = 7): { onion: OnionClient, relays: PathRelay[], keys: Map<string, OnionPrivateKey>, submitted: Array<{ to: Uint8Array, packet: Uint8Array }>, link: EntryLink } {
  const { relays, keys } = relaySet(n)
  const submitted: Array<{ to: Uint8Array, packet: Uint8Array }> = []
  const link: EntryLink = { relay: relays[0], submit: (to, packet) => { submitted.push({ to, packet }); return true } }
  const onion = new OnionClient({ self: new Uint8Array(randomBytes(32)), relays: () => relays, entry: () => link, prepareDelayMs: DELAY_MS })
  return { onion, relays, keys, submitted, link }
}

/** Peels hop by hop with the relays' keys: the final layer's payload and the relays passed, or where it left the relays. */
function peel (keys: Map<string, OnionPrivateKey>, to: Uint8Array, packet: Uint8Array): { payload?: Uint8Array, via: string[], leftAt?: Uint8Array, packet: Uint8Array } {
  const via: string[] = []
  for (let hop = 0; hop < 8; hop++) {
    const key = keys.get(hex(to))
    if (key == null) return { via, leftAt: to, packet }
    via.push(hex(to))
    const res = processPacket(packet, key)
    assert.ok(res.ok, `hop ${hop} opens its layer`)
    if (res.type === 'final') return { payload: res.payload, via, packet }
    to = res.next
    packet = res.packet
  }
  throw new Error('too many hops')
}

/** The final relay's side of a request: the body's request, and an answer through its reply block delivered to the client. */
function serve (t: ReturnType<typeof setup>, i: number, answer: Uint8Array): Uint8Array {
  const sent = t.submitted[i]
  const p = peel(t.keys, sent.to, sent.packet)
  assert.ok(p.payload != null, 'the packet reaches its final relay')
  const body = decodeServiceBody(p.payload)
  assert.ok(body.ok)
  assert.ok(body.body.replyBlock != null, 'with a reply block')
  const { firstHop, packet } = packetFromSurb(body.body.replyBlock, encodeAnswer(body.body.service, answer))
  const back = peel(t.keys, firstHop, packet)
  assert.ok(back.leftAt != null, 'the reply leaves the relays for the client')
  t.onion.deliver(back.packet)
  return body.body.request
}

/**
 * A send to relay 3 with an answer; prepareDelayMs later (one made ahead for it), `change` to what the
 * client draws from; then the next send to relay 3: the client's made-ahead counts.
 */
function sendChangeSend (t: TestContext, change: (s: ReturnType<typeof setup>) => void): { used: number, built: number, stale: number } {
  t.mock.timers.enable({ apis: ['setTimeout'] })
  const s = setup()
  const final = s.relays[3]
  s.onion.send(final, 0x05, Uint8Array.of(1), { onAnswer: () => {} })
  t.mock.timers.tick(DELAY_MS)
  change(s)
  s.onion.send(final, 0x05, Uint8Array.of(1), { onAnswer: () => {} })
  const counts = { ...s.onion.stats.prepared }
  s.onion.close()
  return counts
}

describe('sends made ahead (OnionClient prepareDelayMs)', () => {
  it('the next send to a final relay is made in idle time after a send to it, then used: its packet and reply block work', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] })
    const s = setup()
    const final = s.relays[3]
    const answers: Uint8Array[] = []
    s.onion.send(final, 0x05, Uint8Array.of(1), { onAnswer: (a) => { answers.push(a) } })
    assert.equal(s.onion.preparedCount, 0, 'nothing is made on the send itself')
    t.mock.timers.tick(DELAY_MS - 1)
    assert.equal(s.onion.preparedCount, 0, 'nor before prepareDelayMs')
    t.mock.timers.tick(1)
    assert.equal(s.onion.preparedCount, 1, 'one made ahead for that final relay')
    s.onion.send(final, 0x05, Uint8Array.of(2), { onAnswer: (a) => { answers.push(a) } })
    assert.deepEqual(s.onion.stats.prepared, { used: 1, built: 1, stale: 0 })
    assert.equal(s.onion.preparedCount, 0, 'used once')
    assert.deepEqual(serve(s, 0, Uint8Array.of(0xa0)), Uint8Array.of(1))
    assert.deepEqual(serve(s, 1, Uint8Array.of(0xa1)), Uint8Array.of(2), 'the made-ahead packet reaches the final relay with this send\'s request')
    assert.equal(answers.length, 2, 'both answers came back through their reply blocks')
    assert.equal(s.onion.stats.replies, 2)
    // another final relay, or a send without an answer, is another kind: not served by this one
    t.mock.timers.tick(DELAY_MS)
    s.onion.send(s.relays[4], 0x05, Uint8Array.of(3))
    assert.equal(s.onion.stats.prepared.used, 1)
    s.onion.close()
  })

  it('one made from another relay set, entry key or final key, or too old, is wiped and never sent', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'] })
    const s = setup()
    const final = s.relays[3]
    const send = (): void => { s.onion.send(final, 0x05, Uint8Array.of(9), { onAnswer: () => {} }) }
    send()
    t.mock.timers.tick(DELAY_MS)
    // a mix rotates its onion key: the relay set differs
    const mix = s.relays[5]
    const rotated = generateOnionKey()
    s.keys.set(hex(mix.address), onionPrivateKeyFromRaw(rotated.privateKey))
    mix.onionKey = rotated.publicKey
    send()
    assert.deepEqual(s.onion.stats.prepared, { used: 0, built: 2, stale: 1 })
    assert.ok(peel(s.keys, s.submitted[1].to, s.submitted[1].packet).payload != null, 'the fresh one works with the new key')
    t.mock.timers.tick(DELAY_MS)
    // a relay leaves the set
    const gone = s.relays.pop() as PathRelay
    send()
    assert.deepEqual(s.onion.stats.prepared, { used: 0, built: 3, stale: 2 })
    // made from the set without `gone`; it comes back before the next send: stale again
    t.mock.timers.tick(DELAY_MS)
    s.relays.push(gone)
    send()
    assert.deepEqual(s.onion.stats.prepared, { used: 0, built: 4, stale: 3 })
    // too old
    t.mock.timers.tick(DELAY_MS)
    t.mock.timers.tick(MAX_PREPARED_AGE_MS + 1)
    send()
    assert.deepEqual(s.onion.stats.prepared, { used: 0, built: 5, stale: 4 })
    t.mock.timers.tick(DELAY_MS)
    // the final relay's own key changed: the one made for its old key is not taken
    const finalKey = generateOnionKey()
    s.keys.set(hex(final.address), onionPrivateKeyFromRaw(finalKey.privateKey))
    final.onionKey = finalKey.publicKey
    send()
    assert.equal(s.onion.stats.prepared.used, 0)
    const last = s.submitted[s.submitted.length - 1]
    assert.ok(peel(s.keys, last.to, last.packet).payload != null, 'the fresh one opens with the final relay\'s new key')
    // in time, from the same set: used
    t.mock.timers.tick(DELAY_MS)
    send()
    assert.equal(s.onion.stats.prepared.used, 1)
    const used = s.submitted[s.submitted.length - 1]
    assert.ok(peel(s.keys, used.to, used.packet).payload != null)
    s.onion.close()
  })

  it('the same relays listed in another order are the same set: the one made ahead is used', (t) => {
    assert.deepEqual(sendChangeSend(t, (s) => { s.relays.reverse() }), { used: 1, built: 1, stale: 0 })
  })

  it('a new entry relay makes the one made ahead stale', (t) => {
    assert.deepEqual(sendChangeSend(t, (s) => { (s.link as { relay: PathRelay }).relay = s.relays[1] }), { used: 0, built: 2, stale: 1 })
  })

  it(`keeps at most MAX_PREPARED (${MAX_PREPARED}); close() wipes them and makes no more`, (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] })
    const s = setup(MAX_PREPARED + 4)
    for (const r of s.relays.slice(1)) s.onion.send(r, 0x05, Uint8Array.of(1), { onAnswer: () => {} })
    t.mock.timers.tick(DELAY_MS)
    assert.equal(s.onion.preparedCount, MAX_PREPARED)
    s.onion.close()
    assert.equal(s.onion.preparedCount, 0)
    s.onion.send(s.relays[1], 0x05, Uint8Array.of(1), { onAnswer: () => {} })
    t.mock.timers.tick(DELAY_MS)
    assert.equal(s.onion.preparedCount, 0)
  })

  it('without prepareDelayMs nothing is made ahead', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] })
    const { relays } = relaySet(6)
    const link: EntryLink = { relay: relays[0], submit: () => true }
    const onion = new OnionClient({ self: new Uint8Array(randomBytes(32)), relays: () => relays, entry: () => link })
    onion.send(relays[3], 0x05, Uint8Array.of(1), { onAnswer: () => {} })
    t.mock.timers.tick(10 * DELAY_MS)
    assert.equal(onion.preparedCount, 0)
    assert.deepEqual(onion.stats.prepared, { used: 0, built: 0, stale: 0 })
  })
})

describe('sphinx.ts preparePacket / finishPacket', () => {
  it('createPacket is preparePacket then finishPacket, byte for byte on the same random stream; a prepared packet goes out once', () => {
    const { relays } = relaySet(3)
    const path = relays.map(r => ({ address: r.address, onionKey: r.onionKey }))
    const stream = (): (n: number) => Uint8Array => {
      let counter = 0
      return (n) => {
        const out = new Uint8Array(n)
        for (let at = 0; at < n; at += 32) out.set(createHash('sha256').update(`prepare ${counter++}`).digest().subarray(0, Math.min(32, n - at)), at)
        return out
      }
    }
    const payload = new Uint8Array(300).fill(7)
    const whole = createPacket(path, payload, { random: stream() })
    const random = stream()
    const prepared = preparePacket(path, { random })
    const split = finishPacket(prepared, payload, { random })
    assert.deepEqual(split.packet, whole.packet)
    assert.deepEqual(split.id, whole.id)
    assert.deepEqual(split.firstHop, whole.firstHop)
    assert.equal(prepared.secrets.length, 0, 'the secrets are gone once used')
    assert.throws(() => finishPacket(prepared, payload), { name: 'InvalidPathError' })
    const unused = preparePacket(path)
    const held = unused.secrets.slice()
    discardPacket(unused)
    assert.ok(held.every(s => s.every(b => b === 0)), 'discard wipes the secrets')
    assert.throws(() => finishPacket(unused, payload), { name: 'InvalidPathError' })
  })
})
