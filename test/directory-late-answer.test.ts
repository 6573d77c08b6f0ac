/**
 * Directory requests answered after the user's request timed out (a user's start under heavy load
 * failed "could not publish ... no answer in time": PUBLISH_FAILED in chat-node, mailbox-process, the
 * anonymity bench and the lab at 18 processes; an exit's put and read-back in the DHT may take up to
 * 45 s, the user's request timeout is 15 s).
 *
 * On units, with real Sphinx packets and a real DirectoryExit (its DHT a stand-in): the user's onion
 * client (protocols/onion/client.ts) over a stand-in entry link whose packets the test peels hop by hop
 * with the relays' keys; the test hands a request to the exit only after the user's timeout fired, and
 * the exit's answer goes back through the reply block to the user. The late answers count (the
 * OnionClient `late` option, as MailboxClient.deposit uses it): a late STORED publishes, a late TAKEN
 * still fails clearly, a lookup no exit answered in time takes late answers. On the code before, every
 * late answer was dropped as an unknown reply block: the publication failed and the lookup was
 * "unavailable".
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { DirectoryClient, DirectoryUnavailableError, PUBLISH_TRIES, PublishTimeoutError } from '../node/directory-client.ts'
import { ephemeralIdentity } from '../node/identity.ts'
import { relayRole } from '../node/roles.ts'
import { DirectoryExit, encodeAnswer, OP_PUBLISH_NAME } from '../protocols/directory/exit.ts'
import type { ExitDirectory } from '../protocols/directory/exit.ts'
import { NickTakenError } from '../protocols/directory/index.ts'
import { KIND_NAME, signRecord } from '../protocols/directory/record.ts'
import type { SignedRecord } from '../protocols/directory/record.ts'
import { NoEntryRelayError, OnionClient } from '../protocols/onion/client.ts'
import type { EntryLink } from '../protocols/onion/client.ts'
import type { PathRelay } from '../protocols/onion/paths.ts'
import { decodeServiceBody, SERVICE_DIRECTORY } from '../protocols/onion/service-body.ts'
import { generateOnionKey, onionPrivateKeyFromRaw, packetFromSurb, processPacket } from '../protocols/onion/sphinx.ts'
import type { OnionPrivateKey } from '../protocols/onion/sphinx.ts'
import { waitFor } from './helpers/wait.ts'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
/** The user gives up on a request this fast: every answer the test hands over comes after it. */
const TIMEOUT_MS = 40

/** Relays with peer ids of both roles (node/roles.ts), so exits are drawn as on a real network. */
function relaysOfBothRoles (n: number): { relays: PathRelay[], keys: Map<string, OnionPrivateKey> } {
  const relays: PathRelay[] = []
  const keys = new Map<string, OnionPrivateKey>()
  const want = { entry: Math.ceil(n / 2), exit: Math.floor(n / 2) }
  for (let i = 0; relays.length < n && i < 10_000; i++) {
    const peerId = `relay-${i}`
    const role = relayRole(peerId)
    if (want[role] === 0) continue
    want[role]--
    const k = generateOnionKey()
    const r: PathRelay = { address: new Uint8Array(randomBytes(32)), onionKey: k.publicKey, peerId }
    relays.push(r)
    keys.set(hex(r.address), onionPrivateKeyFromRaw(k.privateKey))
  }
  return { relays, keys }
}

/**
 * A user's DirectoryClient whose requests wait in `submitted` until the test hands them to the exit
 * (`deliver`): by then the user has given up on them.
 */
