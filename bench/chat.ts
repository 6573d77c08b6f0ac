/**
 * A 20-node chat network of protocol v2 on loopback (bootstrap, 5 RelayNodes, 13 ChatNode users, then
 * one newcomer at a time), built with the test harness test/helpers/chat-network.ts. Measures:
 * - end-to-end delivery (ChatNode.send -> the recipient's 'message' event, and on to the sender's
 *   'delivered' when the signed receipt is back). A v2 message is stored, then delivered: it travels
 *   sender -> entry relay -> mix -> mix -> a mailbox relay of the recipient (the deposit, and its answer
 *   back through a reply block: 'stored'), then from the mailbox through a reply block the recipient
 *   stocked: mix -> mix -> the recipient's entry relay -> the recipient ('message'); the receipt goes the
 *   same two ways back ('delivered');
 * - beside it, a direct one-hop message of the same size between two plain libp2p nodes in the same
 *   process (same transports, same event loop and load): v2 users listen nowhere, so the two ends of the
 *   baseline are nodes of their own, one listening on loopback;
 *   Messages are MESSAGE_GAP_MS apart, as in a conversation (not a flood);
 * - time to first message for a new user (in process): create + start (a relay list from the
 *   bootstrap node, the entry relay, mailboxes, the name published through an exit), name lookup, send
 *   until the recipient shows it, until the receipt is back.
 */
import { join } from 'node:path'
import type { Stream } from '@libp2p/interface'
import { ChatNode } from '../node/chat-node.ts'
import { createClientNode } from '../node/create.ts'
import type { ClientNode } from '../node/create.ts'
import { ephemeralIdentity } from '../node/identity.ts'
import type { ChatEvent } from '../node/chat-node.ts'
import { PACKET_SIZE } from '../protocols/onion/constants.ts'
import { DEFAULT_MIXES } from '../protocols/onion/paths.ts'
import { ChatNetwork, TEST_CHAT_TIMING } from '../test/helpers/chat-network.ts'
import type { TestUser } from '../test/helpers/chat-network.ts'
import { LOOPBACK_ALLOW } from '../test/helpers/network.ts'
import { DIRECT_PROTOCOL, FRAME_HEADER, readFrames } from './lib/frames.ts'
import { cpuSplit } from './lib/profile.ts'
import type { CpuCategory } from './lib/profile.ts'
import { summarize, within } from './lib/stats.ts'
import type { Summary } from './lib/stats.ts'

/**
 * The links a message crosses in protocol v2, the "hops" of the end-to-end ratio: sender -> its entry
 * relay, DEFAULT_MIXES + 1 on to the mailbox relay, DEFAULT_MIXES + 1 through the recipient's reply block
 * to the recipient's entry relay, and that relay -> the recipient: each one frame over one libp2p
 * connection, as the direct baseline is. The relays' own count (`relayHopsOneWay`) misses the first (a
 * client's packet is submitted to its entry relay, not received as a hop) and takes in other packets that
 * cross a relay meanwhile (the deposit's STORED answer, when it overtakes the push): 6 to 8 on the same code.
 * A run where a path was short (a "too few relays" warning) says so (`shortPathWarnings`).
 */
export const MESSAGE_LINKS = 2 * (DEFAULT_MIXES + 1) + 2

/** The pause between timed messages (a chat, not a flood); the direct baseline gets the same pause. */
export const MESSAGE_GAP_MS = 250
/** Messages sent again under the CPU profiler, after the timed ones (the profiler slows what it samples). */
export const PROFILED_MESSAGES = 10

export interface ChatBenchOptions {
  /** messages timed end to end (and as many direct ones) */
  messages: number
  /** newcomers timed from start to receipt */
  newcomers: number
  /** relays and users besides the bootstrap node (default 5 and 13: with a newcomer, 20 nodes) */
  relays?: number
  users?: number
  log: (line: string) => void
}

export interface FirstMessage {
  totalMs: number
  startMs: number
  lookupMs: number
  sendToShownMs: number
  shownToReceiptMs: number
  relaysKnown: number
  /** ms from create to each status event of start() (relay list, entry relay, mailboxes, publishing the name, ready) */
  startStages: Record<string, number>
}

export interface ChatBenchResult {
  nodes: number
  relays: number
  direct: Summary
  oneWay: Summary
  roundTrip: Summary
  /**
   * Sphinx packets the network's relays received between send and the recipient showing the message,
   * per timed message: the relay hops of the message itself (deposit path and the push through the
   * recipient's reply block), plus those of any other packet of the same exchange in that interval
   * (the deposit's 'stored' answer to the sender, when it crossed a relay first).
   */
  relayHopsOneWay: Summary
  /** the same from send to the sender's 'delivered' (the receipt's packets too) */
  relayHopsRoundTrip: Summary
  /** the links a message crosses by design (MESSAGE_LINKS), the ratio's hops */
  links: number
  /** "too few relays" warnings alice and bob got while the timed messages ran (a short path: fewer links) */
  shortPathWarnings: number
  /** ChatNode.send's synchronous part: checks, the outbox row in the database, the launch (ms) */
  sendCall: Summary
  /**
   * The whole network's CPU per message (send -> shown -> receipt back), ms by category
   * (bench/lib/profile.ts, cpuSplit), over PROFILED_MESSAGES messages sent under the sampling profiler after
   * the timed ones; `wall` is the wall time per message, gaps excluded.
   */
  cpuPerMessage: Record<CpuCategory | 'wall', number>
  /**
   * Sends of alice and bob over the timed and profiled messages (OnionClient stats.prepared): made ahead
   * in idle time and used, built on the send, made ahead and found stale.
   */
  prepared: Record<'alice' | 'bob', { used: number, built: number, stale: number }>
  firstMessage: FirstMessage[]
  total: Summary
  stages: Record<'start' | 'lookup' | 'sendToShown' | 'shownToReceipt', Summary>
}


