/**
 * The wire fuzzers, one per handler family: onion packets (processPacket, OnionService.receive), the
 * end-to-end payload (decodeEnvelope, decodeReceipt, decodeMessage, openSealed, openMessage), directory records
 * (verifyRecord, the DHT validator, selectRecord, GuardedDatastore.put, RelayDirectory.add) and the
 * `--json` command parser. Each takes a seeded Rng and per-handler counts, feeds valid inputs and their
 * mutations, checks invariants (no throw, only known reasons, nothing tampered accepted as genuine) and
 * returns how many inputs each handler saw and how each ended.
 *
 * Mutations are weighted towards cheap rejections (wrong length, version, encoding) so that 100,000
 * inputs per family fit in seconds; the costly ones (a MAC, a signature, an AEAD tag to check) are a
 * fixed share, stated by the weights below.
 */
import { existsSync } from 'node:fs'
import { Libp2pRecord } from '@libp2p/record'
import { Key } from 'interface-datastore'
import { MemoryDatastore } from 'datastore-core'
import {
  createMessage, createReceipt, DECODE_REASONS as CHAT_DECODE_REASONS, decodeEnvelope, decodeMessage, decodeReceipt, encodeEnvelope,
  encodeMessage, encodeReceipt, ed25519SignerFromSeed, generateEd25519Seed, generateX25519KeyPair, MAX_NAME_RECORD_BYTES, MAX_SEALED, openMessage, openSealed,
  REPLY_BLOCK_BYTES, seal, sealEphemeralKey, sealMessage, sealReceipt, verifyReceipt
} from '../../protocols/chat/index.ts'
import type { Receipt, Signer } from '../../protocols/chat/index.ts'
import { directoryValidators, GuardedDatastore, selectRecord } from '../../protocols/directory/dht.ts'
import { KIND_NAME, KIND_RELAY, nameKey, RECORD_FAULTS as RECORD_FAULT_LIST, relayKey, RecordError, signRecord, verifyRecord } from '../../protocols/directory/record.ts'
import type { DirectoryRecord } from '../../protocols/directory/record.ts'
import { ALPHA_OFFSET, BETA_OFFSET, GAMMA_OFFSET } from '../../protocols/onion/constants.ts'
import {
  decodeAnswer, decodeRequest, encodeAnswer, encodeFindRelays, encodeLookup, encodePublish, OP_FIND_RELAYS, OP_LOOKUP_NAME, OP_PUBLISH_NAME
} from '../../protocols/directory/exit.ts'
import type { ExitRequest } from '../../protocols/directory/exit.ts'
import { decodeRelayList, encodeRelayList } from '../../protocols/directory/relay-list.ts'
import {
  createPacket, createSurb, HEADER_LENGTH, onionPrivateKeyFromRaw, openReply, PACKET_SIZE, PACKET_VERSION, PAYLOAD_CAPACITY,
  packetFromSurb, processPacket
} from '../../protocols/onion/sphinx.ts'
import type { Hop, OnionPrivateKey, SurbSecret } from '../../protocols/onion/sphinx.ts'
import { RelayDirectory } from '../../protocols/onion/relay-directory.ts'
import type { OnionService } from '../../protocols/onion/relay.ts'
import { ALL_MUTATIONS, count, FuzzFailure, mutate, newReport, reframe } from './generators.ts'
import type { FamilyReport, HandlerReport, Mutation, Rng } from './generators.ts'

const DROP_REASONS = new Set(['size', 'version', 'bad-point', 'mac', 'slot-type', 'next-hop', 'extension', 'payload-integrity', 'internal'])
const DECODE_REASONS = new Set<string>(CHAT_DECODE_REASONS)
const RECORD_FAULTS = new Set<string>(RECORD_FAULT_LIST)

/** Length-changing mutations: every one is refused before any cryptography. */
const CHEAP: Mutation[] = ['truncate', 'extend', 'insert', 'delete', 'duplicate', 'resize', 'random', 'splice']
/** Same-length mutations: these reach the MAC, the signature or the AEAD tag. */
const IN_PLACE: Mutation[] = ['bitflip', 'bitflips', 'byte', 'interesting', 'zero-run', 'swap']

function equal (a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0
}

function timed<T> (report: HandlerReport, fn: () => T): T {
  const t = performance.now()
  try { return fn() } finally { report.ms += performance.now() - t }
}

/** A random 32-byte address (never all zero: the sender refuses that). */
function randomAddress (rng: Rng): Uint8Array {
  const out = rng.bytes(32)
  out[0] |= 1
  return out
}

// ------------------------------------------------------------------------------------------------
// Onion packets
// ------------------------------------------------------------------------------------------------

interface OnionSeed { packet: Uint8Array, kind: 'forward' | 'final' | 'reply' | 'foreign', secret?: SurbSecret, payload?: Uint8Array }

/**
 * Valid packets that `key` (public `pub`) peels: forward layers (RELAY or CLIENT, with or without a
 * delay), SERVICE final layers, REPLY layers through a reply block; and some for another key.
 */
