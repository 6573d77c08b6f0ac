/**
 * A relay's own loop cover (node/relay-cover.ts; SPEC.md section 15, "Relays' loop cover"):
 *
 * - off unless a rate is configured: no timer, no packet, nothing counted (a network at `fast`, and
 *   every test that counts relay traffic);
 * - on a hand-driven clock: a loop that cannot be built (fewer than two other relays) is counted
 *   `failed`, never thrown out of the timer; a packet that is not one of its loops is not claimed;
 * - in a loopback network of 4 relays with loops on: each relay's loops cross two other relays and come
 *   back to it (counted `back`), are dropped there before the services see them (no drop-cover count
 *   at the final relay: the mixes forward them, only the sender reads them), and a user at `fast` still
 *   chats through the same relays.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { RelayCover } from '../node/relay-cover.ts'
import { seededUniform } from '../protocols/onion/delays.ts'
import { ChatNetwork, eventsOf } from './helpers/chat-network.ts'
import { FakeClock } from './helpers/fake-clock.ts'
import { waitFor } from './helpers/wait.ts'

const seed = (label: string): Uint8Array => new Uint8Array(createHash('sha256').update(`p2pchat relay cover ${label}`).digest())

describe('relay loop cover on a hand-driven clock', () => {
  it('off at rate 0: no timer, no packet; too few relays: counted failed, nothing sent; a stranger id is not claimed', () => {
    const clock = new FakeClock()
    const sent: Uint8Array[] = []
    const self = (): { address: Uint8Array, onionKey: Uint8Array, addrs: string[] } => ({ address: new Uint8Array(32), onionKey: new Uint8Array(32), addrs: [] })
    const off = new RelayCover({ perMinute: 0, meanDelayMs: 500, selfPeerId: 'me', self, send: (_h, p) => sent.push(p), relays: () => [], clock, uniform: seededUniform(seed('off')) })
    off.start()
    assert.equal(off.on, false)
    assert.equal(clock.timers.size, 0, 'no timer when off')
    clock.advance(600_000)
    off.stop()
    assert.deepEqual(off.stats, { sent: 0, back: 0, lost: 0, failed: 0 })
    const lonely = new RelayCover({ perMinute: 60, meanDelayMs: 500, selfPeerId: 'me', self, send: (_h, p) => sent.push(p), relays: () => [], clock, uniform: seededUniform(seed('lonely')) })
    lonely.start()
    clock.advance(60_000)
    lonely.stop()
    assert.ok(lonely.stats.failed > 30 && lonely.stats.failed < 100, `${lonely.stats.failed} failed in a minute at 60 a minute`)
    assert.equal(lonely.stats.sent, 0)
    assert.equal(sent.length, 0)
    assert.equal(lonely.delivered(new Uint8Array(16)), false)
  })
})

describe('relay loop cover in a loopback network', { timeout: 300_000 }, () => {
  const net = new ChatNetwork()
  before(async () => {
    await net.bootstrap()
    // 120 loops a minute each: many loops in a short test (the rate is configurable; off by default)
    await net.startRelays(4, { loopCoverPerMinute: 120 })
  })
  after(async () => { await net.teardown() })

  it('every relay\'s loops come back through two others and are dropped before the services; a fast user still chats', async () => {
    const relays = net.relays.map(r => r.relay)
    const drops = (): number => relays.reduce((a, r) => a + ((r.services.stats as { dropCover?: number }).dropCover ?? 0), 0)
    const dropsBefore = drops()
    await waitFor(() => relays.every(r => r.loopCover.stats.back >= 10), () => `10 loops back at every relay (${relays.map(r => JSON.stringify(r.loopCover.stats)).join(', ')})`, 120_000)
    for (const r of relays) {
      const s = r.loopCover.stats
      assert.ok(s.back <= s.sent, 'never more back than sent')
      // loops are not lost on a healthy loopback network (a few may still be out)
      assert.ok(s.lost <= s.sent / 10, `lost ${s.lost} of ${s.sent}`)
    }
    assert.equal(drops(), dropsBefore, 'no loop reached a drop service: each was read by its own sender')
    const alice = await net.user('alice', { privacy: 'fast' })
    const bob = await net.user('bob', { privacy: 'fast' })
    const { id } = alice.chat.send(`bob#${bob.chat.fingerprint}`, 'through relays that send their own loops')
    await waitFor(() => eventsOf(bob, 'message').some(e => e.id === id), () => 'bob to get the message', 120_000)
    process.stdout.write(`# relay loops: ${relays.map(r => `${r.loopCover.stats.sent} sent, ${r.loopCover.stats.back} back, ${r.loopCover.stats.lost} lost, ${r.loopCover.stats.failed} failed`).join('; ')}\n`)
  })
})
