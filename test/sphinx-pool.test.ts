/**
 * The Sphinx worker pool (protocols/onion/sphinx-pool.ts) and a relay that uses it: results byte for
 * byte as processPacket on this thread, a bounded queue whose refusals are counted, worker threads
 * gone after close(), and the replay check done once, on the relay's thread, for pooled packets.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { after, before, describe, it } from 'node:test'
import { createP2PNode } from '../node/create.ts'
import type { P2PNode } from '../node/create.ts'
import { ephemeralIdentity } from '../node/identity.ts'
import {
  addressFromPeerId, createPacket, generateOnionKey, OnionKeyRing, OnionService, PACKET_SIZE, processPacket
} from '../protocols/onion/index.ts'
import type { FinalResult, ProcessResult } from '../protocols/onion/index.ts'
import { onionPrivateKeyFromRaw } from '../protocols/onion/keys.ts'
import { MAX_BATCH, SphinxPool } from '../protocols/onion/sphinx-pool.ts'
import { waitFor } from './helpers/wait.ts'

const WAIT_MS = 60_000

function keysAndPackets (n: number): { keys: ReturnType<typeof onionPrivateKeyFromRaw>[], packets: Uint8Array[] } {
  const a = generateOnionKey()
  const b = generateOnionKey()
  const keys = [onionPrivateKeyFromRaw(a.privateKey), onionPrivateKeyFromRaw(b.privateKey)]
  const hop2 = { address: new Uint8Array(32).fill(7), onionKey: generateOnionKey().publicKey }
  const packets: Uint8Array[] = []
  // even: built for key 0, odd: for key 1 (the previous epoch's, say)
  for (let i = 0; i < n; i++) packets.push(createPacket([{ address: new Uint8Array(32).fill(9), onionKey: (i % 2 === 0 ? a : b).publicKey }, hop2], new Uint8Array([i])).packet)
  return { keys, packets }
}

describe('SphinxPool', () => {
  it('gives the same result as processPacket on this thread, byte for byte, with the index of the key that opened it', async () => {
    const { keys, packets } = keysAndPackets(10)
    const garbage = new Uint8Array(PACKET_SIZE)
    garbage[0] = packets[0][0]
    garbage[1] = 9
    const got = new Map<number, { result: ProcessResult, index: number }>()
    const pool = new SphinxPool<number>({ threads: 2, onResult: (result, index, i) => { got.set(i, { result, index }) } })
    try {
      packets.forEach((p, i) => assert.equal(pool.submit(p, keys, i), true))
      assert.equal(pool.submit(garbage, keys, 100), true)
      assert.equal(pool.submit(new Uint8Array(10), keys, 101), true)
      await waitFor(() => got.size === 12, 'every packet answered', WAIT_MS, 5)
      for (let i = 0; i < packets.length; i++) {
        const r = got.get(i)
        const want = processPacket(packets[i], keys[i % 2])
        assert.equal(r?.index, i % 2, `packet ${i} opened by key ${i % 2}`)
        assert.ok(r?.result.ok === true && r.result.type === 'forward' && want.ok && want.type === 'forward')
        if (r?.result.ok === true && r.result.type === 'forward' && want.ok && want.type === 'forward') {
          assert.deepEqual(new Uint8Array(r.result.packet), want.packet)
          assert.deepEqual(new Uint8Array(r.result.next), want.next)
          assert.deepEqual(new Uint8Array(r.result.replayTag), want.replayTag)
          assert.equal(r.result.delayMs, want.delayMs)
        }
      }
      assert.equal(got.get(100)?.index, -1)
      assert.equal(got.get(100)?.result.ok, false)
      assert.deepEqual(got.get(101)?.result, { ok: false, reason: 'size' })
      assert.equal(pool.stats.queued, 0)
      assert.equal(pool.stats.completed, 12)
    } finally {
      await pool.close()
    }
  })

  it('refuses packets beyond maxQueued and counts them; the accepted ones are all answered', async () => {
    const { keys, packets } = keysAndPackets(6)
    let answered = 0
    const pool = new SphinxPool<number>({ threads: 1, maxQueued: 4, onResult: () => { answered++ } })
    try {
      const accepted = packets.map((p, i) => pool.submit(p, keys, i))
      assert.deepEqual(accepted, [true, true, true, true, false, false])
      assert.equal(pool.stats.refused, 2)
      assert.equal(pool.stats.queued, 4)
      await waitFor(() => answered === 4, 'the accepted packets answered', WAIT_MS, 5)
      assert.equal(pool.stats.queued, 0)
      // room again once answered
      assert.equal(pool.submit(packets[4], keys, 4), true)
      await waitFor(() => answered === 5, 'the next packet answered', WAIT_MS, 5)
    } finally {
      await pool.close()
    }
  })

  it('close() ends its worker threads and answers what was pending as internal drops; later submissions are refused', async () => {
    const { keys, packets } = keysAndPackets(4)
    const results: ProcessResult[] = []
    // a worker shows in the active resources as its MessagePort
    const ports = (): number => process.getActiveResourcesInfo().filter(r => r === 'MessagePort').length
    const portsBefore = ports()
    const pool = new SphinxPool<number>({ threads: 2, onResult: (r) => { results.push(r) } })
    assert.equal(pool.threads, 2)
    assert.equal(ports(), portsBefore + 2)
    for (let i = 0; i < packets.length; i++) pool.submit(packets[i], keys, i)
    // still batched for this turn: nothing reached a worker yet
    const lost = await pool.close()
    assert.equal(lost, 4)
    assert.equal(pool.threads, 0)
    assert.equal(results.length, 4)
    assert.ok(results.every(r => !r.ok && r.reason === 'internal'))
    assert.equal(pool.submit(packets[0], keys, 9), false)
    assert.equal(pool.stats.refused, 1)
    // no worker is left behind in this process
    assert.equal(ports(), portsBefore)
  })
})

describe('SphinxPool whose worker cannot start', () => {
  it('does not respawn it, answers what it held as internal drops, then peels on this thread, byte for byte', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'p2pchat-pool-'))
    try {
      // a worker script that fails to load, as a broken install or a bundle without the worker file would
      const script = join(dir, 'broken-worker.mjs')
      writeFileSync(script, 'throw new Error("this worker cannot load")\n')
      const { keys, packets } = keysAndPackets(MAX_BATCH + 4)
      const results = new Map<number, { result: ProcessResult, index: number }>()
      const pool = new SphinxPool<number>({ threads: 1, workerUrl: pathToFileURL(script), onResult: (result, index, i) => { results.set(i, { result, index }) } })
      try {
        // a full batch goes to the worker at once; it dies before it is ready
        for (let i = 0; i < MAX_BATCH; i++) assert.equal(pool.submit(packets[i], keys, i), true)
        await waitFor(() => results.size === MAX_BATCH && pool.stats.threads === 0, 'the failed worker\'s batch answered and the worker gone', WAIT_MS)
        for (let i = 0; i < MAX_BATCH; i++) assert.deepEqual(results.get(i)?.result, { ok: false, reason: 'internal' })
        assert.equal(pool.stats.startFailures, 1)
        assert.equal(pool.stats.restarts, 0)
        assert.equal(pool.threads, 0)
        // no worker left: the next packets are peeled here, synchronously, as processPacket would
        for (let i = MAX_BATCH; i < MAX_BATCH + 4; i++) {
          assert.equal(pool.submit(packets[i], keys, i), true)
          const got = results.get(i)
          assert.ok(got?.result.ok === true && got.result.type === 'forward')
          const expected = processPacket(packets[i], keys[i % 2])
          assert.ok(expected.ok && expected.type === 'forward')
          assert.deepEqual([...got.result.packet], [...expected.packet])
          assert.equal(got.index, i % 2)
        }
        assert.equal(pool.stats.inline, 4)
        assert.equal(pool.stats.queued, 0)
      } finally {
        await pool.close()
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('OnionService with Sphinx worker threads', () => {
  let node: P2PNode
  let service: OnionService
  const delivered: FinalResult[] = []
  const ring = new OnionKeyRing({ replayCapacity: 10_000 })

  before(async () => {
    const id = await ephemeralIdentity()
    node = await createP2PNode({ privateKey: id.privateKey, listen: ['/ip4/127.0.0.1/tcp/0'] })
    service = new OnionService(node, { keyRing: ring, onDeliver: (r) => delivered.push(r), sphinxThreads: 1, dialTimeoutMs: 2_000 })
    await service.start()
  })
  after(async () => {
    await service.stop()
    await node.stop()
  })

  it('serves a SERVICE layer once and drops its replay and a foreign packet, counted as on one thread', async () => {
    const self = addressFromPeerId(node.peerId)
    const s = createPacket([{ address: self, onionKey: ring.current.publicKey }], new TextEncoder().encode('pooled'))
    const foreign = createPacket([{ address: self, onionKey: generateOnionKey().publicKey }], new Uint8Array(8))
    // the same packet twice in one batch, and again in a later one
    service.receive(s.packet.slice(), 'peer-s')
    service.receive(s.packet.slice(), 'peer-s2')
    service.receive(foreign.packet, 'peer-f')
    await waitFor(() => service.stats.sphinxPool?.completed === 3, 'three packets answered', WAIT_MS, 5)
    service.receive(s.packet.slice(), 'peer-s3')
    await waitFor(() => service.stats.sphinxPool?.completed === 4, 'the replay answered', WAIT_MS, 5)
    assert.equal(delivered.length, 1, 'a SERVICE request is served once')
    assert.equal(new TextDecoder().decode(delivered[0].payload), 'pooled')
    assert.equal(service.stats.dropped.replay, 2)
    assert.equal(service.stats.dropped.mac, 1)
    assert.equal(service.stats.sphinxPool?.queued, 0)
  })
})
