/**
 * An in-process chat network on loopback: a bootstrap node, relays and users, each a full ChatNode
 * with its own temporary data directory. `teardown()` stops every node and removes the directories.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startBootstrapNode } from '../../bootstrap/index.ts'
import type { BootstrapNode } from '../../bootstrap/index.ts'
import { ChatNode } from '../../node/chat-node.ts'
import type { ChatEvent, ChatNodeOptions } from '../../node/chat-node.ts'
import { ephemeralIdentity } from '../../node/identity.ts'
import { LOOPBACK_ALLOW } from './network.ts'
import { waitFor, within } from './wait.ts'

export interface TestUser {
  chat: ChatNode
  events: ChatEvent[]
  dataDir: string
}

export class ChatNetwork {
  readonly root = mkdtempSync(join(tmpdir(), 'p2pchat-net-'))
  boot: BootstrapNode | undefined
  readonly users: TestUser[] = []

  async bootstrap (): Promise<string[]> {
    this.boot = await startBootstrapNode({ identity: await ephemeralIdentity(), listen: ['/ip4/127.0.0.1/tcp/0'], allow: LOOPBACK_ALLOW })
    return this.boot.addrs()
  }

  async user (nick: string, opts: Partial<ChatNodeOptions> = {}): Promise<TestUser> {
    const dataDir = opts.dataDir ?? join(this.root, `${nick}-${this.users.length}`)
    const chat = await ChatNode.create({
      dataDir,
      nick,
      listen: ['/ip4/127.0.0.1/tcp/0'],
      bootstrap: this.boot?.addrs() ?? [],
      allow: LOOPBACK_ALLOW,
      ...opts,
      timing: { announceIntervalMs: 5_000, receiptTimeoutMs: 5_000, retryIntervalMs: 2_000, ...opts.timing }
    })
    const user = { chat, events: [] as ChatEvent[], dataDir }
    chat.on(e => user.events.push(e))
    this.users.push(user)
    await chat.start()
    return user
  }

  async waitForRelays (n: number, timeoutMs = 30_000): Promise<void> {
    await waitFor(() => this.users.every(u => u.chat.router.relays.size >= n), `every node to know ${n} relays`, timeoutMs)
  }

  async teardown (): Promise<void> {
    await Promise.all(this.users.map(async u => await within(u.chat.stop(), 10_000, 'chat node stop').catch(() => {})))
    this.users.length = 0
    if (this.boot != null) await within(this.boot.stop(), 10_000, 'bootstrap stop').catch(() => {})
    rmSync(this.root, { recursive: true, force: true })
  }
}

export function eventsOf<T extends ChatEvent['type']> (user: TestUser, type: T): Array<Extract<ChatEvent, { type: T }>> {
  return user.events.filter((e): e is Extract<ChatEvent, { type: T }> => e.type === type)
}