export function onionCorpus (rng: Rng, pub: Uint8Array, opts: { forwardTo?: Uint8Array[], self?: Uint8Array } = {}): OnionSeed[] {
  const self = opts.self ?? randomAddress(rng)
  const next = opts.forwardTo ?? [randomAddress(rng)]
  const other = generateX25519KeyPair()
  const seeds: OnionSeed[] = []
  for (let i = 0; i < 8; i++) {
    const payload = rng.bytes(rng.pick([0, 1, 81, 500, 2300, PAYLOAD_CAPACITY]))
    const hops: Hop[] = [{ address: self, onionKey: pub, delayMs: rng.pick([undefined, 0, 1, 250, 0xffff_ffff]) }]
    for (let h = 0; h < rng.range(1, 4); h++) hops.push({ address: rng.pick(next), onionKey: other.publicKey, client: rng.chance(0.3) })
    seeds.push({ packet: createPacket(hops, payload).packet, kind: 'forward' })
    seeds.push({ packet: createPacket([{ address: self, onionKey: pub }], payload).packet, kind: 'final', payload })
    const surb = createSurb([{ address: self, onionKey: pub }])
    seeds.push({ packet: packetFromSurb(surb.surb, payload.subarray(0, 200)).packet, kind: 'reply', secret: surb.secret, payload: payload.subarray(0, 200) })
    seeds.push({ packet: createPacket([{ address: self, onionKey: other.publicKey }], payload).packet, kind: 'foreign' })
  }
  return seeds
}

/** Mutation weights for packets: mostly refused on length, version or alpha before any X25519. */
const PACKET_PLAN = { cheap: 60, version: 15, alpha: 14, 'in-place': 8, none: 1.5, garbage: 1.5 }

function mutatePacket (rng: Rng, seed: OnionSeed, corpus: OnionSeed[]): { input: Uint8Array, plan: keyof typeof PACKET_PLAN } {
  const plan = rng.weighted(PACKET_PLAN)
  const p = seed.packet
  switch (plan) {
    case 'cheap':
      return { input: mutate(rng, p, rng.pick(CHEAP), { other: rng.pick(corpus).packet, maxLength: PACKET_SIZE * 2 }), plan }
    case 'version': {
      const out = new Uint8Array(p)
      out[0] = rng.range(0, 255)
      if (out[0] === PACKET_VERSION) out[0] = 0x01 // version 1, the format before this one
      return { input: out, plan }
    }
    case 'alpha': {
      // top bit set or >= p: not canonical, refused before X25519
      const out = new Uint8Array(p)
      if (rng.chance(0.5)) out[32] |= 0x80
      else { out.fill(0xff, 1, 32); out[32] = 0x7f; out[1] = rng.range(0xed, 0xff) }
      return { input: out, plan }
    }
    case 'in-place': {
      const region = rng.pick<[number, number]>([[ALPHA_OFFSET, BETA_OFFSET], [BETA_OFFSET, GAMMA_OFFSET], [GAMMA_OFFSET, HEADER_LENGTH], [HEADER_LENGTH, PACKET_SIZE], [0, PACKET_SIZE]])
      return { input: mutate(rng, p, rng.pick(IN_PLACE), { region }), plan }
    }
    case 'garbage': {
      const out = rng.bytes(PACKET_SIZE)
      out[0] = PACKET_VERSION
      out[32] &= 0x7f
      return { input: out, plan }
    }
    default:
      return { input: new Uint8Array(p), plan }
  }
}

/** processPacket on `n` inputs under one key; checks that no tampered header or body is accepted. */
export function fuzzProcessPacket (rng: Rng, n: number): HandlerReport {
  const report = newReport()
  const me = generateX25519KeyPair()
  const key: OnionPrivateKey = onionPrivateKeyFromRaw(me.privateKey)
  const corpus = onionCorpus(rng, me.publicKey)
  for (let i = 0; i < n; i++) {
    const seed = rng.pick(corpus)
    const { input } = mutatePacket(rng, seed, corpus)
    const framed = reframe(rng, input)
    report.inputs++
    let res
    try {
      res = timed(report, () => processPacket(framed, key))
    } catch (err) {
      throw new FuzzFailure('processPacket', rng.seed, i, `threw ${(err as Error).name}: ${(err as Error).message}`, input)
    }
    if (!res.ok) {
      if (!DROP_REASONS.has(res.reason) || res.reason === 'internal') throw new FuzzFailure('processPacket', rng.seed, i, `dropped with reason ${res.reason}`, input)
      count(report.outcomes, `drop:${res.reason}`)
      continue
    }
    const sameHeader = input.length === PACKET_SIZE && equal(input.subarray(0, HEADER_LENGTH), seed.packet.subarray(0, HEADER_LENGTH))
    if (!sameHeader) throw new FuzzFailure('processPacket', rng.seed, i, `accepted a packet whose header was changed (${res.type})`, input)
    if (seed.kind === 'foreign') throw new FuzzFailure('processPacket', rng.seed, i, 'peeled a packet built for another key', input)
    if (res.type === 'forward') {
      if (res.packet.length !== PACKET_SIZE || res.next.length !== 32 || !Number.isInteger(res.delayMs)) throw new FuzzFailure('processPacket', rng.seed, i, 'forward result of the wrong shape', input)
      count(report.outcomes, equal(input, seed.packet) ? 'forward' : 'forward:body-changed(relays cannot see it)')
    } else if (res.command === 'service') {
      if (!equal(input, seed.packet) || seed.payload == null || !equal(res.payload, seed.payload)) throw new FuzzFailure('processPacket', rng.seed, i, 'delivered a payload other than the one sent', input)
      count(report.outcomes, 'final')
    } else {
      const opened = seed.secret != null ? openReply(res.payload, seed.secret) : { ok: false as const, reason: 'size' as const }
      if (opened.ok && (!equal(input, seed.packet) || seed.payload == null || !equal(opened.payload, seed.payload))) {
        throw new FuzzFailure('processPacket', rng.seed, i, 'a tampered reply opened', input)
      }
      count(report.outcomes, opened.ok ? 'reply:opened' : `reply:openReply-${opened.reason}`)
    }
  }
  return report
}

/**
 * OnionService.receive on `n` inputs. `service` must be a relay whose onEvent feeds `events`; its
 * forward layers go to `forwardTo` (the node itself: a counted loop drop, or unreachable peers: a
 * bounded queue and dial failures).
 */
