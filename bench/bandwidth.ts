/**
 * Bytes a day on an idle user's entry link, per privacy level (issue 11: "measured bandwidth per day of
 * the default shown in the README"), measured, not computed:
 *
 *   node bench/bandwidth.ts [--seconds=600] [--relays=6] [--levels=fast,low,standard,high]
 *
 * A level name with `+steady` (e.g. `standard+steady`) runs that level with steady mailbox fetching
 * turned on (node/privacy.ts `steadyMailbox`; mailbox v2, protocols/mailbox/SPEC.md section 11) at
 * the product's period (30 s): what steady mailboxes would cost at a level that does not have them.
 *
 * One loopback network in this process: a bootstrap node, `--relays` relays with the product's timers
 * (30 s announcements), and one idle user per level with the product's timers and the level's own
 * rates (nothing shortened). Node's `net.client.socket` diagnostics channel hands over every TCP socket
 * this process dials; a user's guard link is the socket whose local port is the one its guard sees the
 * user connect from, and whose remote port is the guard's. After a warm-up (`--warmup`, default 60 s:
 * the start's registrations and stocking are not a day's traffic) its bytes read and written (TCP
 * payload: Noise, yamux, the onion frames, gossip, identify, ping; not TCP/IP headers) are read at the
 * start and end of the window, and scaled to a day.
 *
 * What a day of an idle user's link carries: its cover and mailbox upkeep out, loop returns, answers
 * and relay gossip in. Chatting adds no packets out (real packets take drop cover's place), only the
 * answers and pushes that come in. The relay count matters for gossip (descriptors of every relay).
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import type { Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startBootstrapNode } from '../bootstrap/index.ts'
import { ChatNode } from '../node/chat-node.ts'
import { ephemeralIdentity } from '../node/identity.ts'
import { privacyLevel, withOverrides } from '../node/privacy.ts'
import type { PrivacyLevel } from '../node/privacy.ts'
import { RelayNode } from '../node/relay-node.ts'
import { writeTransportKeyWithRole } from '../test/helpers/chat-network.ts'
import { LOOPBACK_ALLOW } from '../test/helpers/network.ts'

const arg = (name: string, dflt: string): string => process.argv.find(a => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? dflt
const SECONDS = Number(arg('seconds', '600'))
const WARMUP_S = Number(arg('warmup', '60'))
const RELAYS = Number(arg('relays', '6'))
const LEVELS = arg('levels', 'fast,low,standard,high').split(',')
const DAY_S = 86_400

const log = (line: string): void => { process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`) }

export interface BandwidthRow { level: string, seconds: number, bytesIn: number, bytesOut: number, mbPerDay: number, packetsOut: number, packetsPerMinute: number }

export async function bandwidthBench (opts: { seconds: number, warmupS: number, relays: number, levels: string[] }): Promise<BandwidthRow[]> {
  const sockets: Socket[] = []
  const onSocket = (msg: unknown): void => { sockets.push((msg as { socket: Socket }).socket) }
  subscribe('net.client.socket', onSocket)
  const root = mkdtempSync(join(tmpdir(), 'p2pchat-bandwidth-'))
  const relays: RelayNode[] = []
  const users: ChatNode[] = []
  const boot = await startBootstrapNode({ identity: await ephemeralIdentity(), listen: ['/ip4/127.0.0.1/tcp/0'], allow: LOOPBACK_ALLOW })
  try {
    for (let n = 1; n <= opts.relays; n++) {
      const dataDir = join(root, `relay-${n}`)
      await writeTransportKeyWithRole(dataDir, n % 2 === 1 ? 'entry' : 'exit')
      const relay = await RelayNode.create({ dataDir, listen: [`/ip4/127.${n}.0.1/tcp/0`], bootstrap: boot.addrs(), allow: LOOPBACK_ALLOW })
      await relay.start()
      relays.push(relay)
    }
    const deadline = Date.now() + 120_000
    while (relays.some(r => r.relays.size < opts.relays) || boot.relays.size < opts.relays) {
      if (Date.now() > deadline) throw new Error('relays did not learn of each other in 120 s')
      await new Promise(resolve => setTimeout(resolve, 200))
    }
    log(`${opts.relays} relays up; starting ${opts.levels.length} idle users (${opts.levels.join(', ')}) with the product's timers`)
    for (const [i, level] of opts.levels.entries()) {
      mkdirSync(join(root, `user-${i}`), { mode: 0o700 })
      const chat = await ChatNode.create({ dataDir: join(root, `user-${i}`), nick: `idle-${i}`, identity: await ephemeralIdentity(), bootstrap: boot.addrs(), allow: LOOPBACK_ALLOW, privacy: levelOf(level) })
      await chat.start()
      users.push(chat)
    }
    log(`users ready; warming up ${opts.warmupS} s`)
    await new Promise(resolve => setTimeout(resolve, opts.warmupS * 1000))
    const links = users.map(chat => guardSocket(chat, relays, sockets))
    const before = links.map(s => ({ r: s.bytesRead, w: s.bytesWritten, p: 0 }))
    const packetsBefore = users.map(u => u.packetsSubmitted)
    log(`measuring ${opts.seconds} s`)
    await new Promise(resolve => setTimeout(resolve, opts.seconds * 1000))
    return users.map((chat, i) => {
      const s = links[i]
      if (s.destroyed) throw new Error(`${chat.privacy.name}: the guard link closed during the window`)
      const bytesIn = s.bytesRead - before[i].r
      const bytesOut = s.bytesWritten - before[i].w
      const packetsOut = chat.packetsSubmitted - packetsBefore[i]
      return { level: opts.levels[i], seconds: opts.seconds, bytesIn, bytesOut, mbPerDay: (bytesIn + bytesOut) * DAY_S / opts.seconds / 1e6, packetsOut, packetsPerMinute: packetsOut * 60 / opts.seconds }
    })
  } finally {
    unsubscribe('net.client.socket', onSocket)
    await Promise.all(users.map(async u => await u.stop().catch(() => {})))
    await Promise.all(relays.map(async r => await r.stop().catch(() => {})))
    await boot.stop().catch(() => {})
    rmSync(root, { recursive: true, force: true })
  }
}

/** A level by name; `<level>+steady`: that level with steady mailboxes turned on. */
function levelOf (name: string): PrivacyLevel {
  const [base, extra] = name.split('+')
  return extra === 'steady' ? withOverrides(privacyLevel(base), { steadyMailbox: true }) : privacyLevel(base)
}

