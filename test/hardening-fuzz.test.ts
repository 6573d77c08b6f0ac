/**
 * Fuzzing every handler that reads the network, 100,000+ inputs per family, from a fixed seed
 * (FUZZ_SEED overrides; `npm run fuzz -- --iterations N --seed S` runs longer). Each family's
 * reason histogram is printed. Afterwards the fuzzed relay still forwards a real packet.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { createP2PNode } from '../node/create.ts'
import { ephemeralIdentity } from '../node/identity.ts'
import { OnionService } from '../protocols/onion/relay.ts'
import { addressFromPeerId, createPacket, generateOnionKey, onionPrivateKeyFromRaw } from '../protocols/onion/sphinx.ts'
import type { FinalResult } from '../protocols/onion/sphinx.ts'
import { formatReport, Rng, totalInputs } from './fuzz/generators.ts'
import { runFamily } from './fuzz/families.ts'
import type { Family } from './fuzz/families.ts'
import { startOnionRig } from './fuzz/onion-rig.ts'
import type { OnionRig } from './fuzz/onion-rig.ts'
import { waitFor } from './helpers/wait.ts'

const SEED = Number(process.env.FUZZ_SEED ?? 20261121) >>> 0
const PER_FAMILY = 100_000

describe(`wire fuzzing, seed ${SEED}, ${PER_FAMILY} inputs per family`, { timeout: 240_000 }, () => {
  let rig: OnionRig
  const unhandled: unknown[] = []
  const onUnhandled = (err: unknown): void => { unhandled.push(err) }

  before(async () => {
    process.on('unhandledRejection', onUnhandled)
    rig = await startOnionRig()
  })
  after(async () => {
    process.off('unhandledRejection', onUnhandled)
    await rig.stop()
  })

  for (const family of ['onion', 'chat', 'directory', 'json'] as Family[]) {
    it(`${family}: no crash, no hang, only counted rejections`, async (t) => {
      const report = await runFamily(family, new Rng(SEED), PER_FAMILY, rig)
      if (report == null) {
        t.skip('cli/json-commands.ts is not there yet')
        return
      }
      const text = formatReport(family, report)
      t.diagnostic(text)
      assert.ok(totalInputs(report) >= PER_FAMILY, `${family}: ${totalInputs(report)} inputs`)
      for (const [handler, r] of Object.entries(report)) {
        assert.ok(r.inputs > 0, `${handler} saw no input`)
        assert.equal(r.outcomes['drop:internal'] ?? 0, 0, `${handler}: internal errors`)
      }
    })
  }

  it('no unhandled rejection happened, and the fuzzed relay still forwards a real packet', async () => {
    const bId = await ephemeralIdentity()
    const aId = await ephemeralIdentity()
    const b = await createP2PNode({ privateKey: bId.privateKey, listen: ['/ip4/127.0.0.1/tcp/0'] })
    const a = await createP2PNode({ privateKey: aId.privateKey, listen: ['/ip4/127.0.0.1/tcp/0'] })
    const bKey = generateOnionKey()
    const got: FinalResult[] = []
    const bService = new OnionService(b, { userKey: onionPrivateKeyFromRaw(bKey.privateKey), onDeliver: (r) => got.push(r) })
    const aService = new OnionService(a, { userKey: onionPrivateKeyFromRaw(generateOnionKey().privateKey), onDeliver: () => {} })
    try {
      await bService.start()
      await aService.start()
      await a.dial(rig.node.getMultiaddrs()[0], { signal: AbortSignal.timeout(5_000) })
      await rig.node.dial(b.getMultiaddrs()[0], { signal: AbortSignal.timeout(5_000) })
      const text = new TextEncoder().encode('after 100,000 bad packets')
      const { firstHop, packet } = createPacket([
        { address: rig.self, onionKey: rig.ring.current.publicKey },
        { address: addressFromPeerId(b.peerId), onionKey: bKey.publicKey }
      ], text)
      aService.send(firstHop, packet)
      await waitFor(() => got.length === 1, 'the real packet through the fuzzed relay', 10_000)
      assert.deepEqual(got[0].payload, text)
    } finally {
      await aService.stop()
      await bService.stop()
      await a.stop()
      await b.stop()
    }
    assert.deepEqual(unhandled, [], 'no unhandled rejection')
  })
})
