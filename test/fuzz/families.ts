/**
 * How a family's inputs are split among its handlers, and the one entry point the test and
 * `npm run fuzz` share. The onion family also sends raw frames over a real `/onion-chat/2.0` stream; the
 * relay family fuzzes what else a relay reads: SERVICE bodies and client-link frames (relay-targets.ts).
 */
import { createP2PNode } from '../../node/create.ts'
import { ephemeralIdentity } from '../../node/identity.ts'
import { ONION_PROTOCOL } from '../../protocols/onion/relay.ts'
import { PACKET_SIZE } from '../../protocols/onion/sphinx.ts'
import { count, FuzzFailure, mutate, newReport, ALL_MUTATIONS } from './generators.ts'
import type { FamilyReport, HandlerReport, Rng } from './generators.ts'
import { startOnionRig } from './onion-rig.ts'
import type { OnionRig } from './onion-rig.ts'
import { fuzzClientStream, fuzzParseClientFrame, fuzzServiceBodies } from './relay-targets.ts'
import { fuzzChat, fuzzDirectory, fuzzJsonCommands, fuzzOnionReceive, fuzzProcessPacket, loadJsonCommands, onionCorpus } from './targets.ts'

export const FAMILIES = ['onion', 'relay', 'chat', 'directory', 'json'] as const
export type Family = typeof FAMILIES[number]

const share = (n: number, f: number): number => Math.max(1, Math.round(n * f))

function varint (n: number): number[] {
  const out: number[] = []
  while (n >= 0x80) { out.push((n & 0x7f) | 0x80); n = Math.floor(n / 128) }
  out.push(n)
  return out
}

/** Raw frames over one real stream at a time: mutated packets, wrong lengths, broken varints, oversize frames. */
async function fuzzOnionStream (rng: Rng, n: number, rig: OnionRig): Promise<HandlerReport> {
  const report = newReport()
  const id = await ephemeralIdentity()
  const attacker = await createP2PNode({ privateKey: id.privateKey, listen: ['/ip4/127.0.0.1/tcp/0'] })
  const t = performance.now()
  const stats = rig.service.stats
  const snap = (): Record<string, number> => ({ received: stats.received, ...Object.fromEntries(Object.entries(stats.dropped).map(([k, v]) => [`drop:${k}`, v ?? 0])) })
  const before = snap()
  try {
    await attacker.dial(rig.node.getMultiaddrs()[0], { signal: AbortSignal.timeout(5_000) })
    const corpus = onionCorpus(rng, rig.relayPublic, { self: rig.self, forwardTo: [rig.self] })
    let stream = await attacker.dialProtocol(rig.node.peerId, ONION_PROTOCOL, { signal: AbortSignal.timeout(5_000) })
    for (let i = 0; i < n; i++) {
      report.inputs++
      const packet = rng.pick(corpus).packet
      let chunk: Uint8Array
      let ends = false
      switch (rng.int(6)) {
        case 0: chunk = Uint8Array.from([...varint(PACKET_SIZE), ...mutate(rng, packet, rng.pick(['bitflip', 'byte', 'zero-run']))]); break
        case 1: { const body = mutate(rng, packet, rng.pick(ALL_MUTATIONS), { maxLength: 2 * PACKET_SIZE }); chunk = Uint8Array.from([...varint(body.length), ...body]); break }
        case 2: chunk = Uint8Array.from([...varint(rng.int(PACKET_SIZE * 2)), ...rng.bytes(rng.int(64))]); ends = rng.chance(0.5); break
        case 3: chunk = Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]); ends = true; break
        case 4: chunk = Uint8Array.from(varint(rng.range(2 * PACKET_SIZE + 1, 1 << 30))); ends = true; break
        default: chunk = Uint8Array.from([...varint(0)]); break
      }
      if (!stream.send(chunk)) await stream.onDrain({ signal: AbortSignal.timeout(5_000) })
      if (ends || stream.status !== 'open') {
        // the relay may end this stream (oversize frame, broken varint, leftover bytes): start a new one
        stream.abort(new Error('fuzz: next stream'))
        stream = await attacker.dialProtocol(rig.node.peerId, ONION_PROTOCOL, { signal: AbortSignal.timeout(5_000) })
      }
    }
    await stream.close({ signal: AbortSignal.timeout(5_000) }).catch(() => {})
    // wait (bounded) until the relay has read everything it is going to read
    let last = -1
    for (let i = 0; i < 100 && stats.received !== last; i++) {
      last = stats.received
      await new Promise(resolve => setTimeout(resolve, 100))
    }
  } finally {
    await attacker.stop()
  }
  const after = snap()
  for (const [k, v] of Object.entries(after)) if (v - (before[k] ?? 0) > 0) count(report.outcomes, k, v - (before[k] ?? 0))
  if ((report.outcomes['drop:internal'] ?? 0) > 0) throw new FuzzFailure('onion stream', rng.seed, n, 'internal errors', new Uint8Array())
  report.ms = performance.now() - t
  return report
}

/** Runs one family with `total` inputs; undefined for json when the parser module is absent. */
export async function runFamily (family: Family, rng: Rng, total: number, rig?: OnionRig): Promise<FamilyReport | undefined> {
  switch (family) {
    case 'onion': {
      const own = rig == null
      const r = rig ?? await startOnionRig()
      try {
        return {
          processPacket: fuzzProcessPacket(rng, share(total, 0.7)),
          'OnionService.receive': fuzzOnionReceive(rng, total - share(total, 0.7) - Math.min(600, share(total, 0.02)), r),
          'onion stream frames': await fuzzOnionStream(rng, Math.min(600, share(total, 0.02)), r)
        }
      } finally {
        if (own) await r.stop()
      }
    }
    case 'relay': {
      const own = rig == null
      const r = rig ?? await startOnionRig()
      try {
        const streamed = Math.min(600, share(total, 0.01))
        return {
          'ServiceDispatcher.handle': fuzzServiceBodies(rng, share(total, 0.6), r),
          parseClientFrame: fuzzParseClientFrame(rng, total - share(total, 0.6) - streamed, r),
          'client link frames': await fuzzClientStream(rng, streamed, r)
        }
      } finally {
        if (own) await r.stop()
      }
    }
    case 'chat':
      return fuzzChat(rng, { envelope: share(total, 0.4), receipt: share(total, 0.25), message: share(total, 0.25), open: share(total, 0.07), sealedMutant: share(total, 0.03) })
    case 'directory':
      return await fuzzDirectory(rng, { verify: share(total, 0.55), validator: share(total, 0.08), select: share(total, 0.012), relayAdd: share(total, 0.22), guarded: share(total, 0.12), exit: share(total, 0.018) })
    case 'json': {
      const mod = await loadJsonCommands()
      if (mod == null) return undefined
      return { parseJsonCommand: fuzzJsonCommands(rng, total, mod) }
    }
  }
}
