/**
 * Relay admission on a live in-process network (issue 12, item 4): relays on 127.N.0.1 (their own /16s)
 * attest each other in their gossiped descriptors (field 0x81, node/admission.ts): each reaches the
 * others at their descriptor addresses and sends loop probes through them. A listener of the gossip
 * (the bootstrap node, as a client would) then admits the relays (protocols/onion/admission.ts):
 * - every honest relay, sampled by the /16 it was reached at;
 * - never a relay that drops every packet (no probe comes back through it);
 * - a relay whose descriptor names an address in another relay's /16 first, where it does not listen,
 *   counts by the /16 the others reached it at.
 */
import assert from 'node:assert/strict'
import { statSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { ATTESTED_FILE } from '../node/admission.ts'
import { after, before, describe, it } from 'node:test'
import { admitRelays, judgeRelays } from '../protocols/onion/admission.ts'
import { chooseMixes, pathRelays } from '../protocols/onion/paths.ts'
import { ChatNetwork } from './helpers/chat-network.ts'
import type { TestRelay } from './helpers/chat-network.ts'
import { waitFor } from './helpers/wait.ts'

/** A port free on `host` now (each relay has its own loopback address, so it stays free). */
async function freePort (host: string): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, host, () => {
      const port = (s.address() as { port: number }).port
      s.close(() => { resolve(port) })
    })
  })
}

describe('relay admission on a live network', { timeout: 300_000 }, () => {
  const net = new ChatNetwork()
  let honest: TestRelay[] = []
  let blackhole: TestRelay
  let impostor: TestRelay

  before(async () => {
    await net.bootstrap()
    honest = [await net.relay(), await net.relay(), await net.relay()]
    // relay 4 takes no packet from anyone (a token bucket that never fills): no probe comes back through it
    blackhole = await net.relay({ limits: { packetsPerSecond: 0, burst: 0 } })
    // relay 5 listens on 127.5.0.1 but names 127.1.0.2 (relay 1's /16, where nothing listens) first
    const port = await freePort('127.5.0.1')
    impostor = await net.relay({ listen: [`/ip4/127.5.0.1/tcp/${port}`], announce: [`/ip4/127.1.0.2/tcp/${port}`, `/ip4/127.5.0.1/tcp/${port}`] })
    await net.waitForRelayGossip(60_000)
  })

  after(async () => { await net.teardown() })

  it('admits relays others reached and probed, never one no probe came back through, and counts a false /16 by the reached one', async () => {
    const now = (): number => Date.now()
    const boot = net.boot
    assert.ok(boot != null)
    const verdicts = (): ReturnType<typeof judgeRelays> => judgeRelays(boot.relays.list(), { minAgeMs: 1_000, now: now() })
    const ok = [...honest, impostor]
    await waitFor(() => ok.every(r => verdicts().get(r.relay.peerId)?.admitted === true),
      () => `the honest relays admitted: ${JSON.stringify([...verdicts().values()])}`, 120_000, 200)
    const v = verdicts()
    for (const [i, r] of honest.entries()) assert.equal(v.get(r.relay.peerId)?.group, `ip4:127.${i + 1}`)
    assert.equal(v.get(impostor.relay.peerId)?.group, 'ip4:127.5', 'the impostor counts by the /16 it was reached at')
    assert.ok((v.get(honest[0].relay.peerId)?.ageMs ?? 0) >= 1_000)
    assert.equal(v.get(blackhole.relay.peerId)?.admitted, false)
    assert.equal(v.get(blackhole.relay.peerId)?.reason, 'probe')
    // the honest relays did probe it, and reached it
    const seen = honest[0].relay.attester.view().get(blackhole.relay.peerId)
    assert.equal(seen?.probed, false)
    assert.equal(seen?.reached, 'ip4:127.4')
    assert.ok(honest[0].relay.attester.stats.probesLost > 0 || honest[0].relay.attester.stats.probesSent > honest[0].relay.attester.stats.probesBack)

    // paths from these live descriptors: the black hole never, the impostor under 127.5 only
    const admission = admitRelays(boot.relays.list(), { minAgeMs: 1_000, now: now(), minAdmitted: 4 })
    assert.equal(admission.relaxed, false)
    const candidates = pathRelays(admission.relays, now(), undefined, admission.groupOf)
    assert.ok(!candidates.some(c => c.peerId === blackhole.relay.peerId))
    assert.equal(candidates.find(c => c.peerId === impostor.relay.peerId)?.subnets?.[0], 'ip4:127.5')
    for (let i = 0; i < 1000; i++) {
      const { mixes } = chooseMixes(candidates, [], 2)
      assert.ok(!mixes.some(m => m.peerId === blackhole.relay.peerId))
    }
  })

  it('a relay restarted on its data directory keeps when it first saw the others (attested.json, 0600)', async () => {
    const r = honest[2]
    const before = r.relay.attester.view()
    assert.ok(before.size >= 4)
    assert.equal(statSync(join(r.dataDir, ATTESTED_FILE)).mode & 0o777, 0o600)
    await r.relay.stop()
    net.relays.splice(net.relays.indexOf(r), 1)
    const again = await net.relay({ dataDir: r.dataDir })
    await waitFor(() => again.relay.attester.view().size >= 4, 'the restarted relay to track the others', 60_000, 100)
    for (const [peerId, seen] of before) assert.equal(again.relay.attester.view().get(peerId)?.firstSeen, seen.firstSeen, 'first seen kept across the restart')
  })
})
