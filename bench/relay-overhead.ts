/**
 * Our relay code's own cost per packet, without the network stack: OnionService (protocols/onion/
 * relay.ts) on a stand-in libp2p node whose streams accept every send at once, fed distinct 2-hop
 * packets through receive() in chunks of CHUNK per event-loop turn (as a stream read hands them over),
 * against processPacket alone on the same packets, chunk by chunk in the same run. The difference is what the relay
 * adds to Sphinx: rate limiting, key-ring lookup, replay filter, next-hop lookup, queueing, batching,
 * the write. Main-thread CPU time (process.threadCpuUsage), so other processes on the machine change
 * the figures less than wall time would.
 *
 *   node bench/relay-overhead.ts [packets] [rounds]
 */
import { randomBytes } from 'node:crypto'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Libp2p, Stream } from '@libp2p/interface'
import { createPacket, processPacket } from '../protocols/onion/sphinx.ts'
import { addressFromPeerId } from '../protocols/onion/address.ts'
import { OnionKeyRing } from '../protocols/onion/keyring.ts'
import { OnionService } from '../protocols/onion/relay.ts'
import { summarize } from './lib/stats.ts'

/** Frames per read: a busy relay's stream read hands over tens of frames at once. */
const CHUNK = 32

function threadCpuUs (): number {
  const u = process.threadCpuUsage()
  return u.user + u.system
}

/** A stream that takes every write at once and never reads back (until aborted). */
function sinkStream (): Stream {
  let sent = 0
  const stream = {
    status: 'open',
    writeStatus: 'writable',
    writeBufferLength: 0,
    send: (bytes: Uint8Array): boolean => { sent += bytes.length; return true },
    onDrain: async (): Promise<void> => {},
    abort: (): void => { stream.status = 'aborted' },
    close: async (): Promise<void> => {},
    get sent (): number { return sent },
    [Symbol.asyncIterator]: () => ({ next: async () => await new Promise<IteratorResult<Uint8Array>>(() => {}) })
  }
  return stream as unknown as Stream
}

async function fakeNode (): Promise<Libp2p> {
  const peerId = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
  return {
    peerId,
    handle: async () => {},
    unhandle: async () => {},
    dialProtocol: async () => sinkStream()
  } as unknown as Libp2p
}

export async function relayOverhead (packets: number, rounds: number): Promise<{ relayUs: number[], sphinxUs: number[], forwarded: number }> {
  const node = await fakeNode()
  const next = addressFromPeerId(peerIdFromPrivateKey(await generateKeyPair('Ed25519')))
  const relayUs: number[] = []
  const sphinxUs: number[] = []
  let forwarded = 0
  for (let r = 0; r < rounds; r++) {
    // a fresh key ring each round, so its replay filter has seen none of the round's packets
    const ring = new OnionKeyRing()
    const hops = [{ address: addressFromPeerId(node.peerId), onionKey: ring.current.publicKey }, { address: next, onionKey: new Uint8Array(randomBytes(32)) }]
    const batch = Array.from({ length: packets }, () => createPacket(hops, new Uint8Array(1024)).packet)
    const service = new OnionService(node, { keyRing: ring, onDeliver: () => {}, packetsPerSecond: 1e9, burst: 1e9, queueLength: 1e6 })
    await service.start()
    // chunk by chunk: Sphinx alone on the chunk's packets (processPacket keeps no state; the relay's
    // filter is untouched), then the same packets through the relay, so both see the same load
    let sphinx = 0
    let relay = 0
    for (let i = 0; i < packets; i += CHUNK) {
      const end = Math.min(packets, i + CHUNK)
      let t = threadCpuUs()
      for (let j = i; j < end; j++) processPacket(batch[j], ring.current.key)
      sphinx += threadCpuUs() - t
      t = threadCpuUs()
      for (let j = i; j < end; j++) service.receive(batch[j], 'upstream')
      // the writer runs one turn later (relay.ts pump): its send is part of the relay's cost
      await new Promise(resolve => setImmediate(resolve))
      await new Promise(resolve => setImmediate(resolve))
      relay += threadCpuUs() - t
    }
    sphinxUs.push(sphinx / packets)
    relayUs.push(relay / packets)
    forwarded += service.stats.forwarded
    if (service.stats.forwarded !== packets) throw new Error(`forwarded ${service.stats.forwarded} of ${packets}: ${JSON.stringify(service.stats.dropped)}`)
    await service.stop()
  }
  return { relayUs, sphinxUs, forwarded }
}

if (import.meta.main) {
  const packets = Number(process.argv[2] ?? 4000)
  const rounds = Number(process.argv[3] ?? 5)
  const r = await relayOverhead(packets, rounds)
  const relay = summarize(r.relayUs)
  const sphinx = summarize(r.sphinxUs)
  const ours = summarize(r.relayUs.map((v, i) => v - r.sphinxUs[i]))
  console.log(`relay receive -> forward: ${relay.median.toFixed(1)} us/packet main-thread CPU (median of ${rounds} rounds of ${packets})`)
  console.log(`processPacket alone:      ${sphinx.median.toFixed(1)} us/packet`)
  console.log(`ours (relay minus Sphinx): ${ours.median.toFixed(1)} us/packet (min ${ours.min.toFixed(1)}, max ${ours.max.toFixed(1)})`)
}
