/**
 * Relay admission (issue 12, item 4): a stale descriptor gossiped again (an older sequence than the one
 * held) is refused, ignored on gossip, and does not make its relay look alive; a forged one is rejected;
 * a relay list spreads its 64 places over /16s, at most MAX_PER_SUBNET of one. Attestations (field 0x81,
 * protocols/directory/ATTEST.md) against their known-answer vector (test/vectors/attest-v1.json, never
 * regenerated here), and the client's admission rules (protocols/onion/admission.ts) on descriptor sets:
 * a brand-new relay waits for its attested age, one liar cannot age it, a relay no probe came back
 * through is never chosen, a relay's /16 is the one other relays reached it at.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseCli } from '../cli/args.ts'
import { loadFamilyKey } from '../node/relay-node.ts'
import { ATTESTED_FILE, PROBE_FAILURES, PROBE_INTERVALS, PROBE_TIMEOUT_MS, RelayAttester } from '../node/admission.ts'
import { generateOnionKey, onionPrivateKeyFromRaw, processPacket } from '../protocols/onion/sphinx.ts'
import { ed25519SignerFromSeed, generateEd25519Seed } from '../protocols/crypto/keys.ts'
import type { Signer } from '../protocols/crypto/keys.ts'
import { AttestError, attestationsOf, attestExtension, FIELD_ATTEST, MAX_ATTESTED, relayTag } from '../protocols/directory/attest.ts'
import type { Attestation } from '../protocols/directory/attest.ts'
import { familyExtension } from '../protocols/directory/family.ts'
import { Directory, MAX_PROVIDERS_PER_SUBNET } from '../protocols/directory/index.ts'
import type { DirectoryComponents } from '../protocols/directory/index.ts'
import { decodeRecord, KIND_RELAY, MAX_RECORD_SIZE, relayKey, signRecord, verifyRecord } from '../protocols/directory/record.ts'
import type { RecordExtension } from '../protocols/directory/record.ts'
import { admitRelays, judgeRelays, MAX_ADMITTED_PER_GROUP, MIN_ADMITTED_RELAYS } from '../protocols/onion/admission.ts'
import { chooseMixes, pathRelays } from '../protocols/onion/paths.ts'
import type { KnownRelay } from '../protocols/onion/relay-directory.ts'
import { attestVectorInputs, ATTEST_VECTOR_NOW } from './vectors/make-attest-vector.ts'
import { waitFor } from './helpers/wait.ts'
import { MAX_PER_SUBNET, MAX_RELAY_LIST, RelayListService } from '../protocols/directory/relay-list.ts'
import { subnetsOfAddrs } from '../protocols/directory/subnet.ts'
import { RelayDirectory } from '../protocols/onion/relay-directory.ts'

function descriptor (signer = ed25519SignerFromSeed(generateEd25519Seed()), addr = '/ip4/10.1.0.1/tcp/1', sequence = 1n, now = Date.now()): Uint8Array {
  return signRecord({
    kind: KIND_RELAY,
    nick: '',
    identityKey: signer.publicKey,
    onionKeys: [{ epoch: 1, notBefore: now - 1000, notAfter: now + 3600_000, key: new Uint8Array(32).fill(9) }],
    addrs: [addr],
    sequence,
    expiry: now + 3600_000
  }, signer).bytes
}

const noNode = {
  handle: async () => { throw new Error('not used') },
  unhandle: async () => { throw new Error('not used') },
  dialProtocol: async () => { throw new Error('not used') }
}

describe('relay admission', () => {
  it('refuses an older descriptor than the one held, without refreshing its relay', () => {
    let now = Date.now()
    const dir = new RelayDirectory()
    const relay = ed25519SignerFromSeed(generateEd25519Seed())
    const old = descriptor(relay, '/ip4/10.1.0.1/tcp/1', 5n)
    const fresh = descriptor(relay, '/ip4/10.2.0.1/tcp/1', 6n)
    assert.ok(dir.add(old, now) != null)
    assert.ok(dir.add(fresh, now) != null)
    now += 60_000
    assert.equal(dir.add(old, now), undefined, 'the stale copy is refused (the gossip validator rejects it)')
    assert.equal(dir.rejected.stale, 1)
    assert.equal(dir.list()[0].lastSeen, now - 60_000, 'and it does not make the relay look alive')
    assert.deepEqual(dir.list()[0].record.addrs, ['/ip4/10.2.0.1/tcp/1'])
    assert.ok(dir.add(descriptor(relay, '/ip4/10.3.0.1/tcp/1', 7n), now) != null, 'a newer one replaces it')
    // on gossip: a stale copy is ignored (outdated, not forged: whoever relayed it is not penalised)
    assert.equal(dir.gossipVerdict(old), 'ignore')
    assert.equal(dir.gossipVerdict(descriptor(relay, '/ip4/10.3.0.1/tcp/1', 8n)), 'accept')
    const forged = descriptor(relay, '/ip4/10.3.0.1/tcp/1', 9n).slice()
    forged[forged.length - 1] ^= 1
    assert.equal(dir.gossipVerdict(forged), 'reject')
  })

  it('a relay list takes at most MAX_PER_SUBNET descriptors of one /16, and fills up from the others', () => {
    const sybils = Array.from({ length: 200 }, (_, i) => descriptor(undefined, `/ip4/10.200.${i >> 8}.${(i & 0xff) + 1}/tcp/1`))
    const honest = Array.from({ length: 30 }, (_, i) => descriptor(undefined, `/ip4/10.${i + 1}.0.1/tcp/1`))
    const pairs = Array.from({ length: 10 }, (_, i) => descriptor(undefined, `/ip4/10.${100 + (i >> 1)}.0.${i + 1}/tcp/1`))
    const service = new RelayListService(noNode, { descriptors: () => [...sybils, ...honest, ...pairs] })
    for (let round = 0; round < 20; round++) {
      const list = service.choose()
      assert.ok(list.length <= MAX_RELAY_LIST)
      const bySubnet = new Map<string, number>()
      for (const d of list) { const s = subnetsOfAddrs(decodeRecord(d).addrs)[0]; bySubnet.set(s, (bySubnet.get(s) ?? 0) + 1) }
      assert.equal(bySubnet.get('ip4:10.200'), MAX_PER_SUBNET)
      assert.equal(list.length, MAX_PER_SUBNET + 30 + 10, 'every honest relay has a place')
    }
    // a small network in one /16 still gets a list
    const small = new RelayListService(noNode, { descriptors: () => sybils.slice(0, 3) })
    assert.equal(small.choose().length, 3)
  })
})

const HOUR = 3600_000
const DAY = 24 * HOUR

interface Sim { signer: Signer, addr: string, family?: Signer, more?: string[] }

/** A verified KnownRelay: a descriptor of `sim` carrying `att` (and its family), signed at `now`. */
function known (sim: Sim, now: number, att?: { complete: boolean, entries: Attestation[] }, sequence = 1n): KnownRelay {
  const extensions: RecordExtension[] = []
  if (sim.family != null) extensions.push(familyExtension(sim.family, sim.signer.publicKey))
  if (att != null) extensions.push(attestExtension(att))
  const rec = signRecord({
    kind: KIND_RELAY,
    nick: '',
    identityKey: sim.signer.publicKey,
    onionKeys: [{ epoch: 1, notBefore: now - 1000, notAfter: now + HOUR, key: new Uint8Array(32).fill(9) }],
    addrs: [sim.addr, ...(sim.more ?? [])],
    extensions,
    sequence,
    expiry: now + HOUR
  }, sim.signer)
  return { record: verifyRecord(relayKey(rec.peerId), rec.bytes, now), lastSeen: now }
}