export function fuzzOnionReceive (rng: Rng, n: number, rig: { service: OnionService, relayPublic: Uint8Array, self: Uint8Array, forwardTo: Uint8Array[] }): HandlerReport {
  const report = newReport()
  const corpus = onionCorpus(rng, rig.relayPublic, { self: rig.self, forwardTo: rig.forwardTo })
  const peers = Array.from({ length: 8 }, (_, i) => `fuzz-peer-${i}`)
  const before = snapshot(rig.service)
  for (let i = 0; i < n; i++) {
    const seed = rng.pick(corpus)
    const { input } = mutatePacket(rng, seed, corpus)
    report.inputs++
    const from = rng.chance(0.1) ? 'fuzz-flooder' : rng.pick(peers)
    const framed = rng.chance(0.1) ? { subarray: () => input } : reframe(rng, input)
    try {
      timed(report, () => { rig.service.receive(framed, from) })
    } catch (err) {
      throw new FuzzFailure('OnionService.receive', rng.seed, i, `threw ${(err as Error).name}: ${(err as Error).message}`, input)
    }
  }
  const after = snapshot(rig.service)
  for (const [k, v] of Object.entries(after)) if (v - (before[k] ?? 0) > 0) count(report.outcomes, k, v - (before[k] ?? 0))
  if ((report.outcomes['drop:internal'] ?? 0) > 0) throw new FuzzFailure('OnionService.receive', rng.seed, n, 'internal errors while processing', new Uint8Array())
  return report
}

function snapshot (service: OnionService): Record<string, number> {
  const out: Record<string, number> = { delivered: service.stats.delivered, forwarded: service.stats.forwarded }
  for (const [k, v] of Object.entries(service.stats.dropped)) out[`drop:${k}`] = v ?? 0
  return out
}

// ------------------------------------------------------------------------------------------------
// The end-to-end payload
// ------------------------------------------------------------------------------------------------

interface ChatUser { signer: Signer, onion: { publicKey: Uint8Array, privateKey: Uint8Array }, epoch: number }

interface ChatSeeds {
  /** the recipient of every message and the signer of every receipt */
  bob: ChatUser
  /** the sender of every message and the addressee of every receipt */
  alice: ChatUser
  /** a third user: nothing signed to bob or alice may verify as addressed to carol */
  carol: ChatUser
  messages: Uint8Array[]
  sealed: Uint8Array[]
  envelopes: Uint8Array[]
  receipts: Uint8Array[]
}

function chatUser (epoch: number): ChatUser {
  return { signer: ed25519SignerFromSeed(generateEd25519Seed()), onion: generateX25519KeyPair(), epoch }
}

function chatCorpus (rng: Rng): ChatSeeds {
  const alice = chatUser(1)
  const bob = chatUser(7)
  const carol = chatUser(7)
  const messages: Uint8Array[] = []
  const sealed: Uint8Array[] = []
  const envelopes: Uint8Array[] = []
  const receipts: Uint8Array[] = []
  const texts = ['', 'hi', 'über ✓ 🙂', 'x'.repeat(1024), '\uFEFFbom', 'a\nb\tc']
  const to = { identityKey: bob.signer.publicKey, onionKey: bob.onion.publicKey, epoch: bob.epoch }
  for (let i = 0; i < 12; i++) {
    const msg = createMessage({
      id: rng.bytes(16),
      senderNick: rng.pick(['a', 'alice', 'x'.repeat(32), 'bob_2-x']),
      senderIdentityKey: alice.signer.publicKey,
      timestamp: rng.pick([0, Date.now(), Number.MAX_SAFE_INTEGER]),
      text: rng.pick(texts),
      nameRecord: rng.bytes(rng.pick([0, 0, 400, 591, MAX_NAME_RECORD_BYTES])),
      replyBlock: rng.bytes(rng.pick([0, REPLY_BLOCK_BYTES]))
    })
    const encoded = encodeMessage(msg, alice.signer, bob.signer.publicKey)
    messages.push(encoded)
    const s = sealMessage(msg, alice.signer, to, { maxLength: MAX_SEALED })
    sealed.push(s)
    envelopes.push(encodeEnvelope({ type: 'message', encoded }))
    const receipt = createReceipt(Array.from({ length: rng.pick([1, 2, 32]) }, () => rng.bytes(16)), bob.signer, alice.signer.publicKey)
    receipts.push(encodeReceipt(receipt))
    envelopes.push(encodeEnvelope({ type: 'receipt', receipt }))
    sealed.push(sealReceipt(receipt, to))
  }
  return { alice, bob, carol, messages, sealed, envelopes, receipts }
}

/** Mostly cheap (length) mutations; a share that only a signature, tag or padding check catches. */
const BYTES_PLAN = { cheap: 80, 'in-place': 18, none: 2 }

function mutateBytes (rng: Rng, seed: Uint8Array, corpus: Uint8Array[], maxLength: number, plan = BYTES_PLAN): Uint8Array {
  switch (rng.weighted(plan)) {
    case 'cheap': return mutate(rng, seed, rng.pick(CHEAP), { other: rng.pick(corpus), maxLength })
    case 'in-place': return mutate(rng, seed, rng.pick(IN_PLACE))
    default: return new Uint8Array(seed)
  }
}

function checkReason (handler: string, rng: Rng, i: number, reason: string, input: Uint8Array): void {
  if (!DECODE_REASONS.has(reason)) throw new FuzzFailure(handler, rng.seed, i, `unknown reason ${reason}`, input)
}

/** Whether `input` is byte for byte one of `corpus`. */
function isSeed (corpus: Uint8Array[], input: Uint8Array): boolean {
  return corpus.some(r => equal(r, input))
}

