/**
 * Who learns what, measured (issue 10, "What it must show", first bullet): an instrumented network of
 * protocol version 2 in one process (a bootstrap node, six relays each on its own /16, alice and bob as
 * clients). Every DHT request every DHT server serves is logged with its sender, every connection of
 * every node with its remote peer and direction, every relay's hop and service events (logHops) and
 * every p2pchat debug line, every answer of every directory exit, and every user's choice of exits.
 * Then alice and bob exchange 50 messages each way (one each way per round, each waited for until
 * delivered), and each claim below is checked against the logs as its own test.
 *
 * The numbers (DHT requests by type, serving node and sender kind; who asked the DHT about a nick) are
 * printed as diagnostics: the "who learns what" evidence README and SPEC cite.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { TestContext } from 'node:test'
import { peerIdFromString } from '@libp2p/peer-id'
import { ChatNode } from '../node/chat-node.ts'
import { peerIdOfTransportKey } from '../node/relay-node.ts'
import type { RelayEvent } from '../node/relay-node.ts'
import { decodeAnswer, decodeRequest, OP_LOOKUP_NAME } from '../protocols/directory/exit.ts'
import { decodeRecord, FIELD_ADDRESS, KIND_NAME, NAME_PREFIX, RELAY_PREFIX } from '../protocols/directory/record.ts'
import { SERVICE_DIRECTORY } from '../protocols/onion/service-body.ts'
import { ChatNetwork, eventsOf, TEST_CHAT_TIMING } from './helpers/chat-network.ts'
import type { TestUser } from './helpers/chat-network.ts'
import { captureDebugLog, ConnectionLog, containsBytes, DhtLog, namesNick, observeExit, observeOnionRequests, storedRecords } from './helpers/instruments.ts'
import type { DebugLine } from './helpers/instruments.ts'
import { LOOPBACK_ALLOW } from './helpers/network.ts'
import { waitFor } from './helpers/wait.ts'

/** Relays in the network: enough for two exits and two mailboxes per user on /16s apart from the entry. */
const RELAYS = 6
/** Messages each way. */
const ROUNDS = 50
/** Namespaces of the modules only a user runs; every other p2pchat namespace is a relay's (or the bootstrap node's). */
const USER_NAMESPACES = ['p2pchat:chat', 'p2pchat:entry', 'p2pchat:directory-client', 'p2pchat:mailboxes', 'p2pchat:onion:client']

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')
const utf8 = (b: Uint8Array | undefined): string => b == null ? '' : Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1')

/** The field types of an encoded v2 record, walked on the bytes (not through the decoder, which enforces its own rules). */
function fieldTypes (record: Uint8Array): number[] {
  const types: number[] = []
  const end = record.length - 64
  for (let at = 2; at + 3 <= end;) {
    const len = (record[at + 1] << 8) | record[at + 2]
    types.push(record[at])
    at += 3 + len
  }
  return types
}

interface Watched {
  user: TestUser
  nick: string
  /** This run's transport peer id. */
  peerId: string
  /** The libp2p peer id the identity key would have (v1 used it as the transport id). */
  identityPeerId: string
  identityKey: Uint8Array
  /** The onion requests this user sent: to which relay, which service. */
  requests: Array<{ relay: string, service: number }>
}