function sim (addr: string, family?: Signer, more: string[] = []): Sim & { more: string[] } { return { signer: ed25519SignerFromSeed(generateEd25519Seed()), addr, family, more } }
const group = (addr: string): string => { const m = /^\/ip4\/(\d+)\.(\d+)\./.exec(addr) as RegExpExecArray; return `ip4:${m[1]}.${m[2]}` }

/** What an honest relay attests about `others`: first seen at `firstSeen(o)`, probed and reached at their true /16 unless told. */
function honestView (others: Sim[], firstSeen: (o: Sim) => number, opts: { probed?: (o: Sim) => boolean, reached?: (o: Sim) => string | undefined } = {}): { complete: boolean, entries: Attestation[] } {
  return {
    complete: true,
    entries: others.map(o => {
      const reached = opts.reached != null ? opts.reached(o) : group(o.addr)
      return { tag: relayTag(o.signer.publicKey), firstSeen: firstSeen(o), probed: opts.probed?.(o) ?? true, ...(reached != null ? { reached } : {}) }
    })
  }
}

describe('relay attestations (field 0x81)', () => {
  it('matches its known-answer vector', () => {
    const v = JSON.parse(readFileSync(new URL('./vectors/attest-v1.json', import.meta.url), 'utf8'))
    const { attesterSeed, relayKeys, attestations, descriptor } = attestVectorInputs()
    assert.deepEqual(relayKeys.map(relayTag), v.tags)
    assert.equal(Buffer.from(attestExtension(attestations).value).toString('hex'), v.field)
    const signed = signRecord(descriptor, ed25519SignerFromSeed(attesterSeed))
    assert.equal(Buffer.from(signed.bytes).toString('hex'), v.descriptor)
    const rec = verifyRecord(relayKey(signed.peerId), Buffer.from(v.descriptor, 'hex'), ATTEST_VECTOR_NOW)
    assert.deepEqual(attestationsOf(rec), v.attestations)
  })

  it('refuses malformed fields by fault, and a full list fits a descriptor', () => {
    const field = (value: number[]): { extensions: RecordExtension[] } => ({ extensions: [{ type: FIELD_ATTEST, value: Uint8Array.from(value) }] })
    const entry = (status: number, g: number[]): number[] => [...new Array(16).fill(7), 0, 0, 0, 1, status, ...g]
    const fault = (f: { extensions: RecordExtension[] }): string => { try { attestationsOf(f); return 'none' } catch (err) { assert.ok(err instanceof AttestError); return err.fault } }
    assert.equal(fault(field([1, 0])), 'attest-length')
    assert.equal(fault(field([2, 0, 0])), 'attest-version')
    assert.equal(fault(field([1, 2, 0])), 'attest-flags')
    assert.equal(fault(field([1, 0, MAX_ATTESTED + 1])), 'attest-count')
    assert.equal(fault(field([1, 0, 1, ...entry(4, [0, 0, 0, 0, 0])])), 'attest-status')
    assert.equal(fault(field([1, 0, 1, ...entry(2, [0, 0, 0, 0, 0])])), 'attest-group', 'REACHED without a group')
    assert.equal(fault(field([1, 0, 1, ...entry(0, [4, 10, 1, 0, 0])])), 'attest-group', 'a group without REACHED')
    assert.equal(fault(field([1, 0, 1, ...entry(2, [5, 10, 1, 0, 0])])), 'attest-group')
    assert.equal(fault(field([1, 0, 1, ...entry(2, [4, 10, 1, 0, 0]), 0])), 'attest-length')
    assert.equal(fault({ extensions: [...field([1, 0, 0]).extensions, ...field([1, 0, 0]).extensions] }), 'attest-twice')
    assert.equal(fault(field([1, 1, 1, ...entry(2, [4, 10, 1, 0, 0])])), 'none')
    // MAX_ATTESTED entries, a family and three onion keys still fit in one record
    const now = Date.now()
    const many = Array.from({ length: MAX_ATTESTED }, (_, i) => ({ tag: relayTag(Uint8Array.from({ length: 32 }, () => i)), firstSeen: now, probed: true, reached: `ip6:2001:${i.toString(16)}` }))
    const r = known(sim('/ip6/2001:db8:ffff:ffff:ffff:ffff:ffff:ffff/tcp/65535/ws', ed25519SignerFromSeed(generateEd25519Seed())), now, { complete: false, entries: many })
    assert.ok(r.record.bytes.length <= MAX_RECORD_SIZE)
    assert.equal(attestationsOf(r.record)?.entries.length, MAX_ATTESTED)
  })
})