/**
 * Runs each chat decoder on its share of `counts`. Invariants: no decoder throws or names an unknown reason;
 * a changed message never verifies, and a genuine one verifies only for its addressee (bob), never for carol;
 * a changed receipt never verifies, and a genuine one only for its addressee (alice); a changed seal never opens.
 */
export function fuzzChat (rng: Rng, counts: { envelope: number, receipt: number, message: number, open: number, sealedMutant: number }): FamilyReport {
  const seeds = chatCorpus(rng)
  const { alice, bob, carol } = seeds
  const out: FamilyReport = {}
  const receiptVerifies = (receipt: Receipt, addressee: Uint8Array): boolean => verifyReceipt(receipt, bob.signer.publicKey, addressee)

  const env = out.decodeEnvelope = newReport()
  for (let i = 0; i < counts.envelope; i++) {
    const seed = rng.pick(seeds.envelopes)
    const input = reframe(rng, mutateBytes(rng, seed, seeds.envelopes, 4096))
    // decoded by bob (messages are to him) or by alice (receipts are to her)
    const reader = rng.chance(0.5) ? bob : alice
    env.inputs++
    let res
    try { res = timed(env, () => decodeEnvelope(input, reader.signer.publicKey)) } catch (err) { throw new FuzzFailure('decodeEnvelope', rng.seed, i, `threw ${(err as Error).message}`, input) }
    if (!res.ok) { checkReason('decodeEnvelope', rng, i, res.reason, input); count(env.outcomes, res.reason); continue }
    if (res.type === 'message' && res.signatureValid && (reader !== bob || !isSeed(seeds.envelopes, input))) {
      throw new FuzzFailure('decodeEnvelope', rng.seed, i, 'a changed or misaddressed message verifies', input)
    }
    if (res.type === 'receipt') {
      const receipt = res.receipt
      if (timed(env, () => receiptVerifies(receipt, carol.signer.publicKey))) throw new FuzzFailure('decodeEnvelope', rng.seed, i, 'a receipt to alice verifies as one to carol', input)
      if (timed(env, () => receiptVerifies(receipt, alice.signer.publicKey)) && !isSeed(seeds.envelopes, input)) {
        throw new FuzzFailure('decodeEnvelope', rng.seed, i, 'a changed receipt verifies', input)
      }
    }
    count(env.outcomes, `ok:${res.type}`)
  }

  const rec = out['decodeReceipt+verifyReceipt'] = newReport()
  for (let i = 0; i < counts.receipt; i++) {
    const seed = rng.pick(seeds.receipts)
    const input = reframe(rng, mutateBytes(rng, seed, seeds.receipts, 700))
    rec.inputs++
    let res
    try { res = timed(rec, () => decodeReceipt(input)) } catch (err) { throw new FuzzFailure('decodeReceipt', rng.seed, i, `threw ${(err as Error).message}`, input) }
    if (!res.ok) { checkReason('decodeReceipt', rng, i, res.reason, input); count(rec.outcomes, res.reason); continue }
    const receipt = res.receipt
    const valid = timed(rec, () => receiptVerifies(receipt, alice.signer.publicKey))
    if (valid && !isSeed(seeds.receipts, input)) throw new FuzzFailure('verifyReceipt', rng.seed, i, 'a changed receipt verifies', input)
    if (valid && timed(rec, () => receiptVerifies(receipt, carol.signer.publicKey))) throw new FuzzFailure('verifyReceipt', rng.seed, i, 'a receipt to alice verifies as one to carol', input)
    count(rec.outcomes, valid ? 'ok:verified' : 'ok:bad-signature')
  }

  const msg = out.decodeMessage = newReport()
  for (let i = 0; i < counts.message; i++) {
    const seed = rng.pick(seeds.messages)
    const input = reframe(rng, mutateBytes(rng, seed, seeds.messages, 2400))
    msg.inputs++
    let res
    try { res = timed(msg, () => decodeMessage(input, bob.signer.publicKey)) } catch (err) { throw new FuzzFailure('decodeMessage', rng.seed, i, `threw ${(err as Error).message}`, input) }
    if (!res.ok) { checkReason('decodeMessage', rng, i, res.reason, input); count(msg.outcomes, res.reason); continue }
    if (res.signatureValid && !isSeed(seeds.messages, input)) throw new FuzzFailure('decodeMessage', rng.seed, i, 'a changed message has a valid signature', input)
    if (res.signatureValid) {
      const asCarol = timed(msg, () => decodeMessage(input, carol.signer.publicKey))
      if (!asCarol.ok || asCarol.signatureValid) throw new FuzzFailure('decodeMessage', rng.seed, i, 'a message signed to bob verifies as addressed to carol', input)
    }
    count(msg.outcomes, res.signatureValid ? 'ok:signed' : 'ok:bad-signature')
  }

  const open = out.openSealed = newReport()
  const bobKeys = (epoch: number): Uint8Array | undefined => epoch === bob.epoch ? bob.onion.privateKey : undefined
  for (let i = 0; i < counts.open; i++) {
    const seed = rng.pick(seeds.sealed)
    const input = reframe(rng, mutateBytes(rng, seed, seeds.sealed, 2400))
    open.inputs++
    let res
    try { res = timed(open, () => openSealed(input, bobKeys, bob.signer.publicKey)) } catch (err) { throw new FuzzFailure('openSealed', rng.seed, i, `threw ${(err as Error).message}`, input) }
    if (!res.ok) { checkReason('openSealed', rng, i, res.reason, input); count(open.outcomes, res.reason); continue }
    if (!isSeed(seeds.sealed, input)) throw new FuzzFailure('openSealed', rng.seed, i, 'a changed sealed item opened', input)
    if (!equal(res.ephemeralKey, sealEphemeralKey(input) ?? new Uint8Array())) throw new FuzzFailure('openSealed', rng.seed, i, 'E read without opening differs from the opened one', input)
    count(open.outcomes, res.type === 'receipt' ? 'ok:receipt' : res.signatureValid ? 'ok:signed' : 'ok:bad-signature')
  }

  // A sender that seals malformed plaintext itself: the AEAD passes, the decoder and signature must not.
  const inner = out['openMessage(sealed mutant)'] = newReport()
  for (let i = 0; i < counts.sealedMutant; i++) {
    const seed = rng.pick(seeds.messages)
    const plain = mutateBytes(rng, seed, seeds.messages, 2300, { cheap: 40, 'in-place': 58, none: 2 })
    const envelope = new Uint8Array([1, ...plain])
    inner.inputs++
    let res
    try {
      res = timed(inner, () => openMessage(seal(envelope, bob.onion.publicKey, bob.epoch), bobKeys, bob.signer.publicKey))
    } catch (err) {
      throw new FuzzFailure('openMessage(sealed)', rng.seed, i, `threw ${(err as Error).message}`, plain)
    }
    if (!res.ok) { checkReason('openMessage(sealed)', rng, i, res.reason, plain); count(inner.outcomes, res.reason); continue }
    if (res.signatureValid && !isSeed(seeds.messages, plain)) throw new FuzzFailure('openMessage(sealed)', rng.seed, i, 'a changed message has a valid signature', plain)
    count(inner.outcomes, res.signatureValid ? 'ok:signed' : 'ok:bad-signature')
  }
  return out
}

