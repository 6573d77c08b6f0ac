/**
 * A user's start closes its connection to the bootstrap node beside registering its mailboxes, not
 * before (issue 13, first message < 2 s), and is ready only once it is closed: a ready user holds its
 * entry link only. On the in-process network the user's hang-up is held until the user's mailboxes
 * stage has begun (or HOLD_MS passed, so that a start that waits for the hang-up still ends): before,
 * the mailboxes stage began only once the hang-up was done.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { ChatNode } from '../node/chat-node.ts'
import type { ChatEvent } from '../node/chat-node.ts'
import { ChatNetwork, TEST_CHAT_TIMING, testPrivacy } from './helpers/chat-network.ts'
import { LOOPBACK_ALLOW } from './helpers/network.ts'
import { within } from './helpers/wait.ts'

/** How long the hang-up is held at most when the mailboxes stage does not begin. */
const HOLD_MS = 4_000

describe('a start hangs up on the bootstrap node beside registering its mailboxes', { timeout: 300_000 }, () => {
  const net = new ChatNetwork()

  before(async () => {
    await net.bootstrap()
    await net.startRelays(4)
  })
  after(async () => { await net.teardown() })

  it('the mailboxes stage begins while the hang-up is under way; ready comes after it, with the entry link only', async () => {
    const dataDir = join(net.root, 'carol')
    const chat = await ChatNode.create({ dataDir, nick: 'carol', bootstrap: net.boot?.addrs() ?? [], allow: LOOPBACK_ALLOW, acceptAnyone: true, privacy: testPrivacy(), timing: TEST_CHAT_TIMING })
    const events: ChatEvent[] = []
    net.users.push({ chat, events, dataDir })
    let pending = 0
    let mailboxesWhileHangingUp = 0
    let release: (() => void) | undefined
    const released = new Promise<void>(resolve => { release = resolve })
    const fallback = setTimeout(() => { release?.() }, HOLD_MS)
    chat.on(e => {
      events.push(e)
      if (e.type === 'status' && e.stage === 'mailboxes' && pending > 0) {
        mailboxesWhileHangingUp++
        release?.()
      }
    })
    const hangUp = chat.node.hangUp.bind(chat.node)
    chat.node.hangUp = async (peer, options) => {
      pending++
      try {
        await released
        return await hangUp(peer, options)
      } finally {
        pending--
      }
    }
    try {
      await within(chat.start(), 120_000, 'carol\'s start')
    } finally {
      clearTimeout(fallback)
    }
    assert.equal(chat.stage, 'ready')
    assert.equal(mailboxesWhileHangingUp, 1, 'the mailboxes stage began while the bootstrap hang-up was under way')
    assert.equal(pending, 0, 'ready came after the hang-up')
    const peers = new Set(chat.node.getConnections().map(c => c.remotePeer.toString()))
    assert.deepEqual([...peers], [chat.entry.relay?.peerId], 'a ready user holds its entry link only')
  })
})