describe('relay admission (protocols/onion/admission.ts)', () => {
  const honest = Array.from({ length: 20 }, (_, i) => sim(`/ip4/10.${i + 1}.0.1/tcp/1`))
  const start = Date.now()
  /** The network: honest relays that have known each other for a week and `extra` as they see it. */
  function network (now: number, extra: Sim[], view: (o: Sim) => Partial<{ firstSeen: number, probed: boolean, reached: string | undefined }> = () => ({}), liars: KnownRelay[] = []): KnownRelay[] {
    return [
      ...honest.map(h => known(h, now, honestView([...honest.filter(o => o !== h), ...extra], o => view(o).firstSeen ?? start - 7 * DAY, {
        probed: o => view(o).probed ?? true,
        reached: o => 'reached' in view(o) ? view(o).reached : group(o.addr)
      }))),
      ...extra.map(x => known(x, now)),
      ...liars
    ]
  }

  it('admits relays the others have known long enough, probed and reached', () => {
    const verdicts = judgeRelays(network(start, []), { minAgeMs: DAY, now: start })
    for (const h of honest) {
      const v = verdicts.get(known(h, start).record.peerId) as { admitted: boolean, group?: string, groups: number }
      assert.equal(v.admitted, true)
      assert.equal(v.group, group(h.addr))
      assert.equal(v.groups, 19)
    }
  })

  it('a brand-new relay is not chosen until its attested age passes, and one liar cannot age it', () => {
    const fresh = sim('/ip4/10.99.0.1/tcp/1')
    const freshId = known(fresh, start).record.peerId
    // one liar on its own /16 swears it has known the fresh relay for a year
    const liar = sim('/ip4/10.98.0.1/tcp/1')
    const lie = (now: number): KnownRelay => known(liar, now, { complete: true, entries: [{ tag: relayTag(fresh.signer.publicKey), firstSeen: start - 365 * DAY, probed: true, reached: 'ip4:10.99' }] })
    for (const [after, admitted] of [[0, false], [HOUR, false], [DAY - 1000, false], [DAY + 1000, true]] as const) {
      const now = start + after
      const relays = network(now, [fresh], o => o === fresh ? { firstSeen: start } : {}, [lie(now)])
      const admission = admitRelays(relays, { minAgeMs: DAY, now })
      const v = admission.verdicts.get(freshId)
      assert.equal(v?.admitted, admitted, `after ${after} ms: ${JSON.stringify(v)}`)
      if (!admitted) assert.equal(v?.reason, 'age')
      const candidates = pathRelays(admission.relays, now, undefined, admission.groupOf)
      let chosen = 0
      for (let i = 0; i < 2000; i++) if (chooseMixes(candidates, [], 2).mixes.some(m => m.peerId === freshId)) chosen++
      if (!admitted) assert.equal(chosen, 0, 'never on a path before its age')
      else assert.ok(chosen > 0, 'on paths once its age passed')
    }
  })

  it('a hundred Sybils in one /16 vouching for each other are not admitted; one per /16 over 5 /16s neither', () => {
    const now = start + 30 * DAY
    for (const spread of [1, 5]) {
      const sybils = Array.from({ length: 100 }, (_, i) => sim(`/ip4/10.${200 + (i % spread)}.${i >> 8}.${(i & 0xff) + 1}/tcp/1`))
      // each Sybil attests every other as a year old, probed and reached; honest relays met them today
      // (a list holds MAX_ATTESTED: each names 48 of the others, partial)
      const sybilRelays = sybils.map(s => known(s, now, { complete: false, entries: honestView(sybils.filter(o => o !== s), () => start - 365 * DAY).entries.slice(0, MAX_ATTESTED) }))
      const relays = [...network(now, [], () => ({})), ...sybilRelays]
      // the honest relays' complete lists do not name them: "not known" votes
      const admission = admitRelays(relays, { minAgeMs: DAY, now })
      assert.equal(sybils.filter(s => admission.verdicts.get(known(s, now).record.peerId)?.admitted).length, 0, `spread over ${spread} /16s`)
      assert.equal(admission.admitted, 20)
      assert.equal(admission.relaxed, false)
      // and once the honest relays have known 20 of them for a week (probed, reached), those are admitted
      const met = sybils.slice(0, 20)
      const metRelays = [...network(now, met, () => ({ firstSeen: now - 7 * DAY })).filter(r => !met.some(s => known(s, now).record.peerId === r.record.peerId)), ...sybilRelays]
      // at most MAX_ADMITTED_PER_GROUP of one /16 enter the candidate set
      assert.equal(admitRelays(metRelays, { minAgeMs: DAY, now }).admitted, 20 + Math.min(20, spread * MAX_ADMITTED_PER_GROUP))
    }
  })

  it('a relay no loop probe came back through is never chosen', () => {
    const now = start + 30 * DAY
    const blackhole = sim('/ip4/10.77.0.1/tcp/1')
    const id = known(blackhole, now).record.peerId
    const admission = admitRelays(network(now, [blackhole], o => o === blackhole ? { firstSeen: start, probed: false } : {}), { minAgeMs: DAY, now })
    assert.equal(admission.verdicts.get(id)?.reason, 'probe')
    const candidates = pathRelays(admission.relays, now, undefined, admission.groupOf)
    assert.ok(!candidates.some(c => c.peerId === id))
    for (let i = 0; i < 2000; i++) assert.ok(!chooseMixes(candidates, [], 2).mixes.some(m => m.peerId === id))
  })

  it('a relay claiming another /16 counts by the /16 other relays reached it at', () => {
    const now = start + 30 * DAY
    // it names relay 7's /16 first in its descriptor; the others reached it at 10.150
    const impostor = sim('/ip4/10.7.0.2/tcp/1')
    const id = known(impostor, now).record.peerId
    const admission = admitRelays(network(now, [impostor], o => o === impostor ? { firstSeen: start, reached: 'ip4:10.150' } : {}), { minAgeMs: DAY, now })
    const v = admission.verdicts.get(id)
    assert.equal(v?.admitted, true)
    assert.equal(v?.group, 'ip4:10.150')
    const mine = pathRelays(admission.relays, now, undefined, admission.groupOf).find(r => r.peerId === id)
    assert.deepEqual(mine?.subnets, ['ip4:10.150', 'ip4:10.7'], 'sampled by the reached /16; the claimed one only adds a constraint')
    // a relay no one reached is not admitted
    const unreached = admitRelays(network(now, [impostor], o => o === impostor ? { firstSeen: start, reached: undefined } : {}), { minAgeMs: DAY, now })
    assert.equal(unreached.verdicts.get(id)?.reason, 'address')
    // an attester in the /16 a relay claims, or in its family, does not vote for it
    const fam = ed25519SignerFromSeed(generateEd25519Seed())
    const a = sim('/ip4/10.60.0.1/tcp/1', fam)
    const b = sim('/ip4/10.61.0.1/tcp/1', fam)
    const c = sim('/ip4/10.62.0.1/tcp/1')
    const att = (others: Sim[]): { complete: boolean, entries: Attestation[] } => honestView(others, () => start - 7 * DAY)
    const v2 = judgeRelays([known(a, now, att([b, c])), known(b, now, att([a, c])), known(c, now, att([a, b]))], { minAgeMs: DAY, now })
    assert.equal(v2.get(known(a, now).record.peerId)?.reason, 'few-attesters', 'only c votes for a: its family member b does not')
  })

  it('a relay naming the honest /16s in its descriptor does not silence their votes', () => {
    const now = start + 30 * DAY
    // X names 15 honest /16s after its own; six Sybils in six other /16s swear it is a year old (if the
    // 15 honest /16s were silenced, 6 of the 11 left would admit it)
    const x = sim('/ip4/10.210.0.1/tcp/1', undefined, honest.slice(0, 15).map(h => h.addr.replace('.0.1/', '.0.9/')))
    const xId = known(x, now).record.peerId
    const liars = Array.from({ length: 6 }, (_, i) => sim(`/ip4/10.${220 + i}.0.1/tcp/1`))
    const liarRelays = liars.map(l => known(l, now, { complete: true, entries: [
      { tag: relayTag(x.signer.publicKey), firstSeen: start - 365 * DAY, probed: true, reached: 'ip4:10.210' },
      ...liars.filter(o => o !== l).map(o => ({ tag: relayTag(o.signer.publicKey), firstSeen: start - 365 * DAY, probed: true, reached: group(o.addr) })),
      ...honest.map(h => ({ tag: relayTag(h.signer.publicKey), firstSeen: start - 365 * DAY, probed: true, reached: group(h.addr) }))
    ] }))
    // the honest relays have known the liars for a week, and have not met X (complete lists)
    const liarIds = new Set(liarRelays.map(r => r.record.peerId))
    const v = judgeRelays([...network(now, liars, () => ({})).filter(r => !liarIds.has(r.record.peerId)), known(x, now), ...liarRelays], { minAgeMs: DAY, now }).get(xId)
    assert.equal(v?.admitted, false, JSON.stringify(v))
    assert.equal(v?.groups, 26, 'every honest /16 votes, and the six liars')
  })

  it('relaxes below MIN_ADMITTED_RELAYS: every relay is used, and says so', () => {
    const now = start
    const few = honest.slice(0, MIN_ADMITTED_RELAYS - 1)
    const relays = few.map(h => known(h, now, honestView(few.filter(o => o !== h), () => start - 7 * DAY)))
    const fresh = sim('/ip4/10.99.0.1/tcp/1')
    const admission = admitRelays([...relays, known(fresh, now)], { minAgeMs: DAY, now })
    assert.equal(admission.relaxed, true)
    assert.equal(admission.relays.length, MIN_ADMITTED_RELAYS)
  })
})