// ------------------------------------------------------------------------------------------------
// Directory records
// ------------------------------------------------------------------------------------------------

interface RecordSeed { key: Uint8Array, bytes: Uint8Array, kind: 'name' | 'relay' }

function directoryCorpus (rng: Rng): RecordSeed[] {
  const seeds: RecordSeed[] = []
  const now = Date.now()
  for (let i = 0; i < 10; i++) {
    const seed = generateEd25519Seed()
    const signer = ed25519SignerFromSeed(seed)
    const onion = generateX25519KeyPair()
    const addrs = Array.from({ length: rng.pick([0, 1, 2, 16]) }, (_, j) => rng.pick([`/ip4/127.0.0.1/tcp/${4000 + j}`, `/ip6/::1/tcp/${4000 + j}/ws`, `/dns4/example.com/tcp/443/wss`]))
    const nick = `${rng.pick(['alice', 'b', 'x'.repeat(31), 'user_', 'a-'])}${i}`.slice(-32) // unique per seed: one live claim per nick
    // version 2 names: no address, 0..4 mailboxes, sometimes optional fields (0x80..0xff)
    const name: DirectoryRecord = {
      kind: KIND_NAME, nick, identityKey: signer.publicKey,
      onionKeys: [{ epoch: 0, notBefore: 0, notAfter: 0, key: onion.publicKey }],
      mailboxes: Array.from({ length: rng.pick([0, 2, 4]) }, () => ({ relay: rng.bytes(32), id: rng.bytes(32) })),
      extensions: rng.chance(0.3) ? [{ type: rng.range(0x80, 0xff), value: rng.bytes(rng.range(0, 40)) }] : [],
      addrs: [], sequence: BigInt(now + i), expiry: now + 3600_000
    }
    const n = signRecord(name, signer)
    seeds.push({ key: nameKey(nick), bytes: n.bytes, kind: 'name' })
    const relay: DirectoryRecord = {
      kind: KIND_RELAY, nick: '', identityKey: signer.publicKey,
      onionKeys: Array.from({ length: rng.range(1, 3) }, (_, e) => ({ epoch: e + 1, notBefore: now - 1000 + e * 3600_000, notAfter: now + (e + 1) * 3600_000, key: generateX25519KeyPair().publicKey })),
      addrs, sequence: BigInt(now + i), expiry: now + 3600_000
    }
    const r = signRecord(relay, signer)
    seeds.push({ key: relayKey(r.peerId), bytes: r.bytes, kind: 'relay' })
  }
  return seeds
}

function mutateKey (rng: Rng, key: Uint8Array, seeds: RecordSeed[]): Uint8Array {
  switch (rng.int(4)) {
    case 0: return rng.pick(seeds).key
    case 1: return mutate(rng, key, rng.pick(ALL_MUTATIONS), { maxLength: 80 })
    case 2: return new TextEncoder().encode(rng.pick(['/p2pchat/name/', '/p2pchat/relay/', '/p2pchat/name/ALICE', '/p2pchat/name/alice/', '/p2pchat/relay/12D3KooWxyz', '']))
    default: return key
  }
}

function checkRecordError (handler: string, rng: Rng, i: number, err: unknown, input: Uint8Array): string {
  if (!(err instanceof RecordError) || !RECORD_FAULTS.has(err.fault)) {
    throw new FuzzFailure(handler, rng.seed, i, `threw ${(err as Error).name}: ${(err as Error).message}`, input)
  }
  return err.fault
}

