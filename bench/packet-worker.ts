/**
 * Builds distinct onion packets (Sphinx version 2) off the main thread (createPacket costs several
 * X25519 operations, so 100,000 packets are worth two cores). workerData: { hops, count, payloadBytes },
 * hops as protocols/onion/sphinx.ts's Hop (32-byte addresses); posts back one ArrayBuffer of
 * count * PACKET_SIZE bytes, transferred.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { randomBytes } from 'node:crypto'
import { PACKET_SIZE } from '../protocols/onion/constants.ts'
import { createPacket } from '../protocols/onion/sphinx.ts'
import type { Hop } from '../protocols/onion/sphinx.ts'

export interface PacketWorkerData { hops: Hop[], count: number, payloadBytes: number }

const { hops, count, payloadBytes } = workerData as PacketWorkerData
const out = new Uint8Array(count * PACKET_SIZE)
const payload = new Uint8Array(randomBytes(payloadBytes))
for (let i = 0; i < count; i++) out.set(createPacket(hops, payload).packet, i * PACKET_SIZE)
parentPort?.postMessage(out.buffer, [out.buffer])