function world (directory: ExitDirectory, timeoutMs = TIMEOUT_MS) {
  const { relays, keys } = relaysOfBothRoles(8)
  const entry = relays.find(r => relayRole(r.peerId) === 'entry') as PathRelay
  let submitted: Array<{ to: Uint8Array, packet: Uint8Array }> = []
  const link: EntryLink = { relay: entry, submit: (to, packet) => { submitted.push({ to, packet }); return true } }
  let timedOut = 0
  /** called (on the next turn) each time a request timed out */
  const onTimedOut: Array<() => void> = []
  const onion = new OnionClient({
    self: new Uint8Array(randomBytes(32)),
    relays: () => relays,
    entry: () => link,
    onOutcome: (_, answered) => { if (!answered) { timedOut++; setImmediate(() => { for (const f of onTimedOut) f() }) } }
  })
  const exit = new DirectoryExit({ directory, relayDescriptors: () => [] })

  function peel (to: Uint8Array, packet: Uint8Array): { kind: 'service', payload: Uint8Array } | { kind: 'client', packet: Uint8Array } {
    for (let hop = 0; hop < 8; hop++) {
      const key = keys.get(hex(to))
      assert.ok(key != null, 'every hop is one of the relays')
      const res = processPacket(packet, key)
      assert.ok(res.ok, `hop ${hop} opens its layer`)
      if (res.type === 'final') return { kind: 'service', payload: res.payload }
      if (res.command === 'client') return { kind: 'client', packet: res.packet }
      to = res.next
      packet = res.packet
    }
    throw new Error('too many hops')
  }

  /** The exit answers the requests submitted so far (the first `count`), through their reply blocks. */
  async function deliver (count = submitted.length): Promise<number> {
    const now = submitted.splice(0, count)
    for (const s of now) {
      const final = peel(s.to, s.packet)
      assert.equal(final.kind, 'service')
      if (final.kind !== 'service') continue
      const body = decodeServiceBody(final.payload)
      assert.ok(body.ok && body.body.service === SERVICE_DIRECTORY && body.body.replyBlock != null)
      const answer = await exit.handle(body.body.request)
      const { firstHop, packet } = packetFromSurb(body.body.replyBlock, Uint8Array.from([SERVICE_DIRECTORY, ...answer]))
      const back = peel(firstHop, packet)
      assert.equal(back.kind, 'client', 'the answer comes back to the user')
      if (back.kind === 'client') onion.deliver(back.packet)
    }
    return now.length
  }

  const client = new DirectoryClient({ onion, relays: () => relays, entryPeerId: () => entry.peerId, timeoutMs, lateAnswerMs: 60_000 })
  return { client, onion, deliver, pending: () => submitted.length, timedOut: () => timedOut, onTimedOut }
}

async function nameRecord (nick: string): Promise<SignedRecord> {
  const id = await ephemeralIdentity()
  return signRecord({
    kind: KIND_NAME, nick, identityKey: id.identityKey,
    onionKeys: [{ epoch: 0, notBefore: 0, notAfter: 0, key: id.onionPublic }],
    mailboxes: [{ relay: new Uint8Array(32).fill(1), id: new Uint8Array(32).fill(2) }],
    addrs: [], sequence: BigInt(Date.now()), expiry: Date.now() + 3600_000
  }, id.signer)
}

const unused = async (): Promise<never> => { throw new Error('not asked in this test') }

