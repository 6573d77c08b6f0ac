/**
 * `/p2pchat/relay-list/1.0.0` (protocols/directory/relay-list.ts) between two in-process libp2p nodes
 * on loopback: a list is served and only verifying descriptors are kept (the rest counted by fault),
 * at most 64 are sent, and malformed or oversize answers from a hostile server are named errors.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { createP2PNode } from '../node/create.ts'
import type { P2PNode } from '../node/create.ts'
import { ephemeralIdentity } from '../node/identity.ts'
import { KIND_NAME, KIND_RELAY, signRecord } from '../protocols/directory/record.ts'
import {
  decodeRelayList, encodeRelayList, fetchRelayList, MAX_RELAY_LIST, MAX_RELAY_LIST_BYTES, RELAY_LIST_PROTOCOL, RelayListService
} from '../protocols/directory/relay-list.ts'
import { LOOPBACK_ALLOW } from './helpers/network.ts'
import { v1Record } from './helpers/records.ts'
import { within } from './helpers/wait.ts'

type Id = Awaited<ReturnType<typeof ephemeralIdentity>>

/** Each descriptor in its own /16 (127.n): a relay list spreads over /16s, at most 4 of one (relay-list.ts). */
let subnet = 0
function descriptor (id: Id, expiry = Date.now() + 3600_000): Uint8Array {
  subnet = (subnet % 250) + 1
  return signRecord({
    kind: KIND_RELAY, nick: '', identityKey: id.identityKey,
    onionKeys: [{ epoch: 1, notBefore: Date.now() - 1000, notAfter: Date.now() + 3600_000, key: id.onionPublic }],
    addrs: [`/ip4/127.${subnet}.0.1/tcp/4001`], sequence: 1n, expiry
  }, id.signer).bytes
}

describe('relay list codec', () => {
  it('round-trips, refuses more than 64 and bad sizes, and never throws on hostile bytes', () => {
    const ds = [new Uint8Array([1, 2, 3]), new Uint8Array(2048).fill(9)]
    const bytes = encodeRelayList(ds)
    assert.deepEqual(bytes.subarray(0, 5), Uint8Array.from([0, 2, 0, 3, 1]))
    assert.deepEqual(decodeRelayList(bytes), { ok: true, descriptors: ds })
    assert.deepEqual(decodeRelayList(Uint8Array.from([0, 0])), { ok: true, descriptors: [] })
    assert.throws(() => encodeRelayList(Array(65).fill(new Uint8Array(1))), { name: 'RelayListError', reason: 'count' })
    assert.throws(() => encodeRelayList([new Uint8Array(2049)]), { name: 'RelayListError', reason: 'record-length' })
    assert.deepEqual(decodeRelayList(Uint8Array.from([0, 65])), { ok: false, reason: 'count' })
    assert.deepEqual(decodeRelayList(Uint8Array.from([0, 1, 0, 0])), { ok: false, reason: 'record-length' })
    assert.deepEqual(decodeRelayList(Uint8Array.from([0, 1, 0, 2, 7])), { ok: false, reason: 'truncated' })
    assert.deepEqual(decodeRelayList(new Uint8Array([...bytes, 0])), { ok: false, reason: 'trailing-bytes' })
    assert.deepEqual(decodeRelayList(new Uint8Array(MAX_RELAY_LIST_BYTES + 1)), { ok: false, reason: 'oversize' })
    for (let n = 0; n < bytes.length; n += 7) assert.equal(decodeRelayList(bytes.subarray(0, n)).ok, false)
    for (let i = 0; i < 2000; i++) decodeRelayList(new Uint8Array(randomBytes(i % 200)))
  })
})