describe('cold start (Directory.findRelays)', () => {
  it('samples the providers widely: a hundred of one /16 answering first fill a few of the 20 places', async () => {
    const now = Date.now()
    const sybils = Array.from({ length: 100 }, (_, i) => sim(`/ip4/10.200.${i >> 8}.${(i & 0xff) + 1}/tcp/1`))
    const honest = Array.from({ length: 30 }, (_, i) => sim(`/ip4/10.${i + 1}.0.1/tcp/1`))
    const byId = new Map([...sybils, ...honest].map(x => { const r = known(x, now); return [r.record.peerId, { sim: x, bytes: r.record.bytes }] }))
    const looked: string[] = []
    const components = {
      peerId: { toString: () => 'self' },
      contentRouting: {
        // the Sybils answer first, as the closest (or fastest) operator would
        async * findProviders () {
          for (const [id, { sim: x }] of byId) yield { id: { toString: () => id }, multiaddrs: [{ toString: () => x.addr }] }
        }
      },
      dht: {
        async * get (key: Uint8Array) {
          const id = new TextDecoder().decode(key).replace('/p2pchat/relay/', '')
          looked.push(id)
          const found = byId.get(id)
          if (found != null) yield { name: 'VALUE', value: found.bytes }
        }
      }
    } as unknown as DirectoryComponents
    const dir = new Directory(components, { signer: ed25519SignerFromSeed(generateEd25519Seed()), onionKey: new Uint8Array(32), addrs: () => [] })
    for (let round = 0; round < 5; round++) {
      looked.length = 0
      const found = await dir.findRelays({ limit: 20 })
      assert.equal(found.length, 20)
      const inSybilNet = found.filter(r => r.addrs[0].startsWith('/ip4/10.200.')).length
      assert.ok(inSybilNet <= MAX_PROVIDERS_PER_SUBNET, `${inSybilNet} of one /16`)
      assert.equal(looked.length, 20, 'only the chosen providers are looked up')
    }
  })
})

