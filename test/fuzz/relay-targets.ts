/**
 * Fuzz targets for the parts of a relay beyond the mix itself (protocol v2):
 * - ServiceDispatcher.handle on SERVICE bodies (`service | block length | block | request`): valid
 *   bodies for every service byte with and without a real reply block, then mutated; must never throw,
 *   and every input ends as a request, drop cover or a counted drop.
 * - the client link (`/onion-chat/2.0/client`): parseClientFrame on mutated frames, and raw frames over a
 *   real stream to ClientLinkServer (wrong lengths, wrong kinds, DELIVER sent the wrong way, broken
 *   varints, oversize lengths, valid SUBMITs to the relay itself); afterwards the server still takes a
 *   client and hands it a packet.
 */
import { createP2PNode } from '../../node/create.ts'
import { ephemeralIdentity } from '../../node/identity.ts'
import { CLIENT_FRAME_LENGTH, CLIENT_PROTOCOL, clientFrame, KIND_DELIVER, KIND_SUBMIT, parseClientFrame } from '../../protocols/onion/client-link.ts'
import type { ServiceDispatcher } from '../../protocols/onion/relay-services.ts'
import { encodeServiceBody, MAX_REQUEST_WITH_REPLY, SERVICE_DIRECTORY, SERVICE_DROP, SERVICE_MAILBOX } from '../../protocols/onion/service-body.ts'
import { PACKET_SIZE, PAYLOAD_CAPACITY } from '../../protocols/onion/constants.ts'
import { createPacket, createSurb, generateOnionKey } from '../../protocols/onion/sphinx.ts'
import { ALL_MUTATIONS, count, FuzzFailure, mutate, newReport } from './generators.ts'
import type { HandlerReport, Rng } from './generators.ts'
import type { OnionRig } from './onion-rig.ts'

function varint (n: number): number[] {
  const out: number[] = []
  while (n >= 0x80) { out.push((n & 0x7f) | 0x80); n = Math.floor(n / 128) }
  out.push(n)
  return out
}

function dispatcherSnapshot (d: ServiceDispatcher): Record<string, number> {
  const out: Record<string, number> = { dropCover: d.stats.dropCover }
  for (const [k, v] of Object.entries(d.stats.requests)) out[`request:${k}`] = v ?? 0
  for (const [k, v] of Object.entries(d.stats.dropped)) out[`drop:${k}`] = v ?? 0
  return out
}

/** Valid service bodies: every service byte the relay knows and some it does not, with or without a reply block. */
export function serviceBodyCorpus (rng: Rng, replyTo: { address: Uint8Array, onionKey: Uint8Array }): Uint8Array[] {
  const out: Uint8Array[] = []
  for (const service of [SERVICE_MAILBOX, SERVICE_DIRECTORY, SERVICE_DROP, 0x00, 0x7f, 0xff]) {
    const block = createSurb([replyTo, { address: replyTo.address, onionKey: generateOnionKey().publicKey, client: true }]).surb
    out.push(encodeServiceBody({ service, replyBlock: block, request: rng.bytes(rng.pick([0, 1, 40, MAX_REQUEST_WITH_REPLY])) }))
    out.push(encodeServiceBody({ service, replyBlock: undefined, request: rng.bytes(rng.pick([0, 1, 40, PAYLOAD_CAPACITY - 3])) }))
  }
  return out
}

/** ServiceDispatcher.handle on `n` bodies; the rig's echo service answers through the blocks it gets. */
export function fuzzServiceBodies (rng: Rng, n: number, rig: OnionRig): HandlerReport {
  const report = newReport()
  const t = performance.now()
  const corpus = serviceBodyCorpus(rng, { address: rig.self, onionKey: rig.relayPublic })
  const before = dispatcherSnapshot(rig.services)
  for (let i = 0; i < n; i++) {
    const seed = rng.pick(corpus)
    const input = rng.chance(0.05) ? new Uint8Array(seed) : mutate(rng, seed, rng.pick(ALL_MUTATIONS), { other: rng.pick(corpus), maxLength: PAYLOAD_CAPACITY + 64 })
    report.inputs++
    try {
      rig.services.handle(input)
    } catch (err) {
      throw new FuzzFailure('ServiceDispatcher.handle', rng.seed, i, `threw ${(err as Error).name}: ${(err as Error).message}`, input)
    }
  }
  const after = dispatcherSnapshot(rig.services)
  let accounted = 0
  for (const [k, v] of Object.entries(after)) {
    const d = v - (before[k] ?? 0)
    if (d > 0) { count(report.outcomes, k, d); accounted += d }
  }
  if (accounted !== n) throw new FuzzFailure('ServiceDispatcher.handle', rng.seed, n, `${n} inputs but ${accounted} counted outcomes`, new Uint8Array())
  if ((report.outcomes['drop:handler'] ?? 0) > 0) throw new FuzzFailure('ServiceDispatcher.handle', rng.seed, n, 'a service handler threw', new Uint8Array())
  report.ms = performance.now() - t
  return report
}

