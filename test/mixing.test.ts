/**
 * Poisson mixing (issue 11, SPEC.md section 15), without timers: the sender's per-hop delays fit the
 * exponential distribution of the configured mean (Kolmogorov-Smirnov with the DKW-Massart bound, false
 * alarm <= 1e-6, on a seeded generator so a run is reproducible), the client writes one into every
 * forwarding hop's slot and none into the last, and the relay's mix scheduler, driven by a fake clock,
 * releases in due order, never early, refuses delays over its cap and stays within its bound with
 * counted drops.
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { createP2PNode } from '../node/create.ts'
import type { P2PNode } from '../node/create.ts'
import { ephemeralIdentity } from '../node/identity.ts'
import { parseCli, parseTiming } from '../cli/args.ts'
import type { DatabaseSync } from 'node:sqlite'
import { encodeAnswer } from '../protocols/mailbox/codec.ts'
import { MailboxKeys } from '../node/mailbox-keys.ts'
import { MailboxClient } from '../node/mailboxes.ts'
import { DEFAULT_TIMING } from '../node/chat-node.ts'
import type { MailboxTiming } from '../node/mailboxes.ts'
import { DEFAULT_PRIVACY, PRIVACY_LEVELS, privacyLevel, roundTripAllowanceMs, STORED_MIX_DELAY_MS, storedAnswerAllowanceMs, withOverrides } from '../node/privacy.ts'
import { AnswerTimeoutError, OnionClient } from '../protocols/onion/client.ts'
import { decodeServiceBody, SERVICE_MAILBOX } from '../protocols/onion/service-body.ts'
import type { EntryLink } from '../protocols/onion/client.ts'
import { cryptoUniform, exponentialDelay, exponentialDelayCdf, hopDelays, MAX_HOP_DELAY_MS, seededUniform } from '../protocols/onion/delays.ts'
import { addressFromPeerId, createPacket, generateOnionKey, OnionKeyRing, OnionService, onionPrivateKeyFromRaw, packetFromSurb, processPacket } from '../protocols/onion/index.ts'
import type { OnionPrivateKey } from '../protocols/onion/index.ts'
import type { PathRelay } from '../protocols/onion/paths.ts'
import { MixScheduler } from '../protocols/onion/scheduler.ts'
import { FALSE_ALARM, ksDistance, ksThreshold } from './helpers/distribution.ts'
import { FakeClock } from './helpers/fake-clock.ts'
import { waitFor, within } from './helpers/wait.ts'
import { mailboxKeysDb } from './helpers/mailbox-keys-db.ts'

const seed = (label: string): Uint8Array => new Uint8Array(createHash('sha256').update(`p2pchat mixing test ${label}`).digest())
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

describe('per-hop delays drawn by the sender', () => {
  it('fit the exponential distribution of the configured mean (KS, false alarm <= 1e-6), and the check rejects a 10 % wrong mean', () => {
    const mean = 500
    const uniform = seededUniform(seed('draws'))
    const draws = Array.from({ length: 20_000 }, () => exponentialDelay(mean, uniform))
    assert.ok(draws.every(d => Number.isInteger(d) && d >= 0 && d <= MAX_HOP_DELAY_MS))
    const threshold = ksThreshold(draws.length, FALSE_ALARM)
    const d = ksDistance(draws, k => exponentialDelayCdf(k, mean))
    assert.ok(d <= threshold, `KS distance ${d.toFixed(4)} > ${threshold.toFixed(4)}`)
    // the same check on the same draws against a mean 10 % off, and against the shape being uniform,
    // fails: it is not a check that passes anything
    assert.ok(ksDistance(draws, k => exponentialDelayCdf(k, mean * 1.1)) > threshold, 'a mean 10 % off is rejected')
    assert.ok(ksDistance(draws, k => Math.min(1, Math.max(0, (k + 1) / (2 * mean)))) > threshold, 'a uniform of the same mean is rejected')
    const avg = draws.reduce((a, b) => a + b, 0) / draws.length
    process.stdout.write(`# 20000 draws of mean ${mean}: KS D = ${d.toFixed(4)} (threshold ${threshold.toFixed(4)} at alpha 1e-6), sample mean ${avg.toFixed(1)} ms\n`)
  })

  it('come from a reproducible seeded generator in tests and from the CSPRNG in the product; mean 0 draws nothing', () => {
    const a = seededUniform(seed('same'))
    const b = seededUniform(seed('same'))
    const c = seededUniform(seed('other'))
    const xs = Array.from({ length: 1000 }, () => a())
    assert.deepEqual(Array.from({ length: 1000 }, () => b()), xs)
    assert.notDeepEqual(Array.from({ length: 1000 }, () => c()), xs)
    const u = cryptoUniform()
    const ys = Array.from({ length: 10_000 }, () => u())
    assert.ok(ys.every(y => y >= 0 && y < 1))
    assert.ok(new Set(ys).size > 9_990, 'CSPRNG draws are distinct')
    const none = hopDelays(0)
    assert.ok(Array.from({ length: 100 }, none).every(d => d === 0))
    assert.throws(() => exponentialDelay(-1, u), RangeError)
  })

  describe('OnionClient writes them into every forwarding slot', () => {
    const relays: Array<PathRelay & { key: OnionPrivateKey }> = []
    const keys = new Map<string, OnionPrivateKey>()
    for (let i = 0; i < 6; i++) {
      const k = generateOnionKey()
      const address = new Uint8Array(randomBytes(32))
      const r = { address, onionKey: k.publicKey, peerId: `relay-${i}`, key: onionPrivateKeyFromRaw(k.privateKey) }
      relays.push(r)
      keys.set(hex(address), r.key)
    }
    const entry = relays[0]
    const final = relays[1]

    function client (hopDelay?: () => number, more: { slowReplyDelay?: () => number, prepareDelayMs?: number } = {}): { onion: OnionClient, submitted: Array<{ to: Uint8Array, packet: Uint8Array }> } {
      const submitted: Array<{ to: Uint8Array, packet: Uint8Array }> = []
      const link: EntryLink = { relay: entry, submit: (to, packet) => { submitted.push({ to, packet }); return true } }
      const onion = new OnionClient({ self: new Uint8Array(randomBytes(32)), relays: () => relays, entry: () => link, hopDelay, ...more })
      return { onion, submitted }
    }

    /** Peels `packet` from `to` on, hop by hop, with the relays' keys: each forwarding hop's delay and command, then the final layer (and its payload). */
    function peel (to: Uint8Array, packet: Uint8Array): { delays: number[], commands: string[], final: string, payload?: Uint8Array } {
      const delays: number[] = []
      const commands: string[] = []
      for (let hop = 0; hop < 6; hop++) {
        const key = keys.get(hex(to))
        if (key == null) return { delays, commands, final: 'left the relays' }
        const res = processPacket(packet, key)
        assert.ok(res.ok, `hop ${hop} opens its layer`)
        if (res.type === 'final') return { delays, commands, final: res.command, payload: res.payload }
        delays.push(res.delayMs)
        commands.push(res.command)
        to = res.next
        packet = res.packet
      }
      throw new Error('too many hops')
    }

    it('forward packets: both mixes carry a delay, the final relay none; reply blocks: both mixes and the entry relay; all fit the mean (KS, alpha 1e-6)', () => {
      const mean = 300
      const { onion, submitted } = client(hopDelays(mean, seededUniform(seed('client'))))
      const delays: number[] = []
      for (let i = 0; i < 1500; i++) onion.send(final, 0x03, new Uint8Array(100))
      for (const s of submitted) {
        const p = peel(s.to, s.packet)
        assert.equal(p.final, 'service')
        assert.deepEqual(p.commands, ['relay', 'relay'], 'two mixes, then the final relay')
        delays.push(...p.delays)
      }
      for (let i = 0; i < 1500; i++) {
        const { surb } = onion.replyBlock(() => {})
        const { firstHop, packet } = packetFromSurb(surb, new Uint8Array(10))
        const p = peel(firstHop, packet)
        // the last layer is the client's (its key is not among the relays')
        assert.equal(p.final, 'left the relays')
        assert.deepEqual(p.commands, ['relay', 'relay', 'client'], 'mix, mix, then the entry relay hands it to the client')
        delays.push(...p.delays)
      }
      assert.equal(delays.length, 1500 * 2 + 1500 * 3)
      const d = ksDistance(delays, k => exponentialDelayCdf(k, mean))
      const threshold = ksThreshold(delays.length, FALSE_ALARM)
      assert.ok(d <= threshold, `KS distance ${d.toFixed(4)} > ${threshold.toFixed(4)}`)
      assert.ok(ksDistance(delays, k => exponentialDelayCdf(k, mean * 1.1)) > threshold, 'the check can fail')
    })

    /** The forward delays of a send, and those of the reply block it carries (peeled as its answer would be). */
    function sendAndPeel (s: { to: Uint8Array, packet: Uint8Array }): { forward: number[], block: number[] } {
      const p = peel(s.to, s.packet)
      assert.equal(p.final, 'service')
      const body = decodeServiceBody(p.payload ?? new Uint8Array(0))
      assert.ok(body.ok && body.body.replyBlock != null, 'a reply block rides along')
      const { firstHop, packet } = packetFromSurb(body.body.replyBlock, new Uint8Array(10))
      const back = peel(firstHop, packet)
      assert.deepEqual(back.commands, ['relay', 'relay', 'client'])
      return { forward: p.delays, block: back.delays }
    }

    it('a slow reply block (a DEPOSIT\'s answer): its two mixes draw from slowReplyDelay, the entry relay and the forward mixes from hopDelay (KS, alpha 1e-6; both checks can fail)', () => {
      const mean = 300
      const slowMean = 1_800
      const { onion, submitted } = client(hopDelays(mean, seededUniform(seed('slow level'))), { slowReplyDelay: hopDelays(slowMean, seededUniform(seed('slow mixes'))) })
      for (let i = 0; i < 1500; i++) onion.send(final, 0x03, new Uint8Array(100), { onAnswer: () => {}, slowReply: true })
      const atMean: number[] = []
      const slow: number[] = []
      for (const s of submitted) {
        const { forward, block } = sendAndPeel(s)
        atMean.push(...forward, block[2])
        slow.push(block[0], block[1])
      }
      assert.equal(slow.length, 3000)
      const threshold = ksThreshold(slow.length, FALSE_ALARM)
      const dSlow = ksDistance(slow, k => exponentialDelayCdf(k, slowMean))
      assert.ok(dSlow <= threshold, `slow mixes: KS distance ${dSlow.toFixed(4)} > ${threshold.toFixed(4)}`)
      assert.ok(ksDistance(slow, k => exponentialDelayCdf(k, mean)) > threshold, 'the slow mixes do not fit the level\'s mean')
      const t2 = ksThreshold(atMean.length, FALSE_ALARM)
      const dMean = ksDistance(atMean, k => exponentialDelayCdf(k, mean))
      assert.ok(dMean <= t2, `forward mixes and entry relay: KS distance ${dMean.toFixed(4)} > ${t2.toFixed(4)}`)
      assert.ok(ksDistance(atMean, k => exponentialDelayCdf(k, slowMean)) > t2, 'the check can fail')
      process.stdout.write(`# slow reply blocks: 3000 mix delays KS D = ${dSlow.toFixed(4)} vs mean ${slowMean}; 4500 others D = ${dMean.toFixed(4)} vs mean ${mean} (threshold ${threshold.toFixed(4)} / ${t2.toFixed(4)})\n`)
    })

    it('an ordinary answer keeps hopDelay on its block; a send made ahead for an answer is not used for a slow one, nor the other way round', async () => {
      const { onion, submitted } = client(() => 111, { slowReplyDelay: () => 7_777, prepareDelayMs: 1 })
      try {
        onion.send(final, 0x03, new Uint8Array(10), { onAnswer: () => {} })
        assert.deepEqual(sendAndPeel(submitted[0]), { forward: [111, 111], block: [111, 111, 111] })
        await waitFor(() => onion.preparedCount === 1, 'the next answer send made ahead', 5_000, 5)
        onion.send(final, 0x03, new Uint8Array(10), { onAnswer: () => {}, slowReply: true })
        assert.deepEqual(onion.stats.prepared, { used: 0, built: 2, stale: 0 }, 'the answer send made ahead is not taken for a slow one')
        assert.deepEqual(sendAndPeel(submitted[1]), { forward: [111, 111], block: [7_777, 7_777, 111] })
        await waitFor(() => onion.preparedCount === 2, 'the next slow send made ahead', 5_000, 5)
        onion.send(final, 0x03, new Uint8Array(10), { onAnswer: () => {}, slowReply: true })
        onion.send(final, 0x03, new Uint8Array(10), { onAnswer: () => {} })
        assert.equal(onion.stats.prepared.used, 2, 'each kind takes its own')
        assert.deepEqual(sendAndPeel(submitted[2]).block, [7_777, 7_777, 111])
        assert.deepEqual(sendAndPeel(submitted[3]).block, [111, 111, 111])
      } finally {
        onion.close()
      }
    })

    it('without a drawer (the fast level) no slot carries a delay', () => {
      const { onion, submitted } = client()
      for (let i = 0; i < 20; i++) onion.send(final, 0x03, new Uint8Array(10))
      for (const s of submitted) assert.ok(peel(s.to, s.packet).delays.every(d => d === 0))
      const { surb } = onion.replyBlock(() => {})
      const { firstHop, packet } = packetFromSurb(surb, new Uint8Array(10))
      assert.deepEqual(peel(firstHop, packet).delays, [0, 0, 0])
    })
  })
})

