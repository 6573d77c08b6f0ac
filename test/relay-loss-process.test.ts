/**
 * Issue 15, bug 4 ("losing one relay fails every message"), with real processes: a bootstrap node,
 * three relays (`p2pchat start --relay --json`), alice and bob (`p2pchat start --json`).
 * - one relay SIGKILLed: both users say at once that it stopped answering, `relays` stops listing it,
 *   and messages both ways still reach a mailbox and are delivered over the two relays left;
 *   the relay killed is the one relay of the entry role (node/roles.ts: the role follows from the peer id,
 *   so the test chooses the relays' transport keys), hence every user's only guard and entry relay:
 *   the hardest relay to lose. Left to chance (as before), it was so in about one run of eight, and those
 *   runs stalled: every guard down kept the user trying its dead guards and never any other relay;
 * - a second relay SIGKILLed (one left: no path can be built): the user is told so at once, a message
 *   sent then is queued with that reason without an attempt, and nothing is reported failed;
 * - both relays restarted on their data directories: they are listed again, and what waited in the
 *   outbox is delivered, each message once.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { relayRole } from '../node/roles.ts'
import type { RelayRole } from '../node/roles.ts'
import { writeTransportKeyWithRole } from './helpers/chat-network.ts'
import { CliNetwork, TEST_RELAY_TIMING } from './helpers/cli-network.ts'
import type { Json } from './helpers/cli-network.ts'
import type { CliProcess } from './helpers/cli.ts'
import { waitFor, within } from './helpers/wait.ts'

function events (p: CliProcess, event: string): Json[] { return p.json().filter(o => o.event === event) }
function peerIdOf (ready: Json): string { return String((ready.addrs as string[])[0]).replace(/^.*\/p2p\//, '') }
function listenAddrOf (ready: Json): string { return String((ready.addrs as string[])[0]).replace(/\/p2p\/.*$/, '') }
async function listed (p: CliProcess): Promise<string[]> { return ((await p.ask({ cmd: 'relays' })).relays as Json[]).map(r => String(r.peerId)) }

describe('a relay lost: users are told, paths avoid it, nothing fails, the outbox goes when relays are back', { timeout: 600_000 }, () => {
  const net = new CliNetwork()
  const relayEnv = { P2PCHAT_TIMING: JSON.stringify(TEST_RELAY_TIMING) }
  let relays: Array<{ proc: CliProcess, ready: Json }>
  let alice: CliProcess
  let bob: CliProcess
  const figures: Record<string, number> = {}

  before(async () => {
    await net.bootstrap()
    // relay1 (killed first) is the only relay of the entry role: every user's only guard (see above)
    const roles: RelayRole[] = ['entry', 'exit', 'exit']
    for (const [i, role] of roles.entries()) await writeTransportKeyWithRole(net.dataDir(`relay${i + 1}`), role)
    relays = await net.relays(3, { env: relayEnv })
    assert.deepEqual(relays.map(r => relayRole(peerIdOf(r.ready))), roles, 'the relays run with the keys given')
    ;[{ proc: alice }, { proc: bob }] = await Promise.all([net.start('alice'), net.start('bob')])
    await Promise.all([net.waitForRelays(alice, 3), net.waitForRelays(bob, 3)])
    const first = await alice.ask({ cmd: 'send', to: 'bob', text: 'before any relay is lost' })
    await alice.waitForJson(o => o.event === 'delivered' && o.id === first.id, 120_000)
  })
  after(async () => {
    console.log('relay loss figures', JSON.stringify(figures))
    await net.teardown()
  })

  async function kill (i: number): Promise<string> {
    const r = relays[i]
    r.proc.child.kill('SIGKILL')
    await within(r.proc.exited, 10_000, 'a relay dying')
    return peerIdOf(r.ready)
  }

  it('one of three relays SIGKILLed: both users say so at once and stop listing it; messages both ways are still delivered', async () => {
    for (const p of [alice, bob]) {
      const entry = events(p, 'status').find(o => o.stage === 'mailboxes')
      assert.ok(String(entry?.detail).includes(peerIdOf(relays[0].ready)), 'the relay about to die is the entry relay (the only guard)')
    }
    const deadId = await kill(0)
    const killedAt = Date.now()
    for (const p of [alice, bob]) {
      await p.waitForJson(o => o.event === 'warning' && String(o.message).includes(deadId) && String(o.message).includes('stopped answering'), 60_000)
      await p.waitForJson(o => o.event === 'warning' && String(o.message).includes('none of your 1 guards could be reached'), 60_000)
      assert.equal((await listed(p)).includes(deadId), false, 'the dead relay is not listed as live')
    }
    figures.noticedMs = Date.now() - killedAt
    const toBob: string[] = []
    const toAlice: string[] = []
    for (let i = 0; i < 5; i++) {
      toBob.push(String((await alice.ask({ cmd: 'send', to: 'bob', text: `one relay down ${i}` })).id))
      toAlice.push(String((await bob.ask({ cmd: 'send', to: 'alice', text: `one relay down, back ${i}` })).id))
    }
    const deliveredAll = (p: CliProcess, ids: string[]): boolean => ids.every(id => events(p, 'delivered').some(o => o.id === id))
    await waitFor(() => deliveredAll(alice, toBob) && deliveredAll(bob, toAlice),
      () => `10 receipts with a relay down (${events(alice, 'delivered').length + events(bob, 'delivered').length} delivered events)`, 180_000, 250)
    figures.deliveredWithOneDownMs = Date.now() - killedAt
    for (const p of [alice, bob]) assert.equal(events(p, 'failed').length, 0, 'nothing reported failed')
  })

  it('a second relay SIGKILLed: too few to build a path, said at once; a message then is queued with that reason, not failed; both back: it is delivered once', async () => {
    // alice's entry link changed when relay1 died (case above), and a user counts silence only once its new
    // gossip feed has carried a relay other than the entry (node/relay-health.ts: at first a new link carries
    // only the entry's own announcements). So relay2 dies after alice heard it on that feed: otherwise she
    // cannot tell it died (nothing is lost: what she sends waits and retries), only not "at once". Under
    // load the feed took longer than this case's start once in a full run (2026-12-01).
    const since = Date.now()
    const second = peerIdOf(relays[1].ready)
    await waitFor(async () => ((await alice.ask({ cmd: 'relays' })).relays as Json[]).some(r => String(r.peerId) === second && Number(r.lastSeen) > since),
      'alice to hear relay2 on her gossip feed', 60_000, 250)
    const deadId = await kill(1)
    await alice.waitForJson(o => o.event === 'warning' && String(o.message).includes(deadId) && String(o.message).includes('stopped answering'), 60_000)
    await alice.waitForJson(o => o.event === 'warning' && /too few live relays|not connected to an entry relay/.test(String(o.message)), 60_000)
    const waiting: string[] = []
    for (let i = 0; i < 3; i++) waiting.push(String((await alice.ask({ cmd: 'send', to: 'bob', text: `while relays are down ${i}` })).id))
    for (const id of waiting) {
      const q = await alice.waitForJson(o => o.event === 'queued' && o.id === id, 30_000)
      assert.match(String(q.reason), /too few live relays|not connected to an entry relay/)
      assert.match(String(q.reason), /waits in the outbox/)
      assert.equal(events(alice, 'attempt').some(o => o.id === id), false, 'no attempt over a path that cannot be built')
    }

    const restartedAt = Date.now()
    for (const i of [0, 1]) {
      const r = relays[i]
      relays[i] = await net.relay({ name: `relay${i + 1}`, listen: listenAddrOf(r.ready), env: relayEnv })
    }
    await waitFor(async () => (await listed(alice)).length === 3, 'alice to list the 3 relays again', 60_000, 250)
    await waitFor(() => waiting.every(id => events(alice, 'delivered').some(o => o.id === id)),
      () => `the 3 queued messages delivered (${waiting.filter(id => events(alice, 'stored').some(o => o.id === id)).length} stored)`, 180_000, 250)
    figures.outboxDeliveredAfterRestartMs = Date.now() - restartedAt
    const later = await alice.ask({ cmd: 'send', to: 'bob', text: 'after the relays came back' })
    await bob.waitForJson(o => o.event === 'message' && o.id === later.id, 120_000)
    for (const id of waiting) assert.equal(events(bob, 'message').filter(o => o.id === id).length, 1, 'shown once at bob')
    // the relays took many retry intervals (1 s here) to come back: the reason was shown once, not at every retry
    for (const id of waiting) {
      const reasons = events(alice, 'queued').filter(o => o.id === id).map(o => String(o.reason))
      assert.ok(reasons.every((r, i) => i === 0 || r !== reasons[i - 1]), `a queued reason is shown once, not at every retry: ${JSON.stringify(reasons)}`)
    }
    for (const p of [alice, bob]) assert.equal(events(p, 'failed').length, 0, 'nothing reported failed')
  })
})