describe('directory answers that come after the request timed out', { timeout: 60_000 }, () => {
  it('publish: the first exit\'s STORED comes while the second is asked: the publication ends stored (before: dropped, and after 4 silent exits PUBLISH_FAILED)', async () => {
    const rec = await nameRecord('carol')
    const published: Uint8Array[] = []
    const w = world({ lookupName: unused, publishSignedName: async (bytes) => { published.push(bytes); return { record: rec, stored: 7 } } })
    const publishing = w.client.publish(rec.bytes, 'carol')
    // the second request leaves only once the first timed out
    await waitFor(() => w.pending() >= 2, () => `a second exit asked (${w.pending()} requests)`, 20_000)
    assert.equal(await w.deliver(1), 1)
    assert.equal(await publishing, 7, 'stored, from the late answer of the first exit')
    assert.equal(published.length, 1, 'the exit published once')
    assert.ok(w.client.stats.lateAnswers >= 1)
    assert.equal(w.client.stats.failures, 0)
  })

  it('publish: a late TAKEN still fails the publication clearly (NickTakenError), not as silence', async () => {
    const rec = await nameRecord('dave')
    const holder = await nameRecord('dave')
    const w = world({ lookupName: unused, publishSignedName: async () => { throw new NickTakenError('dave', 'another key', holder) } })
    const publishing = w.client.publish(rec.bytes, 'dave')
    await waitFor(() => w.pending() >= 2, () => `a second exit asked (${w.pending()} requests)`, 20_000)
    await w.deliver(1)
    await assert.rejects(publishing, (err: Error) => err instanceof NickTakenError)
  })

  it('publish: no exit answers in any round: PublishTimeoutError after rounds x PUBLISH_TRIES requests, onSlow told between rounds', async () => {
    const rec = await nameRecord('erin')
    const w = world({ lookupName: unused, publishSignedName: unused })
    const slow: number[] = []
    await assert.rejects(w.client.publish(rec.bytes, 'erin', { rounds: 2, onSlow: (r) => { slow.push(r) } }),
      (err: Error) => err instanceof PublishTimeoutError && /no exit answered in 2 rounds/.test(err.message))
    assert.deepEqual(slow, [2])
    assert.equal(w.pending(), 2 * PUBLISH_TRIES, 'every try of both rounds was sent')
    assert.equal(w.onion.pendingBlocks, 2 * PUBLISH_TRIES, 'their reply blocks are kept for late answers')
  })

  it('publish with rounds: silent in round 1, a round-1 answer late in round 2 ends it stored', async () => {
    const rec = await nameRecord('fay')
    const w = world({ lookupName: unused, publishSignedName: async () => ({ record: rec, stored: 3 }) })
    const slow: number[] = []
    const publishing = w.client.publish(rec.bytes, 'fay', { rounds: 3, onSlow: (r) => { slow.push(r) } })
    await waitFor(() => w.pending() >= PUBLISH_TRIES + 1, () => `round 2 started (${w.pending()} requests)`, 20_000)
    await w.deliver(1)
    assert.equal(await publishing, 3)
    assert.deepEqual(slow, [2])
  })

  it('lookup: neither exit answers in time; their late answers still find the record (before: DirectoryUnavailableError)', async () => {
    const rec = await nameRecord('gus')
    const asked: string[] = []
    // a lookup waits one more request timeout for late answers: long enough here for the test to
    // hand both requests to the exits right after they timed out, on a loaded machine
    const w = world({ lookupName: async (nick) => { asked.push(nick); return rec }, publishSignedName: unused }, 2_000)
    let delivered: Promise<number> | undefined
    w.onTimedOut.push(() => { if (w.timedOut() === 2 && delivered == null) delivered = w.deliver() })
    const found = await w.client.lookup('gus')
    assert.equal(await delivered, 2, 'both requests reached the exits only after both had timed out')
    assert.equal(found.nick, 'gus')
    assert.deepEqual(asked, ['gus', 'gus'])
    assert.ok(w.client.stats.lateAnswers >= 1)
  })

  it('lookup: no late answer either: DirectoryUnavailableError one more timeout later, as before', async () => {
    const w = world({ lookupName: unused, publishSignedName: unused })
    await assert.rejects(w.client.lookup('hal'), (err: Error) => err instanceof DirectoryUnavailableError)
    assert.equal(w.timedOut(), 2)
  })

  it('publish: a round none of whose requests could leave (the entry link lost under load) waits a request timeout for the link, then asks again', async () => {
    const rec = await nameRecord('ivy')
    const { relays } = relaysOfBothRoles(8)
    let linked = false
    const asked: number[] = []
    // a stand-in onion client: no entry link until the test restores it, then an exit that stores
    const onion = {
      request: async (): Promise<Uint8Array> => {
        asked.push(Date.now())
        if (!linked) throw new NoEntryRelayError()
        return Uint8Array.from([SERVICE_DIRECTORY, ...encodeAnswer({ op: OP_PUBLISH_NAME, status: 'stored', stored: 5 })])
      }
    }
    const client = new DirectoryClient({ onion: onion as unknown as OnionClient, relays: () => relays, entryPeerId: () => undefined, timeoutMs: 200 })
    const slow: number[] = []
    const publishing = client.publish(rec.bytes, 'ivy', { rounds: 3, onSlow: (r) => { slow.push(r); linked = true } })
    assert.equal(await publishing, 5, 'stored in round 2, once the link was back')
    assert.deepEqual(slow, [2])
    assert.equal(asked.length, PUBLISH_TRIES + 1)
    assert.ok(asked[PUBLISH_TRIES] - asked[PUBLISH_TRIES - 1] >= 190, 'round 2 waited a request timeout for the link')
    // without a link at all: a clear PublishError (not a timeout: nothing left), after the rounds
    linked = false
    const never = new DirectoryClient({ onion: { request: async () => { throw new NoEntryRelayError() } } as unknown as OnionClient, relays: () => relays, entryPeerId: () => undefined, timeoutMs: 20 })
    await assert.rejects(never.publish(rec.bytes, 'ivy', { rounds: 2 }), (err: Error) => err.name === 'PublishError' && /not connected to an entry relay/.test(err.message))
  })
})