/** parseClientFrame on `n` mutated frames: never throws; a frame it accepts has the right length and a known kind. */
export function fuzzParseClientFrame (rng: Rng, n: number, rig: OnionRig): HandlerReport {
  const report = newReport()
  const t = performance.now()
  const packet = createPacket([{ address: rig.self, onionKey: rig.relayPublic }], new Uint8Array(8)).packet
  const seeds = [
    clientFrame(KIND_SUBMIT, rig.self, packet).subarray(varint(CLIENT_FRAME_LENGTH).length),
    clientFrame(KIND_DELIVER, new Uint8Array(32), packet).subarray(varint(CLIENT_FRAME_LENGTH).length)
  ]
  for (let i = 0; i < n; i++) {
    const input = mutate(rng, rng.pick(seeds), rng.pick(ALL_MUTATIONS), { maxLength: CLIENT_FRAME_LENGTH * 2 })
    report.inputs++
    let res: ReturnType<typeof parseClientFrame>
    try {
      res = parseClientFrame(input)
    } catch (err) {
      throw new FuzzFailure('parseClientFrame', rng.seed, i, `threw ${(err as Error).name}`, input)
    }
    if (res.ok && (input.length !== CLIENT_FRAME_LENGTH || res.packet.length !== PACKET_SIZE || res.address.length !== 32)) {
      throw new FuzzFailure('parseClientFrame', rng.seed, i, 'accepted a frame of the wrong shape', input)
    }
    count(report.outcomes, res.ok ? `kind:${res.kind}` : `drop:${res.reason}`)
  }
  report.ms = performance.now() - t
  return report
}

/** Raw frames over real client-link streams to the rig's ClientLinkServer. */
export async function fuzzClientStream (rng: Rng, n: number, rig: OnionRig): Promise<HandlerReport> {
  const report = newReport()
  const id = await ephemeralIdentity()
  const attacker = await createP2PNode({ privateKey: id.privateKey, listen: ['/ip4/127.0.0.1/tcp/0'] })
  const t = performance.now()
  const stats = rig.clients.stats
  const snap = (): Record<string, number> => ({ submitted: stats.submitted, streamErrors: stats.streamErrors, ...Object.fromEntries(Object.entries(stats.dropped).map(([k, v]) => [`drop:${k}`, v ?? 0])) })
  const before = snap()
  const packets = [
    createPacket([{ address: rig.self, onionKey: rig.relayPublic }], rng.bytes(100)).packet,
    createPacket([{ address: rig.self, onionKey: rig.relayPublic }, { address: rig.self, onionKey: generateOnionKey().publicKey }], rng.bytes(100)).packet
  ]
  try {
    await attacker.dial(rig.node.getMultiaddrs()[0], { signal: AbortSignal.timeout(5_000) })
    let stream = await attacker.dialProtocol(rig.node.peerId, CLIENT_PROTOCOL, { signal: AbortSignal.timeout(5_000) })
    for (let i = 0; i < n; i++) {
      report.inputs++
      const good = clientFrame(KIND_SUBMIT, rng.chance(0.5) ? rig.self : rng.bytes(32), rng.pick(packets))
      const body = good.subarray(varint(CLIENT_FRAME_LENGTH).length)
      let chunk: Uint8Array
      let ends = false
      switch (rng.int(7)) {
        case 0: chunk = good; break
        case 1: chunk = Uint8Array.from([...varint(CLIENT_FRAME_LENGTH), ...mutate(rng, body, rng.pick(['bitflip', 'byte', 'zero-run']))]); break
        case 2: { const b = mutate(rng, body, rng.pick(ALL_MUTATIONS), { maxLength: 2 * PACKET_SIZE }); chunk = Uint8Array.from([...varint(b.length), ...b]); break }
        case 3: chunk = clientFrame(KIND_DELIVER, new Uint8Array(32), rng.pick(packets)); break
        case 4: chunk = Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]); ends = true; break
        case 5: chunk = Uint8Array.from(varint(rng.range(2 * PACKET_SIZE + 1, 1 << 30))); ends = true; break
        default: chunk = Uint8Array.from([...varint(rng.int(64)), ...rng.bytes(rng.int(64))]); ends = rng.chance(0.5); break
      }
      if (!stream.send(chunk)) await stream.onDrain({ signal: AbortSignal.timeout(5_000) })
      if (ends || stream.status !== 'open') {
        stream.abort(new Error('fuzz: next stream'))
        stream = await attacker.dialProtocol(rig.node.peerId, CLIENT_PROTOCOL, { signal: AbortSignal.timeout(5_000) })
      }
    }
    await stream.close({ signal: AbortSignal.timeout(5_000) }).catch(() => {})
    let last = ''
    for (let i = 0; i < 100 && JSON.stringify(snap()) !== last; i++) {
      last = JSON.stringify(snap())
      await new Promise(resolve => setTimeout(resolve, 100))
    }
  } finally {
    await attacker.stop()
  }
  const after = snap()
  for (const [k, v] of Object.entries(after)) if (v - (before[k] ?? 0) > 0) count(report.outcomes, k, v - (before[k] ?? 0))
  report.ms = performance.now() - t
  return report
}