describe('a relay descriptor with attestations (Directory.resignRelay)', () => {
  it('signs again with fewer entries when the record would be over 2048 bytes', () => {
    const now = Date.now()
    const attempts: number[] = []
    const entries = Array.from({ length: MAX_ATTESTED }, (_, i) => ({ tag: relayTag(Uint8Array.from({ length: 32 }, () => i)), firstSeen: now, probed: true, reached: 'ip4:10.1' }))
    const addrs = Array.from({ length: 16 }, (_, i) => `/dns4/relay-${i}.${'a'.repeat(40)}.example/tcp/65535/ws`)
    const dir = new Directory({ peerId: { toString: () => 'self' } } as unknown as DirectoryComponents, {
      signer: ed25519SignerFromSeed(generateEd25519Seed()),
      onionKey: new Uint8Array(32),
      addrs: () => addrs,
      extensions: (attempt) => { attempts.push(attempt); return [attestExtension({ complete: false, entries: entries.slice(0, MAX_ATTESTED >> attempt) })] }
    })
    const keys = [0, 1, 2].map(e => ({ epoch: e, notBefore: now, notAfter: now + HOUR, key: new Uint8Array(32).fill(e) }))
    const rec = dir.resignRelay(keys)
    assert.ok(rec.bytes.length <= MAX_RECORD_SIZE)
    assert.ok(attempts.length > 1, 'the full list did not fit: it was asked again')
    assert.equal(attestationsOf(rec)?.entries.length, MAX_ATTESTED >> attempts[attempts.length - 1])
    assert.ok(dir.resignRelay(keys).sequence > rec.sequence, 'each signature a new sequence')
  })
})