/** The directory's read and write paths on `counts` inputs. */
export async function fuzzDirectory (rng: Rng, counts: { verify: number, validator: number, select: number, relayAdd: number, guarded: number, exit: number }): Promise<FamilyReport> {
  const seeds = directoryCorpus(rng)
  const all = seeds.map(s => s.bytes)
  const genuine = (key: Uint8Array, bytes: Uint8Array): boolean => seeds.some(s => equal(s.key, key) && equal(s.bytes, bytes))
  const out: FamilyReport = {}
  const input = (seed: RecordSeed): { key: Uint8Array, bytes: Uint8Array } => ({
    key: rng.chance(0.85) ? seed.key : mutateKey(rng, seed.key, seeds),
    bytes: reframe(rng, mutateBytes(rng, seed.bytes, all, 2200))
  })

  const verify = out.verifyRecord = newReport()
  for (let i = 0; i < counts.verify; i++) {
    const { key, bytes } = input(rng.pick(seeds))
    verify.inputs++
    try {
      timed(verify, () => verifyRecord(key, bytes))
      if (!genuine(key, bytes)) throw new FuzzFailure('verifyRecord', rng.seed, i, 'accepted a changed record', bytes)
      count(verify.outcomes, 'ok')
    } catch (err) {
      if (err instanceof FuzzFailure) throw err
      count(verify.outcomes, checkRecordError('verifyRecord', rng, i, err, bytes))
    }
  }

  const validator = out['dht validator'] = newReport()
  for (let i = 0; i < counts.validator; i++) {
    const { key, bytes } = input(rng.pick(seeds))
    validator.inputs++
    const t = performance.now()
    try {
      await directoryValidators.p2pchat(key, bytes)
      if (!genuine(key, bytes)) throw new FuzzFailure('dht validator', rng.seed, i, 'accepted a changed record', bytes)
      count(validator.outcomes, 'ok')
    } catch (err) {
      if (err instanceof FuzzFailure) throw err
      count(validator.outcomes, checkRecordError('dht validator', rng, i, err, bytes))
    } finally {
      validator.ms += performance.now() - t
    }
  }

  const select = out.selectRecord = newReport()
  for (let i = 0; i < counts.select; i++) {
    const seed = rng.pick(seeds)
    const values = Array.from({ length: rng.range(1, 4) }, () => reframe(rng, mutateBytes(rng, seed.bytes, all, 2200)))
    const withGenuine = rng.chance(0.5)
    if (withGenuine) values.splice(rng.int(values.length + 1), 0, seed.bytes)
    select.inputs += values.length
    let best: number
    try { best = timed(select, () => selectRecord(seed.key, values)) } catch (err) { throw new FuzzFailure('selectRecord', rng.seed, i, `threw ${(err as Error).message}`, values[0]) }
    if (!Number.isInteger(best) || best < 0 || best >= values.length) throw new FuzzFailure('selectRecord', rng.seed, i, `index ${best} out of range`, values[0])
    const chosenOk = genuine(seed.key, values[best])
    if (withGenuine && !chosenOk) throw new FuzzFailure('selectRecord', rng.seed, i, 'chose an invalid record over the genuine one', values[best])
    count(select.outcomes, chosenOk ? 'chose the genuine record' : 'no valid record (index 0)')
  }

  const relays = new RelayDirectory()
  const relaySeeds = seeds.filter(s => s.kind === 'relay')
  const relayAll = relaySeeds.map(s => s.bytes).concat(seeds.filter(s => s.kind === 'name').map(s => s.bytes))
  const add = out['RelayDirectory.add'] = newReport()
  for (let i = 0; i < counts.relayAdd; i++) {
    const seed = rng.pick(relaySeeds)
    const bytes = reframe(rng, mutateBytes(rng, rng.chance(0.1) ? rng.pick(relayAll) : seed.bytes, relayAll, 2200))
    add.inputs++
    let rec
    try { rec = timed(add, () => relays.add(bytes)) } catch (err) { throw new FuzzFailure('RelayDirectory.add', rng.seed, i, `threw ${(err as Error).message}`, bytes) }
    if (rec != null && !relaySeeds.some(s => equal(s.bytes, bytes))) throw new FuzzFailure('RelayDirectory.add', rng.seed, i, 'accepted a changed descriptor', bytes)
    count(add.outcomes, rec != null ? 'ok' : 'rejected')
  }
  if (relays.size > relaySeeds.length) throw new FuzzFailure('RelayDirectory.add', rng.seed, counts.relayAdd, `${relays.size} relays known from ${relaySeeds.length} genuine descriptors`, new Uint8Array())
  for (const [k, v] of Object.entries(relays.rejected)) count(add.outcomes, `rejected:${k}`, v)

  // The storing node's write guard: a genuine record is held; junk and mutants must not replace it.
  const inner = new MemoryDatastore()
  const guarded = new GuardedDatastore(inner)
  const dsKey = (k: Uint8Array): Key => new Key(`/dht/record/${Buffer.from(k).toString('base64url')}`)
  for (const s of seeds) await guarded.put(dsKey(s.key), new Libp2pRecord(s.key, s.bytes, new Date()).serialize())
  const put = out['GuardedDatastore.put'] = newReport()
  for (let i = 0; i < counts.guarded; i++) {
    const seed = rng.pick(seeds)
    const { key, bytes } = input(seed)
    let wrapped = new Libp2pRecord(key, bytes, new Date()).serialize()
    put.inputs++
    if (rng.chance(0.1)) {
      // a mutated protobuf wrapper: kad-dht's PUT_VALUE handler deserializes it and stores it re-serialized
      wrapped = mutate(rng, wrapped, rng.pick(ALL_MUTATIONS), { maxLength: 2400 })
      try {
        const parsed = Libp2pRecord.deserialize(wrapped)
        wrapped = new Libp2pRecord(parsed.key, parsed.value, new Date()).serialize()
      } catch {
        count(put.outcomes, 'not a Libp2pRecord (kad-dht refuses it)')
        continue
      }
    }
    const t = performance.now()
    try {
      // kad-dht derives the datastore key from the record's own key
      await guarded.put(dsKey(Libp2pRecord.deserialize(wrapped).key), wrapped)
    } catch (err) {
      throw new FuzzFailure('GuardedDatastore.put', rng.seed, i, `threw ${(err as Error).message}`, wrapped)
    } finally {
      put.ms += performance.now() - t
    }
  }
  for (const s of seeds) {
    const held = Libp2pRecord.deserialize(await inner.get(dsKey(s.key)))
    if (!equal(held.value, s.bytes)) {
      // a wrapper whose own key no longer starts /p2pchat/ passes through (the guard covers p2pchat records only)
      if (new TextDecoder().decode(held.key).startsWith('/p2pchat/')) throw new FuzzFailure('GuardedDatastore.put', rng.seed, counts.guarded, 'a genuine record was replaced', held.value)
    }
  }
  for (const [k, v] of Object.entries(guarded.refused)) count(put.outcomes, `refused:${k}`, v)
  for (const [k, v] of Object.entries(guarded.refusedFaults)) count(put.outcomes, `refused:invalid:${k}`, v ?? 0)
  count(put.outcomes, 'genuine records still held', seeds.length)

  // The exit's and the relay list's decoders (EXIT.md, relay-list.ts): never throw, and whatever they
  // accept encodes back to exactly the input bytes (no two encodings of one message).
  const encodeRequest = (r: ExitRequest): Uint8Array =>
    r.op === OP_LOOKUP_NAME ? encodeLookup(r.nick) : r.op === OP_PUBLISH_NAME ? encodePublish(r.record) : encodeFindRelays(r.max)
  const names = seeds.filter(s => s.kind === 'name')
  const relayBytes = seeds.filter(s => s.kind === 'relay').map(s => s.bytes)
  const wire: Uint8Array[] = [
    ...names.map(s => encodeLookup(new TextDecoder().decode(s.key).slice('/p2pchat/name/'.length))),
    ...names.map(s => encodePublish(s.bytes)),
    encodeFindRelays(1), encodeFindRelays(64),
    encodeAnswer({ op: OP_LOOKUP_NAME, status: 'found', record: names[0].bytes }),
    encodeAnswer({ op: OP_LOOKUP_NAME, status: 'not-found' }),
    encodeAnswer({ op: OP_PUBLISH_NAME, status: 'stored', stored: 9 }),
    encodeAnswer({ op: OP_PUBLISH_NAME, status: 'taken', holder: names[1].bytes }),
    encodeAnswer({ op: OP_PUBLISH_NAME, status: 'refused', fault: 'signature' }),
    encodeAnswer({ op: OP_FIND_RELAYS, status: 'relays', descriptors: relayBytes.slice(0, 4) }),
    encodeAnswer({ op: OP_LOOKUP_NAME, status: 'busy' }),
    encodeAnswer({ op: OP_PUBLISH_NAME, status: 'error', reason: 'timeout' }),
    encodeRelayList(relayBytes)
  ]
  const exit = out['exit and relay-list decoders'] = newReport()
  for (let i = 0; i < counts.exit; i++) {
    const bytes = reframe(rng, mutateBytes(rng, rng.pick(wire), wire, 4000))
    exit.inputs++
    const t = performance.now()
    try {
      const req = decodeRequest(bytes)
      if (req.ok && !equal(encodeRequest(req.value), bytes)) throw new FuzzFailure('decodeRequest', rng.seed, i, 'accepted bytes that do not encode back', bytes)
      count(exit.outcomes, req.ok ? 'request ok' : `request:${req.reason}`)
      const ans = decodeAnswer(bytes)
      if (ans.ok && !equal(encodeAnswer(ans.value), bytes)) throw new FuzzFailure('decodeAnswer', rng.seed, i, 'accepted bytes that do not encode back', bytes)
      count(exit.outcomes, ans.ok ? 'answer ok' : `answer:${ans.reason}`)
      const list = decodeRelayList(bytes)
      if (list.ok && !equal(encodeRelayList(list.descriptors), bytes)) throw new FuzzFailure('decodeRelayList', rng.seed, i, 'accepted bytes that do not encode back', bytes)
      count(exit.outcomes, list.ok ? 'relay list ok' : `relay list:${list.reason}`)
    } catch (err) {
      if (err instanceof FuzzFailure) throw err
      throw new FuzzFailure('exit decoders', rng.seed, i, `threw ${(err as Error).name}: ${(err as Error).message}`, bytes)
    } finally {
      exit.ms += performance.now() - t
    }
  }
  return out
}