describe('privacy, instrumented: who learns what over 50 messages each way between alice and bob', { timeout: 900_000 }, () => {
  const net = new ChatNetwork()
  const dht = new DhtLog()
  const conns = new ConnectionLog()
  const relayEvents: Array<{ relay: string, event: RelayEvent }> = []
  const exitAnswers: Array<{ relay: string, request: Uint8Array, answer: Uint8Array }> = []
  let debug: { lines: DebugLine[], stop: () => void } | undefined
  const users: Watched[] = []
  /** Index into dht.requests where the users started, and where the 50 rounds started. */
  let usersFrom = 0
  let roundsFrom = 0
  let roundsEnd = 0
  let roundsMs = 0
  let alice: Watched
  let bob: Watched
  const relayIds = new Set<string>()
  let bootId = ''

  /** A user as ChatNetwork.user() makes it, watched from before its node makes any connection. */
  async function watchedUser (nick: string): Promise<Watched> {
    const dataDir = join(net.root, `${nick}-watched`)
    const chat = await ChatNode.create({ dataDir, nick, bootstrap: net.boot?.addrs() ?? [], allow: LOOPBACK_ALLOW, timing: TEST_CHAT_TIMING, privacy: 'fast' })
    const user: TestUser = { chat, events: [], dataDir }
    chat.on(e => user.events.push(e))
    net.users.push(user)
    conns.watch(chat.node)
    const w: Watched = {
      user,
      nick,
      peerId: chat.peerId,
      identityPeerId: peerIdOfTransportKey(chat.identity.identityKey),
      identityKey: chat.identity.identityKey,
      requests: []
    }
    observeOnionRequests(chat.onion, (final, service) => { w.requests.push({ relay: final.peerId, service }) })
    await chat.start()
    return w
  }

  before(async () => {
    debug = captureDebugLog('p2pchat:*')
    await net.bootstrap()
    const boot = net.boot
    assert.ok(boot != null)
    bootId = boot.node.peerId.toString()
    dht.watch(boot.node)
    conns.watch(boot.node)
    for (let i = 0; i < RELAYS; i++) {
      const { relay } = await net.relay({ logHops: true })
      relayIds.add(relay.peerId)
      dht.watch(relay.node)
      conns.watch(relay.node)
      relay.on(event => relayEvents.push({ relay: relay.peerId, event }))
      observeExit(relay, (request, answer) => exitAnswers.push({ relay: relay.peerId, request, answer }))
    }
    await net.waitForRelayGossip()
    usersFrom = dht.requests.length
    alice = await watchedUser('alice')
    bob = await watchedUser('bob')
    users.push(alice, bob)
    roundsFrom = dht.requests.length
    const started = Date.now()
    for (let i = 0; i < ROUNDS; i++) {
      const a = alice.user.chat.send('bob', `alice to bob, ${i}`)
      const b = bob.user.chat.send('alice', `bob to alice, ${i}`)
      await waitFor(() => eventsOf(alice.user, 'delivered').some(e => e.id === a.id) && eventsOf(bob.user, 'delivered').some(e => e.id === b.id),
        () => `round ${i}: both messages delivered (alice: ${alice.user.chat.store.get(a.id)?.state}, bob: ${bob.user.chat.store.get(b.id)?.state})`, 60_000)
    }
    roundsMs = Date.now() - started
    roundsEnd = dht.requests.length
  })

  after(async () => {
    dht.stop()
    conns.stop()
    debug?.stop()
    await net.teardown()
  })

  /** Who a peer id is, for the tables. */
  const kindOf = (id: string): string => {
    if (id === bootId) return 'bootstrap'
    if (relayIds.has(id)) return 'relay'
    for (const u of users) {
      if (id === u.peerId) return `user ${u.nick}`
      if (id === u.identityPeerId) return `identity of ${u.nick}`
    }
    return 'unknown'
  }
  const nameOf = (id: string): string => id === bootId ? 'bootstrap' : relayIds.has(id) ? `relay-${[...relayIds].indexOf(id) + 1}` : kindOf(id)

  /** Does a DHT request name this user: its nick's key, its identity key, or the peer id of that key? */
  const names = (key: Uint8Array | undefined, u: Watched): boolean => {
    if (key == null) return false
    const text = utf8(key)
    return text === `${NAME_PREFIX}${u.nick}` || containsBytes(key, u.identityKey) ||
      containsBytes(key, peerIdFromString(u.identityPeerId).toMultihash().bytes) || text.includes(u.identityPeerId)
  }

  /** Did this relay's exit run a lookup of `nick`? */
  const lookedUpAt = (relay: string, nick: string): boolean => exitAnswers.some(e => {
    if (e.relay !== relay) return false
    const d = decodeRequest(e.request)
    return d.ok && d.value.op === OP_LOOKUP_NAME && d.value.nick === nick
  })
  const entryOf = (u: Watched): string => u.user.chat.entry.relay?.peerId ?? ''
  const mailboxRelaysOf = (u: Watched): Set<string> => new Set(u.user.chat.mailboxes.addresses().map(m => peerIdOfTransportKey(m.relay)))
  const exitsOf = (u: Watched): Set<string> => new Set(u.requests.filter(r => r.service === SERVICE_DIRECTORY).map(r => r.relay))

  it('delivered all 100 messages, and the instruments saw traffic (diagnostics: DHT requests by type and sender)', (t: TestContext) => {
    for (const [u, other] of [[alice, bob], [bob, alice]] as const) {
      const got = eventsOf(u.user, 'message').filter(m => m.from === other.nick)
      assert.equal(got.length, ROUNDS, `${u.nick} received each of ${other.nick}'s messages once`)
      assert.ok(got.every(m => m.verified), `${u.nick} verified every message`)
    }
    assert.ok(dht.requests.length > 0 && conns.connections.length > 0 && relayEvents.length > 0 && exitAnswers.length > 0)
    t.diagnostic(`${ROUNDS} rounds (one message each way, each delivered) in ${roundsMs} ms`)
    const table = (from: number, to: number, title: string): void => {
      const rows = new Map<string, Map<string, number>>()
      for (const r of dht.requests.slice(from, to)) {
        const row = `${nameOf(r.at)} <- ${kindOf(r.from)}`
        const m = rows.get(row) ?? new Map<string, number>()
        m.set(r.type, (m.get(r.type) ?? 0) + 1)
        rows.set(row, m)
      }
      t.diagnostic(`DHT requests served, ${title} (${to - from} in all), by serving node <- sender kind:`)
      for (const [row, m] of [...rows].sort()) t.diagnostic(`  ${row}: ${[...m].sort().map(([k, v]) => `${k} ${v}`).join(', ')}`)
    }
    table(usersFrom, roundsFrom, 'while alice and bob started')
    table(roundsFrom, roundsEnd, `during the ${ROUNDS} rounds`)
    for (const u of users) {
      const about = dht.requests.filter(r => names(r.key, u))
      const bySender = new Map<string, number>()
      for (const r of about) {
        const roles = [r.from === entryOf(alice) ? 'alice\'s entry' : '', r.from === entryOf(bob) ? 'bob\'s entry' : '',
          exitsOf(alice).has(r.from) ? 'an exit of alice' : '', exitsOf(bob).has(r.from) ? 'an exit of bob' : '',
          mailboxRelaysOf(u).has(r.from) ? `a mailbox of ${u.nick}` : ''].filter(s => s !== '').join(', ')
        const k = `${nameOf(r.from)} (${roles === '' ? 'no role' : roles})`
        bySender.set(k, (bySender.get(k) ?? 0) + 1)
      }
      t.diagnostic(`DHT requests naming ${u.nick} (its nick or identity key): ${about.length}, from: ${[...bySender].map(([k, v]) => `${k} ${v}`).join('; ')}`)
    }
    for (const u of users) {
      t.diagnostic(`${u.nick}: entry ${nameOf(entryOf(u))}, mailboxes ${[...mailboxRelaysOf(u)].map(nameOf).join(' ')}, exits used ${[...exitsOf(u)].map(nameOf).join(' ')}`)
    }
  })

  it('no DHT request comes from a user\'s transport peer id: every one comes from a relay or the bootstrap node', () => {
    assert.ok(roundsEnd > roundsFrom, 'DHT requests were served during the rounds')
    for (const u of users) {
      assert.equal(dht.requests.filter(r => r.from === u.peerId).length, 0, `no DHT request from ${u.nick}'s transport peer id`)
      assert.equal('dht' in u.user.chat.node.services, false, `${u.nick}'s node runs no DHT service`)
    }
    const strangers = dht.requests.filter(r => r.from !== bootId && !relayIds.has(r.from))
    assert.deepEqual(strangers.map(r => `${r.type} from ${kindOf(r.from)}`), [])
  })

  it('a user holds connections only to its entry relay and, at start, a bootstrap node; only its entry relay and the bootstrap node hold one to it', () => {
    for (const u of users) {
      const entry = entryOf(u)
      assert.ok(relayIds.has(entry), `${u.nick} has an entry relay`)
      const mine = conns.peersOf(u.peerId)
      assert.ok(mine.has(entry))
      assert.deepEqual([...mine].filter(p => p !== entry && p !== bootId).map(nameOf), [], `${u.nick} connected to nobody else`)
      assert.ok(conns.connections.filter(c => c.at === u.peerId).every(c => c.direction === 'outbound'), `${u.nick} only dialled out`)
      assert.deepEqual([...new Set(u.user.chat.node.getConnections().map(c => c.remotePeer.toString()))], [entry], `${u.nick} now holds only its entry relay`)
      assert.deepEqual([...conns.holdersOf(u.peerId)].filter(p => p !== entry && p !== bootId && p !== u.peerId).map(nameOf), [],
        `no relay but ${u.nick}'s entry relay ever had a connection to it`)
      assert.ok(conns.connections.filter(c => c.remote === u.peerId && c.at !== u.peerId).every(c => c.direction === 'inbound'), `nobody dialled ${u.nick}`)
    }
  })

  it('a user\'s directory requests go to exits it has no connection to, and its mailboxes are on relays it has no connection to', () => {
    for (const u of users) {
      const holders = conns.holdersOf(u.peerId)
      const exits = exitsOf(u)
      assert.ok(exits.size > 0, `${u.nick} used exits`)
      assert.deepEqual([...exits].filter(e => holders.has(e)).map(nameOf), [], `${u.nick}'s exits`)
      assert.equal(mailboxRelaysOf(u).size, 2)
      assert.deepEqual([...mailboxRelaysOf(u)].filter(m => holders.has(m)).map(nameOf), [], `${u.nick}'s mailbox relays`)
    }
  })

  it('every DHT request that names a nick or identity key comes from a relay, and never from a relay connected to the user on whose behalf it ran', () => {
    for (const u of users) {
      const about = dht.requests.filter(r => names(r.key, u))
      assert.ok(about.some(r => r.type === 'GET_VALUE') && about.some(r => r.type === 'PUT_VALUE'), `the DHT was asked about ${u.nick} (lookups and puts)`)
      assert.deepEqual(about.filter(r => !relayIds.has(r.from)).map(r => `${r.type} from ${kindOf(r.from)}`), [], `requests naming ${u.nick} come from relays only`)
      const holders = conns.holdersOf(u.peerId)
      for (const r of about.filter(r => holders.has(r.from))) {
        // a relay connected to u (its entry relay) may only have run someone else's lookup of u as an
        // exit: u sent it no request of its own (no lookup, no publication, no mailbox) and it holds
        // none of u's mailboxes (which republish u's record)
        assert.ok(lookedUpAt(r.from, u.nick), `${nameOf(r.from)} (connected to ${u.nick}) asked the DHT about ${u.nick} (${r.type}) without running a lookup of it as an exit`)
        assert.deepEqual(u.requests.filter(q => q.relay === r.from), [], `${u.nick} sent its entry relay ${nameOf(r.from)} a request of its own`)
        assert.ok(!mailboxRelaysOf(u).has(r.from))
      }
    }
  })

  it('every DHT request naming either nick or identity key comes from a relay with no connection to that user (entry relays are never exits)', () => {
    const found: string[] = []
    for (const u of users) {
      const holders = conns.holdersOf(u.peerId)
      for (const r of dht.requests.filter(r => names(r.key, u) && holders.has(r.from))) {
        found.push(`${r.type} naming ${u.nick} from ${nameOf(r.from)}, ${u.nick}'s entry relay`)
      }
    }
    assert.deepEqual(found, [])
  })

  it('no relay ever connects to, or receives from, a peer whose id is a user\'s identity key', async () => {
    for (const u of users) {
      assert.deepEqual(conns.connections.filter(c => c.remote === u.identityPeerId || c.at === u.identityPeerId), [], `no connection of ${u.nick}'s identity peer id`)
      assert.deepEqual(dht.requests.filter(r => r.from === u.identityPeerId), [], `no DHT request from ${u.nick}'s identity peer id`)
      assert.deepEqual(conns.gossip.filter(g => g.from === u.identityPeerId || g.from === u.peerId), [], `no gossip signed by ${u.nick}`)
      for (const node of [net.boot?.node, ...net.relays.map(r => r.relay.node)]) {
        assert.ok(node != null)
        assert.equal(await node.peerStore.has(peerIdFromString(u.identityPeerId)), false, `${nameOf(node.peerId.toString())} never heard of ${u.nick}'s identity peer id`)
      }
      assert.notEqual(u.peerId, u.identityPeerId, `${u.nick}'s transport peer id is not its identity key's`)
    }
    assert.ok(conns.gossip.length > 0, 'gossip was observed')
  })

  it('no name record contains an address: neither what any DHT node stores nor what any exit answered', async () => {
    const nodes = [net.boot?.node, ...net.relays.map(r => r.relay.node)]
    const holding = new Map<string, number>()
    let relayDescriptorsWithAddrs = 0
    for (const node of nodes) {
      assert.ok(node != null)
      for (const { key, value } of await storedRecords(node)) {
        const k = utf8(key)
        if (k.startsWith(RELAY_PREFIX) && fieldTypes(value).includes(FIELD_ADDRESS)) relayDescriptorsWithAddrs++
        if (!k.startsWith(NAME_PREFIX)) continue
        assert.equal(value[1], KIND_NAME)
        assert.equal(fieldTypes(value).includes(FIELD_ADDRESS), false, `the record of ${k} held by ${nameOf(node.peerId.toString())} has an address field`)
        assert.deepEqual(decodeRecord(value).addrs, [])
        holding.set(k, (holding.get(k) ?? 0) + 1)
      }
    }
    assert.ok((holding.get(`${NAME_PREFIX}alice`) ?? 0) > 0 && (holding.get(`${NAME_PREFIX}bob`) ?? 0) > 0, `the DHT holds both names (${[...holding].join(' ')})`)
    assert.ok(relayDescriptorsWithAddrs > 0, 'the same field walk finds the addresses relay descriptors carry')
    let names = 0
    for (const { relay, answer } of exitAnswers) {
      const d = decodeAnswer(answer)
      assert.ok(d.ok, `exit ${nameOf(relay)} gave an answer that does not decode`)
      const a = d.value
      const record = a.status === 'found' ? a.record : a.status === 'taken' && a.holder.length > 0 ? a.holder : undefined
      if (record == null) continue
      names++
      assert.equal(fieldTypes(record).includes(FIELD_ADDRESS), false, `exit ${nameOf(relay)} answered a name record with an address`)
      assert.deepEqual(decodeRecord(record).addrs, [])
    }
    assert.ok(names >= 2, `exits answered name records (${names})`)
  })

  it('a relay\'s hop and service events and its debug log lines name no user peer id and no nick', () => {
    const allowed = new Set([...relayIds, 'client'])
    const hops = relayEvents.filter(e => e.event.type === 'hop' || e.event.type === 'service')
    assert.ok(hops.length > 0 && hops.some(e => e.event.type === 'hop' && (e.event.from === 'client' || e.event.to === 'client')), 'hop events, some from or to a client')
    for (const { relay, event } of hops) {
      const named = event.type === 'hop' ? [event.from, event.to] : event.type === 'service' ? [event.from] : []
      assert.deepEqual(named.filter(n => !allowed.has(n)), [], `${nameOf(relay)}: ${JSON.stringify(event)}`)
    }
    const secrets = users.flatMap(u => [u.peerId, u.identityPeerId, hex(u.identityKey).slice(0, 16),
      hex((u.user.chat.node.peerId.publicKey as { raw: Uint8Array }).raw).slice(0, 16)])
    const relayLines = (debug?.lines ?? []).filter(l => !USER_NAMESPACES.some(ns => l.namespace === ns || l.namespace.startsWith(`${ns}:`)))
    assert.ok((debug?.lines.length ?? 0) > 0, 'debug lines were captured')
    const leaks = relayLines.filter(l => secrets.some(s => l.text.includes(s)) || users.some(u => namesNick(l.text, u.nick)))
    assert.deepEqual(leaks.map(l => `${l.namespace} ${l.text}`), [])
    const everyEvent = relayEvents.map(e => JSON.stringify(e.event))
    assert.deepEqual(everyEvent.filter(e => secrets.some(s => e.includes(s)) || users.some(u => namesNick(e, u.nick))), [])
  })
})