describe('the mix scheduler (fake clock)', () => {
  it('releases in due order (ties in arrival order), never before the due time, with one timer armed', () => {
    const clock = new FakeClock()
    const out: Array<{ id: number, at: number }> = []
    const due = new Map<number, number>()
    const s = new MixScheduler<number>({ release: (id) => out.push({ id, at: clock.now() }), maxDelayMs: 10_000, clock })
    const u = seededUniform(seed('order'))
    for (let id = 0; id < 500; id++) {
      const delay = id % 50 === 0 ? 700 : exponentialDelay(400, u, 10_000)
      due.set(id, clock.now() + delay)
      s.add(id, delay)
      assert.ok(clock.timers.size <= 1, 'one timer at most')
      if (id % 10 === 0) clock.advance(3)
    }
    clock.advance(100_000)
    assert.equal(out.length, 500)
    assert.equal(s.size, 0)
    assert.equal(clock.timers.size, 0, 'no timer left armed when empty')
    for (const o of out) assert.equal(o.at, due.get(o.id), 'released exactly at its due time on an exact clock')
    for (let i = 1; i < out.length; i++) {
      const a = out[i - 1]
      const b = out[i]
      assert.ok(a.at < b.at || (a.at === b.at && a.id < b.id), `order at ${i}`)
    }
    assert.equal(s.stats.released, 500)
    assert.equal(s.stats.lateMsTotal, 0)
  })

  it('holds nothing past its due time when the clock moves in big steps, and nothing is released early', () => {
    const clock = new FakeClock()
    const out: number[] = []
    const s = new MixScheduler<number>({ release: (d) => { assert.ok(clock.now() >= d, 'not early'); out.push(d) }, maxDelayMs: 10_000, clock })
    for (let d = 0; d < 1000; d += 7) s.add(d, d)
    clock.advance(499)
    assert.equal(out.length, out.filter(d => d <= 499).length)
    assert.deepEqual(out, Array.from({ length: 72 }, (_, i) => i * 7))
    clock.advance(10_000)
    assert.equal(s.size, 0)
  })

  it('refuses a delay above its cap (delay-cap, counted) and takes one at the cap', () => {
    const clock = new FakeClock()
    const dropped: Array<{ item: string, reason: string }> = []
    const s = new MixScheduler<string>({ release: () => {}, onDrop: (item, reason) => dropped.push({ item, reason }), maxDelayMs: 1_000, clock })
    assert.equal(s.add('over', 1_001), false)
    assert.equal(s.add('at', 1_000), true)
    assert.deepEqual(dropped, [{ item: 'over', reason: 'delay-cap' }])
    assert.deepEqual(s.stats.dropped, { 'delay-cap': 1 })
    assert.equal(s.size, 1)
  })

  it('holds at most maxHeld, dropping a random held entry per excess one (mix-full, counted), new and old alike', () => {
    const clock = new FakeClock()
    const dropped: number[] = []
    const released: number[] = []
    const s = new MixScheduler<number>({
      release: (i) => released.push(i),
      onDrop: (i, reason) => { assert.equal(reason, 'mix-full'); dropped.push(i) },
      maxHeld: 100,
      maxDelayMs: 100_000,
      clock,
      random: seededUniform(seed('drop'))
    })
    for (let i = 0; i < 1000; i++) s.add(i, 10_000 + i)
    assert.equal(s.size, 100)
    assert.equal(s.stats.maxHeld, 100)
    assert.equal(dropped.length, 900)
    assert.equal(s.stats.dropped['mix-full'], 900)
    clock.advance(100_000)
    assert.equal(released.length, 100)
    assert.deepEqual([...dropped, ...released].sort((a, b) => a - b), Array.from({ length: 1000 }, (_, i) => i), 'every entry released or dropped once')
    // random victims: early entries are among both the dropped and the survivors
    assert.ok(released.some(i => i < 500) && released.some(i => i >= 500), `survivors span the arrivals: ${released.slice(0, 10).join(',')}`)
    assert.ok(dropped.includes(999) || released.includes(999))
  })

  it('clear() drops everything and disarms its timer', () => {
    const clock = new FakeClock()
    const s = new MixScheduler<number>({ release: () => { throw new Error('released after clear') }, maxDelayMs: 1000, clock })
    for (let i = 0; i < 10; i++) s.add(i, 100)
    assert.equal(s.clear(), 10)
    assert.equal(clock.timers.size, 0)
    clock.advance(1000)
    assert.equal(s.stats.released, 0)
  })
})