// ------------------------------------------------------------------------------------------------
// The --json command parser (cli/json-commands.ts, when present)
// ------------------------------------------------------------------------------------------------

type ParsedLine = { ok: true, command: Record<string, unknown> } | { ok: false, code: string, message: string, tag?: string }
export interface JsonCommandsModule {
  parseJsonCommand: (line: string) => ParsedLine
  MAX_JSON_LINE_BYTES?: number
  MAX_TAG_LENGTH?: number
}

export const JSON_COMMANDS_PATH = new URL('../../cli/json-commands.ts', import.meta.url)

/** The parser module, or undefined when cli/json-commands.ts does not exist (yet). */
export async function loadJsonCommands (): Promise<JsonCommandsModule | undefined> {
  if (!existsSync(JSON_COMMANDS_PATH)) return undefined
  return await import(JSON_COMMANDS_PATH.href) as JsonCommandsModule
}

const JSON_KEYS = ['cmd', 'tag', 'to', 'text', 'nick', 'limit', '__proto__', 'constructor', 'toString', 'hasOwnProperty', '', 'CMD', 'cmd ']
const JSON_CMDS = ['send', 'whois', 'contacts', 'history', 'relays', 'accept', 'quit', 'help', 'SEND', '', 'toString', '__proto__', 'constructor']
const FIELD_TYPES: Record<string, Record<string, 'string' | 'integer' | 'boolean'>> = {
  send: { to: 'string', text: 'string' }, whois: { nick: 'string' }, contacts: {}, history: { nick: 'string', limit: 'integer' },
  relays: {}, accept: { nick: 'string' }, quit: {},
  // issue 15's commands
  conversations: {}, read: { nick: 'string' }, requests: {}, deny: { nick: 'string' }, block: { nick: 'string' },
  verify: { nick: 'string', confirm: 'boolean' }, retry: { id: 'string' }, cancel: { id: 'string' }, status: {}
}