describe('--family <file> (a relay operator\'s family key)', () => {
  it('creates the key file 0600 once, gives the same key after, refuses a bad or readable file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'p2pchat-family-'))
    try {
      const path = join(dir, 'family.key')
      const first = loadFamilyKey(path)
      assert.equal(first.created, true)
      assert.equal(statSync(path).mode & 0o777, 0o600)
      const again = loadFamilyKey(path)
      assert.equal(again.created, false)
      assert.deepEqual(again.signer.publicKey, first.signer.publicKey, 'a second relay given the file declares the same family')
      chmodSync(path, 0o644)
      assert.throws(() => loadFamilyKey(path), (err: Error & { code?: string }) => err.code === 'KEY_PERMISSIONS')
      const bad = join(dir, 'bad.key')
      writeFileSync(bad, '{"v":1,"type":"p2pchat-family-ed25519","seed":"AAAA"}\n', { mode: 0o600 })
      assert.throws(() => loadFamilyKey(bad), (err: Error & { code?: string }) => err.code === 'FAMILY_KEY')
      assert.equal(parseCli(['start', '--relay', '--family', path, '--bootstrap', '/ip4/127.0.0.1/tcp/1/p2p/x']).family, path)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('what a relay attests (node/admission.ts RelayAttester)', () => {
  it('notes relays, probes them, marks them probed when the probe comes back and not after three lost, keeps first-seen in attested.json', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'p2pchat-attest-'))
    try {
      let now = 1_800_000_000_000
      const selfSigner = ed25519SignerFromSeed(generateEd25519Seed())
      const selfOnion = generateOnionKey()
      const xSigner = ed25519SignerFromSeed(generateEd25519Seed())
      const xOnion = generateOnionKey()
      const xRec = signRecord({ kind: KIND_RELAY, nick: '', identityKey: xSigner.publicKey, onionKeys: [{ epoch: 1, notBefore: now - 1000, notAfter: now + DAY, key: xOnion.publicKey }], addrs: ['/ip4/10.9.0.1/tcp/1'], sequence: 1n, expiry: now + DAY }, xSigner)
      const sent: Uint8Array[] = []
      const dials: string[] = []
      const init = {
        node: {
          dial: async (ma: { toString: () => string }) => { dials.push(ma.toString()); return { close: async () => {} } },
          getConnections: () => []
        } as unknown as ConstructorParameters<typeof RelayAttester>[0]['node'],
        dataDir: dir,
        selfPeerId: 'self',
        self: () => ({ address: selfSigner.publicKey, onionKey: selfOnion.publicKey }),
        send: (_first: Uint8Array, packet: Uint8Array) => { sent.push(packet) },
        relays: () => [{ record: verifyRecord(relayKey(xRec.peerId), xRec.bytes, now), lastSeen: now }],
        announceIntervalMs: 1000,
        now: () => now
      }
      const a = new RelayAttester(init)
      a.tick()
      assert.equal(a.view().get(xRec.peerId)?.firstSeen, now)
      assert.equal(statSync(join(dir, ATTESTED_FILE)).mode & 0o777, 0o600)
      await waitFor(() => a.view().get(xRec.peerId)?.reached != null, 'the address check')
      assert.deepEqual(dials, [`/ip4/10.9.0.1/tcp/1/p2p/${xRec.peerId}`], 'it dials the descriptor address, as that relay')
      assert.equal(sent.length, 1, 'one probe')
      // the probe through X comes back to us: peel X's layer, then ours
      const atX = processPacket(sent[0], onionPrivateKeyFromRaw(xOnion.privateKey))
      assert.ok(atX.ok && atX.type === 'forward')
      const atSelf = processPacket(atX.packet, onionPrivateKeyFromRaw(selfOnion.privateKey))
      assert.ok(atSelf.ok && atSelf.type === 'final')
      assert.equal(a.delivered(randomId()), false, 'an id that is no probe of ours')
      assert.equal(a.delivered(atSelf.id), true)
      const att = attestationsOf({ extensions: [a.extension()] })
      assert.deepEqual(att, { complete: true, entries: [{ tag: relayTag(xSigner.publicKey), firstSeen: Math.floor(now / 1000) * 1000, probed: true, reached: 'ip4:10.9' }] })
      // later probes are lost: after PROBE_FAILURES in a row it is no longer attested as probed
      for (let i = 0; i < PROBE_FAILURES; i++) {
        now += PROBE_INTERVALS * 1000
        a.tick() // sends a probe (the interval passed)
        now += PROBE_TIMEOUT_MS
        a.tick() // it is lost
      }
      assert.equal(attestationsOf({ extensions: [a.extension()] })?.entries[0].probed, false)
      // a restart keeps when X was first seen; junk entries in the file are dropped
      const saved = JSON.parse(readFileSync(join(dir, ATTESTED_FILE), 'utf8'))
      saved.firstSeen.junk = ['not hex', 5]
      saved.firstSeen.later = ['ab'.repeat(16), now + DAY]
      writeFileSync(join(dir, ATTESTED_FILE), JSON.stringify(saved), { mode: 0o600 })
      const b = new RelayAttester(init)
      assert.equal(b.view().get(xRec.peerId)?.firstSeen, 1_800_000_000_000)
      assert.equal(b.view().size, 1)
      a.stop(); b.stop()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

function randomId (): Uint8Array { return ed25519SignerFromSeed(generateEd25519Seed()).publicKey.subarray(0, 16) }