describe('relay list between two loopback nodes', { timeout: 60_000 }, () => {
  let server: P2PNode
  let client: P2PNode
  let hostile: P2PNode
  let service: RelayListService
  const source: Uint8Array[] = []
  const good: string[] = []

  before(async () => {
    const ids = await Promise.all(Array.from({ length: 4 }, async () => await ephemeralIdentity()))
    for (const id of ids.slice(0, 3)) {
      source.push(descriptor(id))
      good.push(id.peerId.toString())
    }
    const bad = ids[3]
    const tampered = descriptor(bad).slice()
    tampered[tampered.length - 1] ^= 1
    const name = signRecord({
      kind: KIND_NAME, nick: 'notarelay', identityKey: bad.identityKey,
      onionKeys: [{ epoch: 0, notBefore: 0, notAfter: 0, key: bad.onionPublic }], addrs: [], sequence: 1n, expiry: Date.now() + 3600_000
    }, bad.signer).bytes
    source.push(tampered, name, descriptor(bad, Date.now() - 1), v1Record(bad, KIND_RELAY, ''), source[0], new Uint8Array([7, 7, 7]))
    const make = async (): Promise<P2PNode> => await createP2PNode({ privateKey: (await ephemeralIdentity()).privateKey, listen: ['/ip4/127.0.0.1/tcp/0'], allow: LOOPBACK_ALLOW })
    ;[server, client, hostile] = await Promise.all([make(), make(), make()])
    service = new RelayListService(server, { descriptors: () => source })
    await service.start()
    await client.dial(server.getMultiaddrs()[0], { signal: AbortSignal.timeout(5_000) })
    await client.dial(hostile.getMultiaddrs()[0], { signal: AbortSignal.timeout(5_000) })
  })
  after(async () => {
    await service?.stop()
    await Promise.all([server, client, hostile].map(async n => { if (n != null) await within(Promise.resolve(n.stop()), 10_000, 'node stop').catch(() => {}) }))
  })

  it('returns only the descriptors that verify and counts the rest by fault', async () => {
    const { relays, rejected } = await fetchRelayList(client, server.peerId, AbortSignal.timeout(10_000))
    assert.deepEqual(new Set(relays.map(r => r.peerId)), new Set(good))
    assert.deepEqual(rejected, { signature: 1, kind: 1, expired: 1, version: 2, duplicate: 1 }, 'v1 and junk bytes both fail on the version byte')
    assert.equal(service.stats.served, 1)
  })

  it('sends at most 64 descriptors, chosen from the source', async () => {
    const many = await Promise.all(Array.from({ length: 70 }, async () => descriptor(await ephemeralIdentity())))
    const wide = new RelayListService(hostile, { descriptors: () => many })
    await wide.start()
    try {
      const { relays, rejected } = await fetchRelayList(client, hostile.peerId, AbortSignal.timeout(10_000))
      assert.equal(relays.length, MAX_RELAY_LIST)
      assert.deepEqual(rejected, {})
      const all = new Set(many.map(b => Buffer.from(b).toString('hex')))
      for (const r of relays) assert.ok(all.has(Buffer.from(r.bytes).toString('hex')))
    } finally {
      await wide.stop()
    }
  })

  it('a malformed or oversize answer is a named error, and a silent server ends at the signal', async () => {
    const serveWith = async (write: (stream: Parameters<Parameters<P2PNode['handle']>[1]>[0]) => Promise<void>): Promise<void> => {
      await hostile.unhandle(RELAY_LIST_PROTOCOL)
      await hostile.handle(RELAY_LIST_PROTOCOL, (stream) => { write(stream).catch(() => {}) })
    }
    await serveWith(async (s) => { s.send(Uint8Array.from([0, 2, 0, 1])); await s.close() })
    await assert.rejects(fetchRelayList(client, hostile.peerId, AbortSignal.timeout(10_000)), { name: 'RelayListError', reason: 'truncated' })
    await serveWith(async (s) => {
      const chunk = new Uint8Array(64 * 1024)
      for (let sent = 0; sent <= MAX_RELAY_LIST_BYTES; sent += chunk.length) s.send(chunk)
      await s.close()
    })
    await assert.rejects(fetchRelayList(client, hostile.peerId, AbortSignal.timeout(10_000)),
      (err: Error & { reason?: string }) => err.name === 'RelayListError' && (err.reason === 'trailing-bytes' || err.reason === 'oversize'))
    await serveWith(async () => { /* never answers */ })
    await assert.rejects(fetchRelayList(client, hostile.peerId, AbortSignal.timeout(300)))
    await hostile.unhandle(RELAY_LIST_PROTOCOL)
  })
})