describe('a relay holds a packet for its slot\'s delay (real node, fake mix clock, packets handed in directly)', () => {
  let node: P2PNode
  let service: OnionService
  const clock = new FakeClock()
  const ring = new OnionKeyRing({ replayCapacity: 10_000 })
  const toClient: Array<{ at: number, packet: Uint8Array }> = []
  const client = generateOnionKey()

  before(async () => {
    const id = await ephemeralIdentity()
    node = await createP2PNode({ privateKey: id.privateKey, listen: ['/ip4/127.0.0.1/tcp/0'] })
    service = new OnionService(node, {
      keyRing: ring,
      onDeliver: () => {},
      onClient: (_next, packet) => toClient.push({ at: clock.now(), packet }),
      clock,
      maxDelayMs: 5_000,
      maxHeld: 3
    })
    await service.start()
  })
  after(async () => {
    await service.stop()
    await node.stop()
  })

  /** relay (holding `delayMs`) -> a client: the relay's layer says CLIENT. */
  const packet = (delayMs: number): Uint8Array => createPacket([
    { address: addressFromPeerId(node.peerId), onionKey: ring.current.publicKey, delayMs },
    { address: new Uint8Array(randomBytes(32)), onionKey: client.publicKey, client: true }
  ], new Uint8Array(10)).packet

  it('forwards at once without a delay, after exactly its delay with one, and counts what it holds', () => {
    toClient.length = 0
    service.receive(packet(0), 'peer')
    assert.equal(toClient.length, 1, 'no delay: at once')
    service.receive(packet(750), 'peer')
    assert.equal(service.stats.mixing?.held, 1)
    clock.advance(749)
    assert.equal(toClient.length, 1, 'not before its delay')
    clock.advance(1)
    assert.equal(toClient.length, 2)
    assert.equal(toClient[1].at - toClient[0].at, 750)
    assert.equal(service.stats.mixing?.held, 0)
    assert.equal(service.stats.mixing?.released, 1)
  })

  it('checks replays on arrival (a replayed held packet is not held twice), refuses a delay over its cap, drops at random beyond its bound', () => {
    toClient.length = 0
    const p = packet(100)
    service.receive(p, 'peer')
    service.receive(p, 'peer')
    assert.equal(service.stats.dropped.replay, 1)
    service.receive(packet(5_001), 'peer')
    assert.equal(service.stats.dropped['delay-cap'], 1)
    for (let i = 0; i < 5; i++) service.receive(packet(200 + i), 'peer')
    assert.equal(service.stats.mixing?.held, 3)
    assert.equal(service.stats.dropped['mix-full'], 3)
    clock.advance(1_000)
    assert.equal(toClient.length, 3)
    assert.equal(service.stats.mixing?.held, 0)
  })
})

