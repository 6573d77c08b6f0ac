/**
 * A mailbox relay that is a real `p2pchat start --relay` process, SIGKILLed right as it sends a `stored`
 * acknowledgement, then restarted on the same data directory (same transport key, same mailbox.db),
 * several times over: the recipient, coming online after the last restart, receives every message the
 * relay answered `stored` for.
 *
 * The network: an in-process bootstrap node and four in-process relays (test/helpers/chat-network.ts),
 * the relay process P, and in-process users. The sender deposits sealed messages into the recipient's
 * mailbox on P through the mixnet (MailboxClient.deposit), several in flight at once. P's answers leave
 * it as onion packets to the first hop of the sender's reply block, an in-process relay: the test watches
 * the in-process relays' receive path and SIGKILLs P at the first packet that arrives from P, or when a
 * `stored` answer reaches the sender, whichever is first. For the deposits P sends two kinds of packet:
 * STORED answers and, before its first restart, pushes through reply blocks the recipient stocked before
 * it left; both leave in the same synchronous handling of a deposit, after the commit, STORED first.
 * Answers already on their way still reach the sender after the kill; they count as acknowledged too.
 * P also sends loop probes of its own (relay admission): a round killed by one before any STORED left
 * is not counted, and another round is run (MAX_ROUNDS at most). P is then started again on the same
 * directory.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { createMessage, sealMessage } from '../protocols/chat/index.ts'
import { onionKeyFor } from '../protocols/onion/relay-directory.ts'
import { peerIdOfTransportKey } from '../node/relay-node.ts'
import { ChatNetwork, eventsOf } from './helpers/chat-network.ts'
import type { TestUser } from './helpers/chat-network.ts'
import { CliProcess } from './helpers/cli.ts'
import { waitFor, within } from './helpers/wait.ts'

/** Kill-and-restart rounds of the relay process that had an acknowledgement. */
const ROUNDS = 5
/**
 * Rounds tried at most. P also sends packets of its own: the loop probes of relay admission
 * (node/admission.ts, every PROBE_INTERVALS announce intervals per relay, and at its start), which the
 * kill switch cannot tell from a STORED answer; a round killed by one before any answer left has no
 * acknowledgement (seen in 1 to 3 runs of 10: 1 to 4 of 15 deposits answered stored) and does not count.
 */
const MAX_ROUNDS = 15
/** Deposits in flight at once: the relay is busy with the next ones when the kill lands. */
const IN_FLIGHT = 3
/** Deposits sent in one round before giving up on an acknowledgement (each is answered or times out in seconds). */
const MAX_DEPOSITS_PER_ROUND = 60
/** Recipients tried until one holds a mailbox on the process relay (it misses only when P is its entry relay). */
const MAX_RECIPIENTS = 6

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

