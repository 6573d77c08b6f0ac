/**
 * Path rules (protocols/onion/paths.ts, SPEC.md "Path rules") on descriptor sets: signed relay
 * descriptors with addresses in chosen /16s, through the relay directory and `pathRelays`, as a client
 * sees them. 20 honest relays on distinct /16s plus 100 Sybils (one /16, k /16s, one family): over
 * 10,000 samples every path has at most one relay per /16 and per family, the guard's counting, and a
 * forward path and its reply block share no relay but the guard.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ephemeralIdentity } from '../node/identity.ts'
import { KIND_RELAY, signRecord } from '../protocols/directory/record.ts'
import { OnionClient } from '../protocols/onion/client.ts'
import { chooseMixes, chooseRelay, chooseRelayChecked, groupsOf, pathRelays, subnetOfAddr, subnetsOfAddrs, UNKNOWN_SUBNET } from '../protocols/onion/paths.ts'
import type { PathRelay } from '../protocols/onion/paths.ts'
import { RelayDirectory } from '../protocols/onion/relay-directory.ts'

const SAMPLES = 10_000

/** Relays from signed descriptors listening at `addrs[i]`, as `pathRelays` gives them. */
async function relaysAt (addrs: string[][]): Promise<PathRelay[]> {
  const dir = new RelayDirectory()
  const now = Date.now()
  for (const a of addrs) {
    const id = await ephemeralIdentity()
    const rec = signRecord({
      kind: KIND_RELAY,
      nick: '',
      identityKey: id.identityKey,
      onionKeys: [{ epoch: 1, notBefore: now - 1000, notAfter: now + 3600_000, key: id.onionPublic }],
      addrs: a,
      sequence: 1n,
      expiry: now + 3600_000
    }, id.signer)
    assert.ok(dir.add(rec.bytes) != null)
  }
  return pathRelays(dir.list(), now)
}

/** 20 honest relays on 20 distinct /16s, and 100 Sybils spread over `k` /16s (10.200+i.x.y). */
async function network (k: number): Promise<{ relays: PathRelay[], sybils: Set<string> }> {
  const honest = Array.from({ length: 20 }, (_, i) => [`/ip4/10.${i + 1}.0.1/tcp/4001`])
  const bad = Array.from({ length: 100 }, (_, i) => [`/ip4/10.${200 + (i % k)}.${i >> 8}.${(i & 0xff) + 1}/tcp/4001`])
  const relays = await relaysAt([...honest, ...bad])
  const sybils = new Set(relays.filter(r => r.subnets?.[0]?.startsWith('ip4:10.2') === true && Number(r.subnets[0].split('.')[1]) >= 200).map(r => r.peerId))
  assert.equal(sybils.size, 100)
  return { relays, sybils }
}

function assertDiverse (path: PathRelay[], what: string): void {
  const seen = new Set<string>()
  for (const r of path) {
    for (const g of groupsOf(r)) {
      assert.ok(!seen.has(g), `${what}: two relays in ${g}`)
      seen.add(g)
    }
  }
}

/**
 * One message as a client builds it: a guard, a final relay, the reply block's mixes (excluding the
 * guard and the final relay) and the forward mixes (excluding those too), checked against the rules.
 * Returns how many of the 10,000 paths had a Sybil first and last hop.
 */
function sampleAndCheck (relays: PathRelay[], sybils: Set<string>): { bothEnds: number, sybilMixes: number } {
  let bothEnds = 0
  let sybilMixes = 0
  for (let i = 0; i < SAMPLES; i++) {
    const guard = chooseRelay(relays)
    assert.ok(guard != null)
    const final = chooseRelay(relays, [guard])
    assert.ok(final != null)
    const reply = chooseMixes(relays, [guard, final])
    const forward = chooseMixes(relays, [guard, final], 2, reply.mixes)
    assert.equal(reply.relaxed || reply.short || forward.relaxed || forward.short, false)
    assertDiverse([guard, ...forward.mixes, final], 'forward path')
    assertDiverse([...reply.mixes, guard], 'reply path')
    const fwdIds = new Set([guard, ...forward.mixes, final].map(r => r.peerId))
    const shared = reply.mixes.filter(r => fwdIds.has(r.peerId))
    assert.deepEqual(shared, [], 'the reply block shares no relay with the forward path but the guard')
    // disjoint by group too: no mix of one path in a /16 or family of a mix of the other
    for (const m of forward.mixes) for (const r of reply.mixes) assert.ok(!groupsOf(m).some(g => groupsOf(r).includes(g)))
    if (sybils.has(guard.peerId) && sybils.has(final.peerId)) bothEnds++
    sybilMixes += [...forward.mixes, ...reply.mixes].filter(r => sybils.has(r.peerId)).length
  }
  return { bothEnds, sybilMixes }
}

