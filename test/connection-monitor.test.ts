/**
 * libp2p's connection monitor pings every connection and aborts one whose ping is not answered in
 * time. Its default (at least 5 s) aborted connections to loaded relays, with every packet in flight
 * on them; our nodes give a ping PING_MIN_TIMEOUT_MS (node/create.ts). Two in-process nodes on
 * loopback: the pinged node answers the monitor's pings only after SLOW_ANSWER_MS (a peer that is
 * slow, not dead). With our settings the connection survives the slow answer; with libp2p's defaults
 * (the control, built the same way but without our monitor settings) the same slow answer aborts it,
 * so the first case can fail.
 */
import { after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import type { Connection, Libp2p, Stream } from '@libp2p/interface'
import { connectionMonitorInit, createClientNode, PING_MIN_TIMEOUT_MS, PING_STREAMS } from '../node/create.ts'
import { LOOPBACK_ALLOW } from './helpers/network.ts'
import { waitFor, within } from './helpers/wait.ts'

const PING_PROTOCOL = '/ipfs/ping/1.0.0'
/** Longer than libp2p's default minimum ping timeout (5 s), well under ours. */
const SLOW_ANSWER_MS = 7_000
/** The pinging node pings this often, so that the first ping goes out soon (libp2p's default: 10 s). */
const PING_INTERVAL_MS = 2_000

interface Slow { node: Libp2p, addr: string, answered: Promise<void>, stop: () => void }

/** A node listening on loopback whose ping handler echoes each ping SLOW_ANSWER_MS after it arrived. */
async function slowPingNode (): Promise<Slow> {
  const node = await createClientNode({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], allow: LOOPBACK_ALLOW })
  const timers = new Set<ReturnType<typeof setTimeout>>()
  const answered = Promise.withResolvers<void>()
  await node.unhandle(PING_PROTOCOL)
  await node.handle(PING_PROTOCOL, async (stream: Stream) => {
    for await (const buf of stream) {
      await new Promise<void>(resolve => { const t = setTimeout(() => { timers.delete(t); resolve() }, SLOW_ANSWER_MS); timers.add(t) })
      if (stream.status !== 'open') return
      stream.send(buf)
      answered.resolve()
    }
    await stream.close().catch(() => {})
  }, { runOnLimitedConnection: true, maxInboundStreams: 16 })
  return {
    node,
    addr: node.getMultiaddrs()[0].toString(),
    answered: answered.promise,
    stop: () => { for (const t of timers) clearTimeout(t) }
  }
}

/** Dials `slow` from `pinger` and waits until the first slow answer came back or the connection closed. */
async function pingSlowly (pinger: Libp2p, slow: Slow): Promise<{ conn: Connection, closed: boolean }> {
  let closed = false
  const close = new Promise<void>(resolve => { pinger.addEventListener('connection:close', () => { closed = true; resolve() }, { once: true }) })
  const conn = await pinger.dial(multiaddr(slow.addr))
  // the answer is on its way back once the slow node sent it; the monitor then sets conn.rtt
  await within(Promise.race([slow.answered, close]), 90_000, 'a slow ping answer or a close')
  await waitFor(() => closed || (conn.rtt ?? 0) >= SLOW_ANSWER_MS, 'the slow ping to complete or the connection to close', 30_000)
  return { conn, closed }
}

describe('connection monitor', () => {
  const nodes: Libp2p[] = []
  const slows: Slow[] = []
  after(async () => {
    for (const s of slows) s.stop()
    await Promise.allSettled(nodes.map(async n => { await n.stop() }))
  })

  it('gives a ping more time than libp2p\'s default before aborting', () => {
    assert.ok(PING_MIN_TIMEOUT_MS > SLOW_ANSWER_MS)
    assert.equal(connectionMonitorInit().pingTimeout?.minTimeout, PING_MIN_TIMEOUT_MS)
    const init = connectionMonitorInit()
    assert.equal(init.pingInterval, 10_000, 'libp2p\'s own interval unless a test sets one')
    // a ping may stay unanswered up to the longest timeout while the monitor opens one per interval
    assert.ok(PING_STREAMS * (init.pingInterval ?? 0) > (init.pingTimeout?.maxTimeout ?? Infinity))
  })

  it('keeps a connection whose pings are answered slowly; libp2p\'s defaults abort it', async () => {
    const [ours, control] = await Promise.all([slowPingNode(), slowPingNode()])
    slows.push(ours, control)
    nodes.push(ours.node, control.node)
    const pinger = await createClientNode({ privateKey: await generateKeyPair('Ed25519'), allow: LOOPBACK_ALLOW, pingIntervalMs: PING_INTERVAL_MS })
    nodes.push(pinger)
    // the control: libp2p's default connection monitor (only the interval shortened), and room for the
    // slow pings (PING_STREAMS) as ours has, so that only the timeout differs
    const defaults = await createLibp2p({
      privateKey: await generateKeyPair('Ed25519'),
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      connectionManager: { allow: LOOPBACK_ALLOW },
      connectionMonitor: { pingInterval: PING_INTERVAL_MS },
      services: { ping: ping({ maxOutboundStreams: PING_STREAMS }) }
    })
    nodes.push(defaults)
    const [kept, aborted] = await Promise.all([pingSlowly(pinger, ours), pingSlowly(defaults, control)])
    assert.equal(aborted.closed, true, 'libp2p\'s default monitor aborts a connection whose ping takes 7 s')
    assert.equal(kept.closed, false, 'our monitor kept the connection')
    assert.equal(kept.conn.status, 'open')
    assert.ok((kept.conn.rtt ?? 0) >= SLOW_ANSWER_MS, `the slow ping completed (rtt ${kept.conn.rtt} ms)`)
  })
})
