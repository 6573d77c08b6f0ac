/**
 * Fuzzing every handler that reads the network, 100,000+ inputs per family, from a fixed seed
 * (FUZZ_SEED overrides; `npm run fuzz -- --iterations N --seed S` runs longer). Each family's
 * reason histogram is printed. The relay families run against one relay as RelayNode composes it (the
 * mix, client links, the service dispatcher: test/fuzz/onion-rig.ts); afterwards that relay still takes
 * a client, forwards its packet and answers a request through a reply block.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { createP2PNode } from '../node/create.ts'
import { ephemeralIdentity } from '../node/identity.ts'
import { ClientLink, transportKeyOf } from '../protocols/onion/client-link.ts'
import { OnionKeyRing } from '../protocols/onion/keyring.ts'
import { OnionService } from '../protocols/onion/relay.ts'
import { decodeAnswer, encodeServiceBody } from '../protocols/onion/service-body.ts'
import { createPacket, createSurb, generateOnionKey, onionPrivateKeyFromRaw, openReply, processPacket } from '../protocols/onion/sphinx.ts'
import { addressFromPeerId } from '../protocols/onion/address.ts'
import type { FinalResult } from '../protocols/onion/sphinx.ts'
import { formatReport, Rng, totalInputs } from './fuzz/generators.ts'
import { runFamily } from './fuzz/families.ts'
import type { Family } from './fuzz/families.ts'
import { ECHO_SERVICE, startOnionRig } from './fuzz/onion-rig.ts'
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

  for (const family of ['onion', 'relay', 'chat', 'directory', 'json'] as Family[]) {
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

  it('no unhandled rejection happened, and the fuzzed relay still takes a client, forwards its packet to the next relay and answers through a reply block', async () => {
    const bId = await ephemeralIdentity()
    const cId = await ephemeralIdentity()
    const b = await createP2PNode({ privateKey: bId.privateKey, listen: ['/ip4/127.0.0.1/tcp/0'] })
    const c = await createP2PNode({ privateKey: cId.privateKey, listen: ['/ip4/127.0.0.1/tcp/0'] })
    const bRing = new OnionKeyRing({ replayCapacity: 100 })
    const got: FinalResult[] = []
    const bService = new OnionService(b, { keyRing: bRing, onDeliver: (r) => got.push(r) })
    const answers: Uint8Array[] = []
    let link: ClientLink | undefined
    try {
      await bService.start()
      await rig.node.dial(b.getMultiaddrs()[0], { signal: AbortSignal.timeout(5_000) })
      await c.dial(rig.node.getMultiaddrs()[0], { signal: AbortSignal.timeout(5_000) })
      link = await ClientLink.open(c, rig.node.peerId, { onDeliver: p => answers.push(p) })
      // a packet from the client, through the fuzzed relay, to a SERVICE layer at relay b
      const text = new TextEncoder().encode('after 100,000 bad packets')
      const { firstHop, packet } = createPacket([
        { address: rig.self, onionKey: rig.ring.current.publicKey },
        { address: addressFromPeerId(b.peerId), onionKey: bRing.current.publicKey }
      ], text)
      assert.ok(link.submit(firstHop, packet))
      await waitFor(() => got.length === 1, 'the real packet through the fuzzed relay', 10_000)
      assert.deepEqual(got[0].payload, text)
      // a request to the fuzzed relay's own service, answered through the client's reply block
      const clientKey = generateOnionKey()
      const clientAddress = transportKeyOf(c.peerId) as Uint8Array
      const block = createSurb([{ address: rig.self, onionKey: rig.ring.current.publicKey }, { address: clientAddress, onionKey: clientKey.publicKey, client: true }])
      const request = new TextEncoder().encode('echo this')
      const ask = createPacket([{ address: rig.self, onionKey: rig.ring.current.publicKey }], encodeServiceBody({ service: ECHO_SERVICE, replyBlock: block.surb, request }))
      assert.ok(link.submit(ask.firstHop, ask.packet))
      await waitFor(() => answers.length === 1, 'the answer through the reply block', 10_000)
      const res = processPacket(answers[0], onionPrivateKeyFromRaw(clientKey.privateKey))
      assert.ok(res.ok && res.type === 'final' && res.command === 'reply')
      const opened = openReply(res.payload, block.secret)
      assert.ok(opened.ok)
      assert.deepEqual(decodeAnswer(opened.payload), { service: ECHO_SERVICE, answer: request })
    } finally {
      await link?.close()
      await bService.stop()
      await b.stop()
      await c.stop()
    }
    assert.deepEqual(unhandled, [], 'no unhandled rejection')
  })
})
