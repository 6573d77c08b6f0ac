/**
 * An in-process network of protocol version 2 on loopback: a bootstrap node, relays (RelayNode) and
 * users (ChatNode, clients with no listening address), each with its own temporary data directory.
 * Relays listen on 127.N.0.1 with a different N each, so they sit in different /16s as on the
 * Internet. Every timer is short so tests run fast; the product's defaults stay as they are.
 * `teardown()` stops every node and removes the directories.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { writeNewSecretFile } from '../../node/datadir.ts'
import { TRANSPORT_FILE } from '../../node/identity.ts'
import { relayRole } from '../../node/roles.ts'
import type { RelayRole } from '../../node/roles.ts'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startBootstrapNode } from '../../bootstrap/index.ts'
import type { BootstrapNode } from '../../bootstrap/index.ts'
import { ChatNode } from '../../node/chat-node.ts'
import type { ChatEvent, ChatNodeOptions, ChatTiming } from '../../node/chat-node.ts'
import { ephemeralIdentity } from '../../node/identity.ts'
import { privacyLevel, withOverrides } from '../../node/privacy.ts'
import type { PrivacyLevel } from '../../node/privacy.ts'
import { RelayNode } from '../../node/relay-node.ts'
import type { RelayNodeOptions } from '../../node/relay-node.ts'
import { LOOPBACK_ALLOW } from './network.ts'
import { waitFor, within } from './wait.ts'

/** Timers for loopback tests: seconds instead of minutes. */
export const TEST_CHAT_TIMING: Partial<ChatTiming> = {
  retryIntervalMs: 1_000,
  announceIntervalMs: 1_000,
  requestTimeoutMs: 5_000,
  stockIntervalMs: 2_000,
  crossCheckMaxDelayMs: 2_000,
  // relay admission (protocols/onion/admission.ts): an attested age of one second, not a day
  relayMinAgeMs: 1_000
}

/**
 * Mixing timers for tests that run a suite at a mixing level (P2PCHAT_TEST_PRIVACY=standard, issue 11:
 * "nothing lost with mixing and cover on"): 50 ms per hop, loop cover every 1 s and drop cover every
 * 100 ms on average (a real packet waits 100 ms for its tick), receipts after 300 ms; at a level with
 * steady mailboxes, a push every 300 ms and a SYNC every 600 ms on average.
 */
export const TEST_MIXING = { meanDelayMs: 50, loopGapMs: 1_000, dropGapMs: 100, receiptDelayMs: 300, mailboxPushPeriodMs: 300, mailboxSyncGapMs: 600 }

/**
 * The level users of the test helpers run at: `fast` (no delays, no cover), unless
 * P2PCHAT_TEST_PRIVACY names a level, which then runs with TEST_MIXING's timers.
 */
export function testPrivacy (env: NodeJS.ProcessEnv = process.env): PrivacyLevel {
  const name = (env.P2PCHAT_TEST_PRIVACY ?? '').trim()
  if (name === '' || name === 'fast') return privacyLevel('fast')
  return withOverrides(privacyLevel(name), TEST_MIXING)
}

export interface TestUser {
  chat: ChatNode
  events: ChatEvent[]
  dataDir: string
}

export interface TestRelay {
  relay: RelayNode
  dataDir: string
}

export class ChatNetwork {
  readonly root = mkdtempSync(join(tmpdir(), 'p2pchat-net-'))
  boot: BootstrapNode | undefined
  readonly users: TestUser[] = []
  readonly relays: TestRelay[] = []
  private relaySeq = 0

  async bootstrap (): Promise<string[]> {
    this.boot = await startBootstrapNode({ identity: await ephemeralIdentity(), listen: ['/ip4/127.0.0.1/tcp/0'], allow: LOOPBACK_ALLOW })
    return this.boot.addrs()
  }