describe('path rules', () => {
  it('reads the /16 of IPv4 and the /32 of IPv6 addresses; DNS names share one unknown group', () => {
    assert.equal(subnetOfAddr('/ip4/192.168.7.9/tcp/1'), 'ip4:192.168')
    assert.equal(subnetOfAddr('/ip4/127.12.0.1/tcp/4001/p2p/12D3KooWabc'), 'ip4:127.12')
    assert.equal(subnetOfAddr('/ip6/2001:db8:1::5/tcp/1'), 'ip6:2001:db8')
    assert.equal(subnetOfAddr('/ip6/2001:0db8:0000:0001:0:0:0:5/tcp/1'), 'ip6:2001:db8')
    assert.equal(subnetOfAddr('/ip6/::1/tcp/1'), 'ip6:0:0')
    assert.equal(subnetOfAddr('/dns4/relay.example/tcp/1'), undefined)
    assert.equal(subnetOfAddr('/ip6/1:2:3/tcp/1'), undefined)
    assert.deepEqual(subnetsOfAddrs(['/dns4/a.example/tcp/1', '/ip4/10.1.2.3/tcp/1', '/ip4/10.1.9.9/tcp/2', '/ip6/2001:db8::1/tcp/1']), ['ip4:10.1', 'ip6:2001:db8'])
    assert.deepEqual(subnetsOfAddrs(['/dns4/a.example/tcp/1']), [UNKNOWN_SUBNET])
  })

  it('20 honest relays and 100 Sybils in one /16: 10,000 paths obey the rules, at most one Sybil each', async () => {
    const { relays, sybils } = await network(1)
    const { bothEnds, sybilMixes } = sampleAndCheck(relays, sybils)
    assert.equal(bothEnds, 0, 'guard and final relay are never both in the Sybil /16')
    // sampling by /16: the Sybil /16 weighs one of 21 groups (4.8 % of picks), not 100 of 120
    assert.ok(sybilMixes / (4 * SAMPLES) < 0.1, `Sybil share of mixes ${sybilMixes / (4 * SAMPLES)}`)
  })

  for (const k of [2, 5, 20]) {
    it(`20 honest relays and 100 Sybils over ${k} /16s: 10,000 paths obey the rules`, async () => {
      const { relays, sybils } = await network(k)
      const { bothEnds } = sampleAndCheck(relays, sybils)
      const share = k / (20 + k)
      // at most one relay per /16: guard and final relay are in two different /16s of the adversary
      assert.ok(bothEnds / SAMPLES <= share * share + 0.02, `both ends hostile ${bothEnds / SAMPLES} vs share² ${share * share}`)
    })
  }

  it('100 Sybils of one declared family over 20 /16s: never two on a path', async () => {
    const { relays, sybils } = await network(20)
    for (const r of relays) if (sybils.has(r.peerId)) r.family = 'ab'.repeat(32)
    const { bothEnds } = sampleAndCheck(relays, sybils)
    assert.equal(bothEnds, 0)
  })

  it('below the smallest network the rules relax, and say so', async () => {
    const relays = await relaysAt([['/ip4/10.1.0.1/tcp/1'], ['/ip4/10.1.0.2/tcp/1'], ['/ip4/10.1.0.3/tcp/1'], ['/ip4/10.2.0.1/tcp/1']])
    const guard = relays.find(r => r.subnets?.[0] === 'ip4:10.2')
    assert.ok(guard != null)
    const got = chooseMixes(relays, [guard])
    assert.equal(got.mixes.length, 2)
    assert.equal(got.relaxed, true)
    assert.equal(got.short, false)
    const crowded = relays.find(r => r.subnets?.[0] === 'ip4:10.1')
    assert.ok(crowded != null)
    const one = chooseRelayChecked(relays, relays.filter(r => r !== crowded).map(r => r.peerId))
    assert.equal(one.relay, crowded)
    assert.equal(one.relaxed, true, 'it shares its /16 with an excluded relay')
    const few = chooseMixes(relays, [guard, ...relays.filter(r => r !== guard).slice(0, 2)])
    assert.deepEqual({ n: few.mixes.length, short: few.short }, { n: 1, short: true })
    // 4 relays: guard, final, the reply block's 2 mixes; the forward path reuses them (relaxed), not short
    const [g, f, ...rest] = await relaysAt(Array.from({ length: 4 }, (_, i) => [`/ip4/10.${i + 1}.0.1/tcp/1`]))
    const reply = chooseMixes([g, f, ...rest], [g, f])
    assert.deepEqual({ n: reply.mixes.length, relaxed: reply.relaxed }, { n: 2, relaxed: false })
    const forward = chooseMixes([g, f, ...rest], [g, f], 2, reply.mixes)
    assert.deepEqual({ n: forward.mixes.length, short: forward.short, relaxed: forward.relaxed }, { n: 2, short: false, relaxed: true })
  })

  it('the onion client keeps a request and its reply block disjoint, and warns when it must relax', async () => {
    const relays = await relaysAt(Array.from({ length: 8 }, (_, i) => [`/ip4/10.${i + 1}.0.1/tcp/1`]))
    const guard = relays[0]
    const warnings: string[] = []
    const client = new OnionClient({
      self: new Uint8Array(32).fill(7),
      relays: () => relays,
      entry: () => ({ relay: guard, submit: () => true }),
      onWarning: (m) => warnings.push(m)
    })
    for (let i = 0; i < 200; i++) {
      const final = relays[1 + (i % 7)]
      const sent = client.send(final, 1, new Uint8Array(10), { onAnswer: () => {} })
      assert.ok(sent.replyPath != null)
      assert.equal(sent.replyPath.at(-1), guard.peerId)
      const forward = [guard.peerId, ...sent.path]
      assert.deepEqual(sent.replyPath.slice(0, -1).filter(p => forward.includes(p)), [])
      assert.equal(new Set(forward).size, forward.length)
    }
    assert.equal(warnings.length, 0)
    // 4 relays in one /16 and a guard elsewhere: a path of 2 mixes + final needs 3 groups besides the guard's
    const crowded = await relaysAt([['/ip4/10.9.0.1/tcp/1'], ...Array.from({ length: 6 }, (_, i) => [`/ip4/10.1.0.${i + 1}/tcp/1`])])
    const tight = new OnionClient({ self: new Uint8Array(32).fill(7), relays: () => crowded, entry: () => ({ relay: crowded[0], submit: () => true }), onWarning: (m) => warnings.push(m) })
    tight.send(crowded[1], 1, new Uint8Array(10))
    assert.equal(warnings.length, 1)
    assert.match(warnings[0], /distinct \/16s or families/)
  })
})
