/**
 * When every guard is down (node/entry.ts, node/guards.ts; issue 15 bug 4), on the in-process network
 * (test/helpers/chat-network.ts): three relays, one of the entry role (the user's only guard) and two
 * exits. The guard stopped: the user links to another live relay for now, with a warning, instead of
 * dialling its dead guard forever (main did, and had no link at all); the guard stays in guards.json,
 * marked down, and nothing dead or of the exit role becomes a guard. The guard restarted on its keys:
 * once it is heard again the link moves back to it, and the fallback relay's connection is hung up.
 * The entry relay's descriptor view (`entry.relay`, read for every packet, cached) follows the
 * directory.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { peerIdFromString } from '@libp2p/peer-id'
import { GUARDS_FILE, parseGuards } from '../node/guards.ts'
import { relayRole } from '../node/roles.ts'
import { pathRelays } from '../protocols/onion/paths.ts'
import { ChatNetwork, eventsOf, writeTransportKeyWithRole } from './helpers/chat-network.ts'
import type { TestRelay } from './helpers/chat-network.ts'
import { waitFor } from './helpers/wait.ts'

/** Onion requests wait longer than the harness's 5 s: a loaded machine runs the relays in this process. */
const timing = { requestTimeoutMs: 30_000 }

describe('every guard down', { timeout: 300_000 }, () => {
  const net = new ChatNetwork()
  let guard: TestRelay

  before(async () => {
    await net.bootstrap()
    guard = await net.relay() // the first relay of the harness is of the entry role
    for (const name of ['exit-a', 'exit-b']) {
      const dataDir = join(net.root, name)
      await writeTransportKeyWithRole(dataDir, 'exit')
      await net.relay({ dataDir })
    }
    await net.waitForRelayGossip()
    assert.deepEqual(net.relays.map(r => relayRole(r.relay.peerId.toString())), ['entry', 'exit', 'exit'])
  })
  after(async () => { await net.teardown() })

  it('the only guard stopped: another relay for now, with a warning; the guard kept, marked down; back to it once it is heard again', async () => {
    const alice = await net.user('alice', { timing })
    const guardId = guard.relay.peerId.toString()
    const guardsOf = (): ReturnType<typeof parseGuards> => parseGuards(readFileSync(join(alice.dataDir, GUARDS_FILE), 'utf8'))
    assert.deepEqual(guardsOf().map(g => g.peerId), [guardId], 'the one relay of the entry role is the only guard')
    assert.equal(alice.chat.entry.relay?.peerId, guardId)

    await guard.relay.stop()
    await waitFor(() => alice.chat.entry.link != null && alice.chat.entry.relay?.peerId !== guardId,
      () => `a link to another relay (entry now ${alice.chat.entry.relay?.peerId ?? 'none'})`, 120_000)
    const fallback = alice.chat.entry.relay?.peerId as string
    assert.equal(relayRole(fallback), 'exit')
    assert.ok(eventsOf(alice, 'warning').some(w => w.message.includes('none of your 1 guards could be reached')), 'the user is told')
    assert.ok(alice.chat.entry.stats.fallbacks >= 1)
    const held = guardsOf()
    assert.deepEqual(held.map(g => g.peerId), [guardId], 'no exit and no dead relay became a guard')
    assert.ok(held[0].unreachableSince != null, 'the guard is kept, marked down')
    // the cached view of the entry relay is the directory's
    const inDirectory = pathRelays(alice.chat.relayDirectory.list()).find(r => r.peerId === fallback)
    assert.deepEqual(alice.chat.entry.relay?.onionKey, inDirectory?.onionKey)

    // the guard back on its keys (at a new address: its new descriptor says where)
    guard = await net.relay({ dataDir: guard.dataDir })
    assert.equal(guard.relay.peerId.toString(), guardId)
    await waitFor(() => alice.chat.entry.relay?.peerId === guardId && alice.chat.entry.link != null,
      () => `back on the guard (entry now ${alice.chat.entry.relay?.peerId ?? 'none'}, ${alice.chat.entry.stats.guardRetries} tries)`, 120_000)
    assert.equal(alice.chat.entry.stats.guardSwitches, 1)
    assert.equal(guardsOf()[0].unreachableSince, undefined, 'reachable again in guards.json')
    await waitFor(() => alice.chat.node.getConnections(peerIdFromString(fallback)).length === 0,
      'the fallback relay\'s connection hung up', 30_000)
    const fresh = pathRelays(alice.chat.relayDirectory.list()).find(r => r.peerId === guardId)
    assert.deepEqual(alice.chat.entry.relay?.onionKey, fresh?.onionKey, 'the entry relay as its latest descriptor has it')
  })
})