  /**
   * A relay on 127.<n>.0.1 (its own /16). `dataDir` to restart one on the same keys and mailboxes.
   * New relays alternate entry and exit roles (node/roles.ts), so every test network has both.
   */
  async relay (opts: Partial<RelayNodeOptions> = {}): Promise<TestRelay> {
    const n = ++this.relaySeq
    const dataDir = opts.dataDir ?? join(this.root, `relay-${n}`)
    if (!existsSync(join(dataDir, TRANSPORT_FILE))) await writeTransportKeyWithRole(dataDir, n % 2 === 1 ? 'entry' : 'exit')
    const relay = await RelayNode.create({
      dataDir,
      listen: [`/ip4/127.${n}.0.1/tcp/0`],
      bootstrap: this.boot?.addrs() ?? [],
      allow: LOOPBACK_ALLOW,
      announceIntervalMs: 1_000,
      ...opts
    })
    await relay.start()
    const r = { relay, dataDir }
    this.relays.push(r)
    return r
  }

  /** `n` relays, then waits until every relay and the bootstrap node know all of them. */
  async startRelays (n: number, opts: Partial<RelayNodeOptions> = {}): Promise<TestRelay[]> {
    const started: TestRelay[] = []
    for (let i = 0; i < n; i++) started.push(await this.relay(opts))
    await this.waitForRelayGossip()
    return started
  }

  async waitForRelayGossip (timeoutMs = 30_000): Promise<void> {
    const want = this.relays.length
    await waitFor(() => (this.boot?.relays.size ?? want) >= want && this.relays.every(r => r.relay.relays.size >= want),
      () => `every relay and the bootstrap node to know ${want} relays (bootstrap ${this.boot?.relays.size}, relays ${this.relays.map(r => r.relay.relays.size).join(',')})`, timeoutMs)
  }

  async user (nick: string, opts: Partial<ChatNodeOptions> = {}): Promise<TestUser> {
    const dataDir = opts.dataDir ?? join(this.root, `${nick}-${this.users.length}`)
    const chat = await ChatNode.create({
      dataDir,
      nick,
      bootstrap: this.boot?.addrs() ?? [],
      allow: LOOPBACK_ALLOW,
      // tests of delivery have strangers receipt each other at once; tests of contact requests pass acceptAnyone: false
      acceptAnyone: true,
      // tests run at the `fast` level (no mixing delays) unless they test mixing, or
      // P2PCHAT_TEST_PRIVACY runs a whole file at a mixing level
      privacy: testPrivacy(),
      ...opts,
      timing: { ...TEST_CHAT_TIMING, ...opts.timing }
    })
    const user = { chat, events: [] as ChatEvent[], dataDir }
    chat.on(e => user.events.push(e))
    this.users.push(user)
    await chat.start()
    return user
  }

  async stopUser (user: TestUser): Promise<void> {
    await within(user.chat.stop(), 10_000, 'chat node stop')
    this.users.splice(this.users.indexOf(user), 1)
  }

  async teardown (): Promise<void> {
    await Promise.all(this.users.map(async u => await within(u.chat.stop(), 10_000, 'chat node stop').catch(() => {})))
    this.users.length = 0
    await Promise.all(this.relays.map(async r => await within(r.relay.stop(), 10_000, 'relay stop').catch(() => {})))
    this.relays.length = 0
    if (this.boot != null) await within(this.boot.stop(), 10_000, 'bootstrap stop').catch(() => {})
    rmSync(this.root, { recursive: true, force: true })
  }
}

export function eventsOf<T extends ChatEvent['type']> (user: TestUser, type: T): Array<Extract<ChatEvent, { type: T }>> {
  return user.events.filter((e): e is Extract<ChatEvent, { type: T }> => e.type === type)
}

/** Writes a relay's transport.key whose peer id has the given role (a few tries of a fresh key). */
export async function writeTransportKeyWithRole (dataDir: string, role: RelayRole): Promise<void> {
  for (let i = 0; i < 256; i++) {
    const key = await generateKeyPair('Ed25519')
    if (relayRole(peerIdFromPrivateKey(key).toString()) !== role) continue
    mkdirSync(dataDir, { recursive: true, mode: 0o700 })
    const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64')
    writeNewSecretFile(join(dataDir, TRANSPORT_FILE), JSON.stringify({ v: 1, type: 'Ed25519', privateKey: b64(key.raw.subarray(0, 32)), publicKey: b64(key.publicKey.raw) }) + '\n')
    return
  }
  throw new Error(`no key of role ${role} in 256 tries`)
}