describe('a mailbox relay process killed at its stored acknowledgements', { timeout: 600_000 }, () => {
  const net = new ChatNetwork()
  const dir = mkdtempSync(join(tmpdir(), 'p2pchat-mailbox-proc-'))
  const relayDir = join(dir, 'relay')
  let proc: CliProcess | undefined

  async function startProcessRelay (): Promise<string> {
    proc = new CliProcess(['start', '--relay', '--json', '--listen', '/ip4/127.0.0.1/tcp/0', '--bootstrap', net.boot?.addrs()[0] ?? '', '--data-dir', relayDir],
      { P2PCHAT_TIMING: JSON.stringify({ announceIntervalMs: 1_000 }) })
    const ready = await proc.waitForJson(o => o.event === 'ready' || o.event === 'error', 60_000)
    assert.equal(ready.event, 'ready', JSON.stringify(ready))
    assert.equal(ready.relay, true)
    const p = proc
    await waitFor(async () => Number((await p.ask({ cmd: 'relays' })).count) >= 5, 'the relay process to know all 5 relays', 60_000, 250)
    return String(ready.peerId)
  }

  before(async () => {
    await net.bootstrap()
    await net.startRelays(4)
  })
  after(async () => {
    if (proc != null) await proc.stop()
    await net.teardown()
    rmSync(dir, { recursive: true, force: true })
  })

  it('every message the relay answered stored is delivered after SIGKILLs at the acknowledgement and restarts on the same data directory', async (t) => {
    const peerId = await startProcessRelay()
    const knowsP = (u: TestUser, notKey?: string): boolean => {
      const held = u.chat.relayDirectory.list().find(r => r.record.peerId === peerId)
      const key = held == null ? undefined : onionKeyFor(held.record)
      return key != null && hex(key.key) !== notKey
    }
    await waitFor(() => (net.boot?.relays.size ?? 0) >= 5 && net.relays.every(r => r.relay.relays.has(peerId)), 'the network to know the relay process', 60_000)

    // a recipient with a mailbox on every relay but its entry: one on P unless P is its entry
    let rosa: TestUser | undefined
    let nick = ''
    let mailbox: { relay: Uint8Array, id: Uint8Array } | undefined
    for (let i = 0; i < MAX_RECIPIENTS && mailbox == null; i++) {
      nick = `rosa${i}`
      rosa = await net.user(nick, { mailboxes: 4 })
      mailbox = rosa.chat.mailboxes.addresses().map(a => ({ relay: a.relay, id: a.mailboxId })).find(a => peerIdOfTransportKey(a.relay) === peerId)
      if (mailbox == null) await net.stopUser(rosa)
    }
    assert.ok(rosa != null && mailbox != null, 'a recipient holds a mailbox on the relay process')
    const box = mailbox
    const rosaDir = rosa.dataDir
    const bob = await net.user('bob')
    const record = await bob.chat.directory.lookup(nick)
    assert.ok(record.mailboxes.some(m => hex(m.id) === hex(box.id)), 'the mailbox on P is in the published record')
    // rosa goes away: her mailbox on P keeps what bob deposits
    await net.stopUser(rosa)
    const key = onionKeyFor(record)
    assert.ok(key != null)
    const to = { relay: box.relay, mailboxId: box.id }
    const seal = (i: number): Uint8Array => sealMessage(
      createMessage({ senderNick: 'bob', senderIdentityKey: bob.chat.identity.identityKey, text: `deposit ${i}` }),
      bob.chat.identity.signer, { identityKey: record.identityKey, onionKey: key.key, epoch: key.epoch })

    // the kill switch: any onion packet from P at an in-process relay, or a stored answer at bob
    let kill: ((why: string) => void) | undefined
    for (const r of net.relays) {
      const original = r.relay.onion.receive.bind(r.relay.onion)
      r.relay.onion.receive = (frame, from) => {
        if (from === peerId) kill?.('a packet from P at an in-process relay')
        original(frame, from)
      }
    }

    const answers = new Map<number, string>()
    const killedBy: string[] = []
    let next = 0
    let acknowledgedRounds = 0
    for (let round = 0; acknowledgedRounds < ROUNDS && round < MAX_ROUNDS; round++) {
      const first = next
      assert.ok(proc != null)
      const running = proc
      const exited = running.exited
      let killed = false
      kill = (why) => {
        if (killed) return
        killed = true
        running.child.kill('SIGKILL')
        killedBy.push(why)
      }
      const inFlight = new Set<Promise<void>>()
      for (let sent = 0; !killed && sent < MAX_DEPOSITS_PER_ROUND;) {
        while (!killed && inFlight.size < IN_FLIGHT && sent < MAX_DEPOSITS_PER_ROUND) {
          const i = next++
          sent++
          // a STORED that comes after bob's request timed out (a loaded machine) was answered all the same
          const late = (kind: string): void => { if (kind === 'stored') answers.set(i, 'stored') }
          const p: Promise<void> = bob.chat.mailboxes.deposit(to, seal(i), late).then(
            kind => { answers.set(i, kind); if (kind === 'stored') kill?.('a stored answer at bob') },
            (err: Error) => { answers.set(i, err.name) }
          ).finally(() => { inFlight.delete(p) })
          inFlight.add(p)
        }
        if (inFlight.size > 0) await Promise.race(inFlight)
      }
      assert.ok(killed, `round ${round}: an acknowledgement within ${MAX_DEPOSITS_PER_ROUND} deposits (answers: ${[...answers.values()].join(',')})`)
      kill = undefined
      await within(exited, 10_000, 'the relay process dying')
      assert.equal(running.child.signalCode, 'SIGKILL')
      // every deposit of the round is answered or has timed out (the request timeout is seconds)
      await within(Promise.allSettled([...inFlight]), 30_000, 'the deposits in flight settling')
      let acknowledged = false
      for (let i = first; i < next; i++) if (answers.get(i) === 'stored') acknowledged = true
      if (acknowledged) acknowledgedRounds++
      const oldKey = hex(onionKeyFor(bob.chat.relayDirectory.list().find(r => r.record.peerId === peerId)?.record ?? record)?.key ?? new Uint8Array())
      // the same data directory: the same transport key, the same mailbox.db; new epoch keys
      assert.equal(await startProcessRelay(), peerId, 'restarted with the same transport key')
      await waitFor(() => knowsP(bob, oldKey), 'bob to learn the restarted relay\'s new onion key', 60_000)
    }

    const acked = [...answers].filter(([, kind]) => kind === 'stored').map(([i]) => i)
    t.diagnostic(`${killedBy.length} rounds, ${acknowledgedRounds} with an acknowledgement; ${next} deposits, ${acked.length} answered stored, kills by: ${killedBy.join('; ')}; other outcomes: ${[...answers.values()].filter(k => k !== 'stored').join(',')}`)
    assert.ok(acknowledgedRounds >= ROUNDS, `${ROUNDS} rounds killed at an acknowledgement within ${MAX_ROUNDS}`)

    // rosa comes back after the last restart: every acknowledged message arrives
    rosa = await net.user(nick, { dataDir: rosaDir, mailboxes: 4 })
    const got = (): Set<string> => new Set(eventsOf(rosa as TestUser, 'message').map(m => m.text))
    await waitFor(() => acked.every(i => got().has(`deposit ${i}`)),
      () => `every acknowledged deposit at the recipient (missing: ${acked.filter(i => !got().has(`deposit ${i}`)).join(',')})`, 120_000)
    assert.ok(eventsOf(rosa, 'message').every(m => m.verified))
  })
})