describe('privacy levels', () => {
  it('fast has no delay; the default mixes; an unknown level is a UserError naming the levels', () => {
    assert.equal(privacyLevel('fast').meanDelayMs, 0)
    assert.ok(privacyLevel(DEFAULT_PRIVACY).meanDelayMs > 0)
    assert.ok(Object.values(PRIVACY_LEVELS).filter(l => l.meanDelayMs > 0).length >= 3)
    assert.throws(() => privacyLevel('paranoid'), (err: Error) => err.name === 'UserError' && /fast, low, standard, high/.test(err.message))
    assert.throws(() => privacyLevel('toString'), (err: Error) => err.name === 'UserError')
  })
})

/** A MailboxClient whose only mailbox relay is `box`, over a stand-in onion client: what its deposits ask of it is what these tests look at. */
function depositClient (onion: OnionClient, box: PathRelay, db: DatabaseSync, timing: Partial<MailboxTiming>): MailboxClient {
  return new MailboxClient({ onion, keys: new MailboxKeys(db), relays: () => [box], entryPeerId: () => 'entry', record: () => new Uint8Array(10), onItem: async () => true, timing })
}

describe('--privacy on p2pchat start', () => {
  it('takes a level by flag or P2PCHAT_PRIVACY (the flag wins), refuses an unknown one, and P2PCHAT_TIMING may shorten the mean (hopDelayMs)', () => {
    assert.equal(parseCli(['start', '--nick', 'al', '--privacy', 'high']).privacy, 'high')
    assert.equal(parseCli(['start', '--nick', 'al']).privacy, undefined, 'no flag, no env: the default level')
    assert.equal(parseCli(['start', '--nick', 'al'], { P2PCHAT_PRIVACY: 'fast' }).privacy, 'fast')
    assert.equal(parseCli(['start', '--nick', 'al', '--privacy=low'], { P2PCHAT_PRIVACY: 'fast' }).privacy, 'low')
    assert.throws(() => parseCli(['start', '--nick', 'al', '--privacy', 'max']), (err: Error) => err.name === 'UserError' && /unknown privacy level "max"/.test(err.message))
    assert.throws(() => parseCli(['id', '--privacy', 'fast']), (err: Error) => err.name === 'UserError')
    assert.deepEqual(parseTiming({ P2PCHAT_TIMING: '{"hopDelayMs":40}' }), { hopDelayMs: 40 })
  })

  it('a DEPOSIT\'s answer: slow mixes only at standard (8 s, scaled with a shortened mean or set), 4 slow means more to wait for it: ~1 % of STOREDs come after the 56 s timeout (still counted), and a DEPOSIT lost on its way waits no more than a minute', () => {
    const std = privacyLevel('standard')
    assert.equal(std.storedMixDelayMs, STORED_MIX_DELAY_MS)
    assert.ok(STORED_MIX_DELAY_MS > std.meanDelayMs)
    assert.equal(storedAnswerAllowanceMs(std), 32_000)
    for (const name of ['fast', 'low', 'high']) {
      const l = privacyLevel(name)
      assert.equal(l.storedMixDelayMs, l.meanDelayMs, name)
      assert.equal(storedAnswerAllowanceMs(l), 0, name)
      assert.doesNotMatch(l.summary, /stored/)
    }
    assert.match(std.summary, /a ✓ \(stored\) comes back through 2 mixes of 8 s mean/)
    assert.equal(withOverrides(std, { meanDelayMs: 50 }).storedMixDelayMs, 800, 'a shortened mean keeps the ratio')
    assert.equal(withOverrides(std, { meanDelayMs: 50, storedMixDelayMs: 80 }).storedMixDelayMs, 80)
    assert.equal(withOverrides(privacyLevel('fast'), { meanDelayMs: 50 }).storedMixDelayMs, 50)
    // the DEPOSIT's whole timeout at standard (ChatNode: requestTimeoutMs + the round trip's allowance + this)
    const timeoutMs = DEFAULT_TIMING.requestTimeoutMs + roundTripAllowanceMs(std) + storedAnswerAllowanceMs(std)
    assert.equal(timeoutMs, 56_000, 'a DEPOSIT lost in a split tries the second mailbox within a minute, as at 3 s (the lab\'s split-and-heal)')
    // a STORED is late when its two slow mixes alone (Gamma(2, D)) take longer than the timeout less ~2 s
    // for its other four hops: P = e^-x (1 + x), between 0.5 % and 1.5 %
    const x = (timeoutMs - 2_000) / std.storedMixDelayMs
    const tail = Math.exp(-x) * (1 + x)
    assert.ok(tail > 0.005 && tail < 0.015, `tail ${tail}`)
  })

  it('MailboxClient.deposit asks for a slow reply block and waits requestTimeoutMs + depositAllowanceMs; other requests and a level without an allowance do not', async () => {
    const box = { address: new Uint8Array(randomBytes(32)), onionKey: generateOnionKey().publicKey, peerId: 'box' }
    const asked: Array<{ service: number, timeoutMs: number, slowReply?: boolean }> = []
    const onion = {
      request: async (_final: PathRelay, service: number, _req: Uint8Array, opts: { timeoutMs: number, slowReply?: boolean }) => {
        asked.push({ service, timeoutMs: opts.timeoutMs, slowReply: opts.slowReply })
        throw new AnswerTimeoutError()
      }
    } as unknown as OnionClient
    const db = mailboxKeysDb()
    const mailboxes = (depositAllowanceMs?: number): MailboxClient => depositClient(onion, box, db, { requestTimeoutMs: 50, ...(depositAllowanceMs != null ? { depositAllowanceMs } : {}) })
    const to = { relay: box.address, mailboxId: new Uint8Array(randomBytes(32)) }
    await assert.rejects(mailboxes(150).deposit(to, new Uint8Array(100)), AnswerTimeoutError)
    await assert.rejects(mailboxes().deposit(to, new Uint8Array(100)), AnswerTimeoutError)
    await assert.rejects(mailboxes(0).deposit(to, new Uint8Array(100)), AnswerTimeoutError)
    assert.deepEqual(asked, [
      { service: SERVICE_MAILBOX, timeoutMs: 200, slowReply: true },
      { service: SERVICE_MAILBOX, timeoutMs: 50, slowReply: undefined },
      { service: SERVICE_MAILBOX, timeoutMs: 50, slowReply: undefined }
    ])
    db.close()
  })

  it('a DEPOSIT waiting for its slow answer gives up at once when a relay on its way is found dead (MailboxUnavailableError); its answer still counts, as a late one', async () => {
    const box = { address: new Uint8Array(randomBytes(32)), onionKey: generateOnionKey().publicKey, peerId: 'box' }
    const answers: Array<(payload: Uint8Array) => void> = []
    const onion = {
      request: async (_final: PathRelay, _service: number, _req: Uint8Array, opts: { onSent?: (relays: string[]) => void }) => {
        opts.onSent?.(['mix-a', 'mix-b', 'box', 'mix-c', 'mix-d', 'entry'])
        return await new Promise<Uint8Array>(resolve => { answers.push(resolve) })
      }
    } as unknown as OnionClient
    const db = mailboxKeysDb()
    const mailboxes = depositClient(onion, box, db, { requestTimeoutMs: 50, depositAllowanceMs: 150 })
    const late: string[] = []
    const to = { relay: box.address, mailboxId: new Uint8Array(randomBytes(32)) }
    const first = mailboxes.deposit(to, new Uint8Array(100), (kind) => { late.push(kind) })
    let settled = false
    first.then(() => { settled = true }, () => { settled = true })
    mailboxes.avoid(new Set(['elsewhere']))
    await new Promise(resolve => setImmediate(resolve))
    assert.equal(settled, false, 'a relay off its way changes nothing')
    mailboxes.avoid(new Set(['mix-c']))
    await assert.rejects(within(first, 5_000, 'the deposit giving up'), (err: Error) => err.name === 'MailboxUnavailableError' && /found dead/.test(err.message))
    // the relay answers after all, in time for the request: the answer is handed on as a late one
    assert.equal(late.length, 0)
    answers[0](new Uint8Array([SERVICE_MAILBOX, ...encodeAnswer({ kind: 'stored', mailboxId: to.mailboxId })]))
    await waitFor(() => late.length > 0, 'the answer handed on', 2_000, 5)
    assert.deepEqual(late, ['stored'])
    // and without a dead relay the deposit gets its answer as before
    const second = mailboxes.deposit(to, new Uint8Array(100), (kind) => { late.push(kind) })
    answers[1](new Uint8Array([SERVICE_MAILBOX, ...encodeAnswer({ kind: 'stored', mailboxId: to.mailboxId })]))
    assert.equal(await second, 'stored')
    assert.deepEqual(late, ['stored'])
    db.close()
  })

  it('a level\'s round-trip allowance covers 5 delayed hops (the 0.9999 quantile of Gamma(5, mean) is 17.6 means)', () => {
    assert.equal(roundTripAllowanceMs(privacyLevel('fast')), 0)
    assert.equal(roundTripAllowanceMs(privacyLevel('standard')), 9_000)
    // Gamma(5, 1) CDF at 18: 1 - e^-18 (1 + 18 + 18^2/2 + 18^3/6 + 18^4/24)
    const x = 18
    const tail = Math.exp(-x) * (1 + x + x ** 2 / 2 + x ** 3 / 6 + x ** 4 / 24)
    assert.ok(tail < 1e-4, `tail ${tail}`)
  })
})