/** The socket of `chat`'s link to its guard: the guard's port on one end, the port the guard sees on the other. */
function guardSocket (chat: ChatNode, relays: RelayNode[], sockets: Socket[]): Socket {
  const guardId = chat.entry.relay?.peerId
  const guard = relays.find(r => r.peerId === guardId)
  if (guard == null) throw new Error(`${chat.privacy.name}: no entry relay`)
  const seen = guard.node.getConnections().filter(c => c.remotePeer.toString() === chat.peerId)
  if (seen.length !== 1) throw new Error(`${chat.privacy.name}: ${seen.length} connections from the user at its guard`)
  const clientPort = Number(seen[0].remoteAddr.getComponents().find(c => c.name === 'tcp')?.value)
  const found = sockets.filter(s => s.localPort === clientPort && !s.destroyed)
  if (found.length !== 1) throw new Error(`${chat.privacy.name}: ${found.length} sockets on local port ${clientPort}`)
  return found[0]
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = await bandwidthBench({ seconds: SECONDS, warmupS: WARMUP_S, relays: RELAYS, levels: LEVELS })
  process.stdout.write(`idle user, guard link, ${RELAYS} relays, ${SECONDS} s window after ${WARMUP_S} s warm-up\n`)
  process.stdout.write('| level | packets out / min | bytes in | bytes out | MB per day |\n| --- | --- | --- | --- | --- |\n')
  for (const r of rows) process.stdout.write(`| ${r.level} | ${r.packetsPerMinute.toFixed(1)} | ${r.bytesIn} | ${r.bytesOut} | ${r.mbPerDay.toFixed(1)} |\n`)
  process.stdout.write(JSON.stringify(rows) + '\n')
  process.exit(0)
}