function randomJsonValue (rng: Rng, depth: number): unknown {
  switch (rng.int(depth > 3 ? 6 : 9)) {
    case 0: return null
    case 1: return rng.chance(0.5)
    case 2: return rng.pick([0, -1, 1, 1.5, 1000, 1001, 2 ** 53, -0, 1e308, Number.MAX_SAFE_INTEGER])
    case 3: return rng.pick(['', 'bob', 'bob#aaaa-bbbb-cccc-dddd', 'x'.repeat(rng.range(60, 200)), '\u0000', '\ud800', '🙂', 'a\nb'])
    case 4: return Buffer.from(rng.bytes(rng.int(40))).toString('latin1')
    case 5: return rng.pick(JSON_CMDS)
    case 6: return Array.from({ length: rng.int(4) }, () => randomJsonValue(rng, depth + 1))
    default: {
      const o: Record<string, unknown> = {}
      for (let i = rng.int(5); i > 0; i--) o[rng.pick(JSON_KEYS)] = randomJsonValue(rng, depth + 1)
      return o
    }
  }
}

function validCommandLine (rng: Rng): string {
  const cmd = rng.pick(Object.keys(FIELD_TYPES))
  const o: Record<string, unknown> = { cmd }
  for (const [f, t] of Object.entries(FIELD_TYPES[cmd])) o[f] = t === 'integer' ? rng.range(1, 1000) : t === 'boolean' ? rng.chance(0.5) : rng.pick(['bob', 'alice#abcd-efgh-ijkl-mnop', 'hello there', '🙂 über'])
  if (rng.chance(0.4)) o.tag = `t${rng.int(1000)}`
  return JSON.stringify(o)
}

function mutateLine (rng: Rng, line: string): string {
  switch (rng.int(8)) {
    case 0: { // byte-level, decoded back lossily
      const b = mutate(rng, new TextEncoder().encode(line), rng.pick(ALL_MUTATIONS), { maxLength: 300 })
      return new TextDecoder().decode(b)
    }
    case 1: { // a structural character inserted
      const p = rng.int(line.length + 1)
      return line.slice(0, p) + rng.pick(['{', '}', '[', ']', '"', ',', ':', '\\', '\\u', '\u2028', '\ud83d', 'null', '1e999', ' ']) + line.slice(p)
    }
    case 2: return line.slice(0, rng.int(line.length + 1))
    case 3: return '['.repeat(rng.range(1, 5000)) + ']'.repeat(rng.range(0, 5000))
    case 4: return line.replace(/"(\w+)":/, `"${rng.pick(JSON_KEYS)}":`)
    case 5: return line.slice(0, -1) + `,"text":"${'x'.repeat(rng.pick([10, 16 * 1024, 20_000]))}"}`
    case 6: return JSON.stringify(randomJsonValue(rng, 0)) ?? 'undefined'
    default: return line
  }
}

/** parseJsonCommand on `n` lines; checks it never throws and that every accepted command is well-typed. */
export function fuzzJsonCommands (rng: Rng, n: number, mod: JsonCommandsModule): HandlerReport {
  const report = newReport()
  const maxTag = mod.MAX_TAG_LENGTH ?? 64
  for (let i = 0; i < n; i++) {
    const line = rng.chance(0.15) ? validCommandLine(rng) : mutateLine(rng, validCommandLine(rng))
    report.inputs++
    let res: ParsedLine
    try { res = timed(report, () => mod.parseJsonCommand(line)) } catch (err) { throw new FuzzFailure('parseJsonCommand', rng.seed, i, `threw ${(err as Error).message}`, line) }
    if (res == null || typeof res !== 'object') throw new FuzzFailure('parseJsonCommand', rng.seed, i, 'returned no result', line)
    if (!res.ok) {
      if (typeof res.code !== 'string' || typeof res.message !== 'string') throw new FuzzFailure('parseJsonCommand', rng.seed, i, 'an error without code and message', line)
      count(report.outcomes, `err:${res.code}`)
      continue
    }
    const c = res.command
    const cmd = c.cmd
    if (typeof cmd !== 'string' || !Object.hasOwn(FIELD_TYPES, cmd)) throw new FuzzFailure('parseJsonCommand', rng.seed, i, `accepted cmd ${String(cmd)}`, line)
    for (const [k, v] of Object.entries(c)) {
      if (k === 'cmd') continue
      if (k === 'tag') { if (typeof v !== 'string' || v.length > maxTag) throw new FuzzFailure('parseJsonCommand', rng.seed, i, 'accepted a bad tag', line); continue }
      const t = FIELD_TYPES[cmd][k]
      if (t == null) throw new FuzzFailure('parseJsonCommand', rng.seed, i, `accepted unknown field ${k}`, line)
      if (t === 'string' && typeof v !== 'string') throw new FuzzFailure('parseJsonCommand', rng.seed, i, `accepted a non-string ${k}`, line)
      if (t === 'integer' && (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1)) throw new FuzzFailure('parseJsonCommand', rng.seed, i, `accepted a bad integer ${k}`, line)
      if (t === 'boolean' && typeof v !== 'boolean') throw new FuzzFailure('parseJsonCommand', rng.seed, i, `accepted a non-boolean ${k}`, line)
    }
    for (const [k, t] of Object.entries(FIELD_TYPES[cmd])) {
      if (t === 'string' && typeof c[k] !== 'string') throw new FuzzFailure('parseJsonCommand', rng.seed, i, `accepted ${cmd} without ${k}`, line)
    }
    count(report.outcomes, `ok:${cmd}`)
  }
  return report
}