function waitEvent<T extends ChatEvent['type']> (user: { chat: ChatNode }, type: T, match: (e: Extract<ChatEvent, { type: T }>) => boolean, timeoutMs = 20_000): Promise<Extract<ChatEvent, { type: T }>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { off(); reject(new Error(`no ${type} event within ${timeoutMs} ms`)) }, timeoutMs)
    const off = user.chat.on((e) => {
      if (e.type === type && match(e as Extract<ChatEvent, { type: T }>)) { clearTimeout(timer); off(); resolve(e as Extract<ChatEvent, { type: T }>) }
    })
  })
}

export async function chatBench (opts: ChatBenchOptions): Promise<ChatBenchResult> {
  const log = opts.log
  const RELAYS = opts.relays ?? 5
  const USERS = opts.users ?? 13 // + bootstrap + relays = 19; each newcomer makes 20
  const net = new ChatNetwork()
  const baseline: ClientNode[] = []
  try {
    await net.bootstrap()
    log(`  building the network: bootstrap, ${RELAYS} relays, ${USERS} users`)
    await net.startRelays(RELAYS)
    const users: TestUser[] = []
    // a few at a time: a dozen users registering mailboxes at once on a busy machine time out
    for (let i = 0; i < USERS; i += 4) {
      users.push(...await Promise.all(Array.from({ length: Math.min(4, USERS - i) }, async (_, j) => await net.user(i + j === 0 ? 'alice' : i + j === 1 ? 'bob' : `user${i + j}`))))
    }
    const [alice, bob] = users
    log(`  relays known: alice ${alice.chat.relayDirectory.size}, bob ${bob.chat.relayDirectory.size}`)

    // ---- baseline: one frame of PACKET_SIZE bytes between two plain nodes, one long-lived stream ----
    const [from, to] = await Promise.all([
      createClientNode({ privateKey: (await ephemeralIdentity()).privateKey, allow: LOOPBACK_ALLOW }),
      createClientNode({ privateKey: (await ephemeralIdentity()).privateKey, listen: ['/ip4/127.0.0.1/tcp/0'], allow: LOOPBACK_ALLOW })
    ])
    baseline.push(from, to)
    let onFrame: (() => void) | undefined
    await to.handle(DIRECT_PROTOCOL, (stream) => { readFrames(stream, () => { onFrame?.() }).catch(() => {}) })
    const direct: Stream = await from.dialProtocol(to.getMultiaddrs()[0], DIRECT_PROTOCOL)
    const frame = new Uint8Array(FRAME_HEADER.length + PACKET_SIZE)
    frame.set(FRAME_HEADER)
    const directOnce = async (): Promise<number> => {
      const arrived = new Promise<void>(resolve => { onFrame = resolve })
      const t0 = performance.now()
      direct.send(frame)
      await arrived
      return performance.now() - t0
    }
    const relayReceived = (): number => net.relays.reduce((n, r) => n + r.relay.onion.stats.received, 0)
    const hops: { oneWay: number[], roundTrip: number[], sendCall: number[] } = { oneWay: [], roundTrip: [], sendCall: [] }
    const chatOnce = async (i: number): Promise<[number, number]> => {
      const text = `bench message ${i}`
      const shown = waitEvent(bob, 'message', e => e.text === text)
      const r0 = relayReceived()
      const t0 = performance.now()
      const { id } = alice.chat.send('bob', text)
      const tSent = performance.now()
      const delivered = waitEvent(alice, 'delivered', e => e.id === id)
      await shown
      const t1 = performance.now()
      const r1 = relayReceived()
      await delivered
      const t2 = performance.now()
      if (i >= 0) {
        hops.oneWay.push(r1 - r0)
        hops.roundTrip.push(relayReceived() - r0)
        hops.sendCall.push(tSent - t0)
      }
      return [t1 - t0, t2 - t0]
    }
    log(`  end to end: ${opts.messages} chat messages alice -> bob through mailboxes, ${opts.messages} direct frames`)
    for (let i = 0; i < 10; i++) { await directOnce(); await chatOnce(-i - 1) } // connections, caches, JIT
    const preparedAt = { alice: { ...alice.chat.onion.stats.prepared }, bob: { ...bob.chat.onion.stats.prepared } }
    const directMs: number[] = []
    const oneWayMs: number[] = []
    const roundTripMs: number[] = []
    const shortWarnings = (): number => [...alice.events, ...bob.events].filter(e => e.type === 'warning' && e.message.startsWith('too few relays')).length
    const shortBefore = shortWarnings()
    for (let i = 0; i < opts.messages; i++) {
      await new Promise(resolve => setTimeout(resolve, MESSAGE_GAP_MS))
      directMs.push(await directOnce())
      const [oneWay, roundTrip] = await chatOnce(i)
      oneWayMs.push(oneWay)
      roundTripMs.push(roundTrip)
    }
    const shortPathWarnings = shortWarnings() - shortBefore
    await direct.close().catch(() => {})

    // ---- where the CPU goes, per message (whole network: every node runs in this process) ----
    let profiledWall = 0
    const split = await cpuSplit(async () => {
      for (let i = 0; i < PROFILED_MESSAGES; i++) {
        const [, roundTrip] = await chatOnce(-1000 - i)
        profiledWall += roundTrip
      }
    })
    const gaps = split.wallMs - profiledWall
    const cpuPerMessage = Object.fromEntries(Object.entries(split.ms).map(([k, v]) => [k, v / PROFILED_MESSAGES])) as Record<CpuCategory, number>
    // idle covers the profiled messages only: the time between them is not a message's
    cpuPerMessage.idle = Math.max(0, cpuPerMessage.idle - gaps / PROFILED_MESSAGES)

    const preparedSince = (user: TestUser, at: { used: number, built: number, stale: number }): { used: number, built: number, stale: number } => {
      const now = user.chat.onion.stats.prepared
      return { used: now.used - at.used, built: now.built - at.built, stale: now.stale - at.stale }
    }
    const prepared = { alice: preparedSince(alice, preparedAt.alice), bob: preparedSince(bob, preparedAt.bob) }

    // ---- newcomers: the 20th node, one at a time ----
    if (opts.newcomers > 0) log(`  in-process newcomers: ${opts.newcomers}, one at a time, each the last node`)
    const firstMessage: FirstMessage[] = []
    for (let k = 0; k < opts.newcomers; k++) {
      const nick = `newcomer${k}`
      const t0 = performance.now()
      const chat = await ChatNode.create({
        dataDir: join(net.root, nick),
        nick,
        bootstrap: net.boot?.addrs() ?? [],
        allow: LOOPBACK_ALLOW,
        acceptAnyone: true,
        privacy: 'fast',
        timing: { ...TEST_CHAT_TIMING, announceIntervalMs: 5_000, retryIntervalMs: 2_000 }
      })
      const user: TestUser = { chat, events: [], dataDir: join(net.root, nick) }
      const startStages: Record<string, number> = {}
      chat.on((e) => { if (e.type === 'status') startStages[`${e.stage}: ${e.detail.split(' ').slice(0, 3).join(' ')}`] = performance.now() - t0 })
      net.users.push(user)
      await chat.start()
      const t1 = performance.now()
      const found = await chat.whois('bob')
      if (!found.found) throw new Error('newcomer could not find bob')
      const t2 = performance.now()
      const text = `hello from ${nick}`
      const shown = waitEvent(bob, 'message', e => e.text === text)
      const { id } = chat.send('bob', text)
      const delivered = waitEvent(user, 'delivered', e => e.id === id)
      await shown
      const t3 = performance.now()
      await delivered
      const t4 = performance.now()
      firstMessage.push({ totalMs: t4 - t0, startMs: t1 - t0, lookupMs: t2 - t1, sendToShownMs: t3 - t2, shownToReceiptMs: t4 - t3, relaysKnown: chat.relayDirectory.size, startStages })
      await within(chat.stop(), 10_000)
      net.users.splice(net.users.indexOf(user), 1)
    }
    return {
      nodes: 1 + RELAYS + USERS + 1,
      relays: RELAYS,
      direct: summarize(directMs),
      oneWay: summarize(oneWayMs),
      roundTrip: summarize(roundTripMs),
      relayHopsOneWay: summarize(hops.oneWay),
      relayHopsRoundTrip: summarize(hops.roundTrip),
      links: MESSAGE_LINKS,
      shortPathWarnings,
      sendCall: summarize(hops.sendCall),
      cpuPerMessage: { ...cpuPerMessage, wall: profiledWall / PROFILED_MESSAGES },
      prepared,
      firstMessage,
      total: summarize(firstMessage.map(f => f.totalMs)),
      stages: {
        start: summarize(firstMessage.map(f => f.startMs)),
        lookup: summarize(firstMessage.map(f => f.lookupMs)),
        sendToShown: summarize(firstMessage.map(f => f.sendToShownMs)),
        shownToReceipt: summarize(firstMessage.map(f => f.shownToReceiptMs))
      }
    }
  } finally {
    for (const n of baseline) await within(Promise.resolve(n.stop()), 10_000).catch(() => {})
    await within(net.teardown(), 30_000)
  }
}

if (import.meta.main) {
  const r = await chatBench({ messages: 30, newcomers: 2, log: console.log })
  console.log(JSON.stringify(r, null, 1))
  process.exit(0)
}
