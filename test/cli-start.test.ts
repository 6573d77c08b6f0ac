import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { ChatNode } from '../node/chat-node.ts'
import { localAllowList, parseCli, parseTiming } from '../cli/args.ts'
import { PassThrough } from 'node:stream'
import { MAX_JSON_LINE_BYTES, parseJsonCommand } from '../cli/json-commands.ts'
import { JsonSession } from '../cli/json-session.ts'
import type { ChatEvent } from '../node/chat-node.ts'
import { LineSplitter } from '../cli/lines.ts'
import type { CliProcess } from './helpers/cli.ts'
import { CliNetwork, TEST_TIMING } from './helpers/cli-network.ts'
import { LOOPBACK_ALLOW } from './helpers/network.ts'
import { waitFor, within } from './helpers/wait.ts'

type Json = Record<string, unknown>

describe('start: pure parsing', () => {
  it('parses JSON commands into typed commands or coded errors, never throwing', () => {
    const cases: Array<[string, unknown]> = [
      ['{"cmd":"send","to":"bob","text":"hi"}', { ok: true, command: { cmd: 'send', to: 'bob', text: 'hi' } }],
      ['{"cmd":"send","to":"bob#abcd-efgh-ijkl-mnop","text":"hi","tag":"x"}', { ok: true, command: { cmd: 'send', to: 'bob#abcd-efgh-ijkl-mnop', text: 'hi', tag: 'x' } }],
      ['{"cmd":"whois","nick":"bob"}', { ok: true, command: { cmd: 'whois', nick: 'bob' } }],
      ['{"cmd":"history","nick":"bob","limit":5}', { ok: true, command: { cmd: 'history', nick: 'bob', limit: 5 } }],
      ['{"cmd":"quit"}', { ok: true, command: { cmd: 'quit' } }],
      ['{"cmd":"verify","nick":"bob","confirm":true}', { ok: true, command: { cmd: 'verify', nick: 'bob', confirm: true } }],
      ['{"cmd":"verify","nick":"bob","confirm":"yes"}', 'BAD_FIELD'],
      ['{"cmd":"requests"}', { ok: true, command: { cmd: 'requests' } }],
      ['{"cmd":"conversations","tag":"c"}', { ok: true, command: { cmd: 'conversations', tag: 'c' } }],
      ['{"cmd":"read","nick":"bob"}', { ok: true, command: { cmd: 'read', nick: 'bob' } }],
      ['{"cmd":"deny","nick":"bob"}', { ok: true, command: { cmd: 'deny', nick: 'bob' } }],
      ['{"cmd":"block"}', 'MISSING_FIELD'],
      ['{"cmd":"retry","id":"0123abcd"}', { ok: true, command: { cmd: 'retry', id: '0123abcd' } }],
      ['{"cmd":"cancel","id":7}', 'BAD_FIELD'],
      ['{"cmd":"status"}', { ok: true, command: { cmd: 'status' } }],
      ['{"cmd":"history","nick":"bob","limit":0}', 'BAD_FIELD'],
      ['{"cmd":"history","nick":"bob","limit":1.5}', 'BAD_FIELD'],
      ['{"cmd":"relays","tag":7}', 'BAD_FIELD'],
      ['{"cmd":"constructor"}', 'UNKNOWN_CMD'],
      ['{"cmd":"__proto__"}', 'UNKNOWN_CMD'],
      ['{"__proto__":{"cmd":"quit"}}', 'MISSING_FIELD'],
      ['{"cmd":["send"]}', 'BAD_FIELD'],
      ['null', 'NOT_AN_OBJECT'],
      ['', 'BAD_JSON'],
      ['{"cmd":"send","to":"bob","text":null}', 'BAD_FIELD'],
      [`{"cmd":"whois","nick":"${'a'.repeat(500)}"}`, 'BAD_FIELD'],
      ['x'.repeat(MAX_JSON_LINE_BYTES + 1), 'LINE_TOO_LONG']
    ]
    for (const [line, want] of cases) {
      const got = parseJsonCommand(line)
      if (typeof want === 'string') assert.equal(got.ok ? 'ok' : got.code, want, line.slice(0, 80))
      else assert.deepEqual(got, want, line)
    }
    assert.deepEqual(parseJsonCommand('{"cmd":"launch","tag":"q"}'), { ok: false, code: 'UNKNOWN_CMD', message: 'unknown cmd "launch" (one of send, whois, contacts, history, relays, accept, conversations, read, requests, deny, block, verify, retry, cancel, status, quit)', tag: 'q' })
    // random bytes never throw
    for (let i = 0; i < 2000; i++) {
      const line = Buffer.from(Array.from({ length: i % 64 }, () => Math.floor(Math.random() * 256))).toString('utf8')
      assert.equal(typeof parseJsonCommand(line).ok, 'boolean')
    }
  })

  it('bug 3 in --json: a queued message is written once per reason, however often the outbox retries it', () => {
    const listeners = new Set<(e: ChatEvent) => void>()
    const chat = { on: (l: (e: ChatEvent) => void) => { listeners.add(l); return () => listeners.delete(l) } } as unknown as ChatNode
    const out = new PassThrough()
    let written = ''
    out.on('data', (b: Buffer) => { written += b.toString() })
    new JsonSession(chat, { stdout: out, stderr: new PassThrough(), env: {} }).attach()
    const id = 'cd'.repeat(16)
    const send = (e: ChatEvent): void => { for (const l of listeners) l(e) }
    for (let i = 0; i < 5; i++) send({ type: 'queued', id, to: 'carol', reason: 'no mailbox answered; will retry' })
    send({ type: 'queued', id, to: 'carol', reason: 'the key of carol changed' })
    send({ type: 'queued', id, to: 'carol', reason: 'the key of carol changed' })
    const lines = written.trim().split('\n').map(l => JSON.parse(l) as Json)
    assert.deepEqual(lines.map(o => o.reason), ['no mailbox answered; will retry', 'the key of carol changed'])
  })

  it('splits lines with bounded memory, dropping an oversize line whole', () => {
    const s = new LineSplitter(10)
    assert.deepEqual(s.push(Buffer.from('ab\r\ncd')), [{ line: 'ab' }])
    assert.deepEqual(s.push(Buffer.from('ef\n0123456789')), [{ line: 'cdef' }])
    assert.deepEqual(s.push(Buffer.from('0123')), [])
    assert.deepEqual(s.push(Buffer.from('45\nok\n')), [{ oversize: 16 }, { line: 'ok' }])
    const euro = Buffer.from('€\n')
    assert.deepEqual([...s.push(euro.subarray(0, 1)), ...s.push(euro.subarray(1))], [{ line: '€' }])
    assert.deepEqual(s.push(Buffer.from('tail')), [])
    assert.deepEqual(s.end(), [{ line: 'tail' }])
  })

  it('reads start flags, timers and the loopback allow list', () => {
    const opts = parseCli(['start', '--nick', 'al', '--relay', '--json', '--bootstrap', '/ip4/127.0.0.1/tcp/1/p2p/x'])
    assert.equal(opts.command, 'start')
    assert.equal(opts.nick, 'al')
    assert.equal(opts.relay, true)
    assert.equal(opts.acceptAnyone, false, 'contact requests by default')
    assert.equal(parseCli(['start', '--nick', 'bot', '--accept-anyone']).acceptAnyone, true)
    assert.throws(() => parseCli(['id', '--accept-anyone']), { name: 'UserError' })
    assert.deepEqual(parseCli(['start'], { P2PCHAT_BOOTSTRAP: '/ip4/10.0.0.1/tcp/1/p2p/a, /ip4/10.0.0.2/tcp/1/p2p/b' }).bootstrap, ['/ip4/10.0.0.1/tcp/1/p2p/a', '/ip4/10.0.0.2/tcp/1/p2p/b'])
    assert.deepEqual(localAllowList(['/ip4/127.0.0.1/tcp/4001/p2p/x', '/ip4/192.168.1.9/tcp/4001/p2p/y', '/ip4/8.8.8.8/tcp/1/p2p/z', '/dns4/example.org/tcp/1']),
      ['/ip4/127.0.0.1/ipcidr/8', '/ip4/192.168.0.0/ipcidr/16'])
    assert.deepEqual(localAllowList(['/ip4/172.32.0.1/tcp/1']), [])
    assert.deepEqual(parseTiming({ P2PCHAT_TIMING: '{"retryIntervalMs":500}' }), { retryIntervalMs: 500 })
    // the timers of protocol v2: the onion request timeout, re-stocking, the relays' key epochs
    assert.deepEqual(parseTiming({ P2PCHAT_TIMING: JSON.stringify({ ...TEST_TIMING, relayEpochMs: 4000, relayGraceMs: 3000 }) }), { ...TEST_TIMING, relayEpochMs: 4000, relayGraceMs: 3000 })
    assert.deepEqual(parseTiming({}), {})
    // receiptTimeoutMs was a timer of version 1: naming it now is a mistake said out loud
    for (const bad of ['nope', '[1]', '{"retryIntervalMs":-1}', '{"sleepMs":1}', '{"receiptTimeoutMs":5000}']) assert.throws(() => parseTiming({ P2PCHAT_TIMING: bad }), { name: 'UserError' })
  })
})

describe('p2pchat start --json as real processes: bootstrap, 4 relays (start --relay), alice and bob', { timeout: 300_000 }, () => {
  const net = new CliNetwork()
  let alice: CliProcess
  let bob: CliProcess
  let aliceReady: Json
  let bobReady: Json

  before(async () => {
    await net.bootstrap()
    await net.relays(4)
    const [a, b] = await Promise.all([net.start('alice'), net.start('bob')])
    alice = a.proc
    aliceReady = a.ready
    bob = b.proc
    bobReady = b.ready
    await Promise.all([net.waitForRelays(alice, 4), net.waitForRelays(bob, 4)])
  })

  after(async () => { await net.teardown() })

  it('a user announces itself with one ready line: a nick and a fingerprint, no peer id, no address', () => {
    assert.equal(aliceReady.nick, 'alice')
    assert.equal(aliceReady.relay, false)
    // the transport peer id is fresh per run and names no one: it is not shown
    assert.equal('peerId' in aliceReady, false, JSON.stringify(aliceReady))
    assert.match(String(aliceReady.fingerprint), /^[a-z2-7]{4}(-[a-z2-7]{4}){3}$/)
    assert.deepEqual(aliceReady.addrs, [], 'a user listens nowhere')
    assert.equal(alice.json().filter(o => o.event === 'ready').length, 1)
    const statuses = alice.json().filter(o => o.event === 'status').map(o => o.stage)
    assert.deepEqual(statuses, ['connecting', 'entry', 'mailboxes', 'publishing', 'ready'])
  })

  it('a relay announces itself with its peer id and addresses, and has no nick', async () => {
    const relay = net.procs.find(p => p.child.spawnargs.includes('--relay'))
    assert.ok(relay != null)
    const ready = await relay.waitForJson(o => o.event === 'ready')
    assert.equal(ready.relay, true)
    assert.match(String(ready.peerId), /^12D3Koo/)
    assert.equal('nick' in ready, false)
    for (const addr of ready.addrs as string[]) assert.match(addr, /^\/ip4\/127\.\d+\.0\.1\/tcp\/\d+\/p2p\/12D3Koo/)
    const refused = net.spawn(['start', '--relay', '--nick', 'relaybob', '--json', '--bootstrap', net.bootstrapAddr, '--data-dir', net.dataDir('nick-relay')])
    const err = await refused.waitForJson(o => o.event === 'error' || o.event === 'ready', 30_000).catch(() => undefined)
    assert.equal(await within(refused.exited, 15_000, 'start --relay --nick exiting'), 1)
    assert.match(refused.stderr + JSON.stringify(err ?? {}), /a relay has no nick/)
  })

  it('delivers messages both ways with receipts, and the recipient sees a verified sender', async () => {
    const sentA = await alice.ask({ cmd: 'send', to: 'bob', text: 'hello bob, über ✓' })
    const sentB = await bob.ask({ cmd: 'send', to: 'alice', text: 'hi alice' })
    assert.equal(sentA.event, 'sent')
    assert.equal(sentA.to, 'bob')
    assert.match(String(sentA.id), /^[0-9a-f]{32}$/)
    await alice.waitForJson(o => o.event === 'delivered' && o.id === sentA.id, 60_000)
    await bob.waitForJson(o => o.event === 'delivered' && o.id === sentB.id, 60_000)
    const atBob = await bob.waitForJson(o => o.event === 'message' && o.id === sentA.id)
    assert.equal(atBob.from, 'alice')
    assert.equal(atBob.text, 'hello bob, über ✓')
    assert.equal(atBob.verified, true, String(atBob.reason))
    assert.equal(atBob.reason, null)
    assert.equal(atBob.fingerprint, aliceReady.fingerprint)
    const atAlice = await alice.waitForJson(o => o.event === 'message' && o.id === sentB.id)
    assert.equal(atAlice.verified, true)
    assert.equal(atAlice.fingerprint, bobReady.fingerprint)
    // the store's answer before the network's: sent, then an attempt at a mailbox, stored (✓), delivered (✓✓)
    const lines = alice.json()
    const at = (pred: (o: Json) => boolean): number => lines.findIndex(pred)
    const order = ['sent', 'attempt', 'stored', 'delivered'].map(ev => at(o => o.event === ev && o.id === sentA.id))
    assert.ok(order.every(i => i >= 0) && order.every((i, k) => k === 0 || i > order[k - 1]), `sent < attempt < stored < delivered: ${JSON.stringify(order)}`)
    assert.equal(lines.filter(o => o.event === 'stored' && o.id === sentA.id).length, 1)
    // an attempt names the mailbox relay it deposits at (the start of its address), not a path
    const attempt = lines.find(o => o.event === 'attempt' && o.id === sentA.id)
    assert.equal((attempt?.path as string[]).length, 1)
    const history = await bob.ask({ cmd: 'history', nick: 'alice' })
    assert.deepEqual((history.messages as Json[]).map(m => m.text), ['hello bob, über ✓', 'hi alice'])
  })

  it('--json contact requests: a stranger\'s message is a request with no receipt until accepted; verify, conversations, read (issue 15)', async () => {
    // ivy runs with contact requests (no --accept-anyone), as a user's client does
    const ivy = (await net.start('ivy', { requests: true, env: { P2PCHAT_TIMING: JSON.stringify({ ...TEST_TIMING, requestTimeoutMs: 20_000 }) } })).proc
    await net.waitForRelays(ivy, 4)
    const sent = await alice.ask({ cmd: 'send', to: 'ivy', text: 'hello ivy' })
    const req = await ivy.waitForJson(o => o.event === 'request' && o.nick === 'alice', 60_000)
    assert.equal(req.fingerprint, aliceReady.fingerprint)
    const msg = await ivy.waitForJson(o => o.event === 'message' && o.id === sent.id)
    assert.equal(msg.request, true)
    assert.equal(msg.trust, 'unverified')
    await alice.waitForJson(o => o.event === 'stored' && o.id === sent.id, 60_000)
    const requests = await ivy.ask({ cmd: 'requests' })
    assert.deepEqual((requests.requests as Json[]).map(r => [r.nick, r.fingerprint, r.messages]), [['alice', aliceReady.fingerprint, 1]])
    assert.deepEqual((await ivy.ask({ cmd: 'conversations' })).conversations, [], 'a request is no conversation')
    // ivy writes to bob (her own action makes him a contact): his receipt comes back, alice's still does not
    const toBob = await ivy.ask({ cmd: 'send', to: 'bob', text: 'hi bob, ivy here' })
    await ivy.waitForJson(o => o.event === 'delivered' && o.id === toBob.id, 60_000)
    const fromBob = await bob.ask({ cmd: 'send', to: 'ivy', text: 'hi ivy' })
    await bob.waitForJson(o => o.event === 'delivered' && o.id === fromBob.id, 60_000)
    assert.equal(alice.json().some(o => o.event === 'delivered' && o.id === sent.id), false, 'no ✓✓ for a request before it is accepted')

    const accepted = await ivy.ask({ cmd: 'accept', nick: 'alice' })
    assert.deepEqual([accepted.event, accepted.nick, accepted.ok], ['accepted', 'alice', true])
    await alice.waitForJson(o => o.event === 'delivered' && o.id === sent.id, 60_000)
    const verify = await ivy.ask({ cmd: 'verify', nick: 'alice' })
    assert.match(String(verify.safetyNumber), /^(\d{5} ){11}\d{5}$/)
    assert.equal(verify.theirs, aliceReady.fingerprint)
    assert.equal(verify.trust, 'unverified')
    const confirmed = await ivy.ask({ cmd: 'verify', nick: 'alice', confirm: true })
    assert.equal(confirmed.trust, 'verified')
    assert.equal(confirmed.safetyNumber, verify.safetyNumber)
    const convs = (await ivy.ask({ cmd: 'conversations' })).conversations as Json[]
    const withAlice = convs.find(c => c.nick === 'alice')
    assert.equal(withAlice?.trust, 'verified')
    assert.equal(withAlice?.unread, 1)
    assert.equal((withAlice?.last as Json).text, 'hello ivy')
    const read = await ivy.ask({ cmd: 'read', nick: 'alice' })
    assert.deepEqual([read.event, read.nick, read.unread], ['read', 'alice', 0])
    assert.equal(((await ivy.ask({ cmd: 'conversations' })).conversations as Json[]).find(c => c.nick === 'alice')?.unread, 0)
    // retry and cancel answer ok:false for a message that is neither queued nor failed
    const retried = await alice.ask({ cmd: 'retry', id: String(sent.id).slice(0, 8) })
    assert.deepEqual([retried.event, retried.id, retried.ok], ['retried', sent.id, false], 'a delivered message is not sent again')
    const cancelled = await alice.ask({ cmd: 'cancel', id: 'ffffffff' })
    assert.deepEqual([cancelled.event, cancelled.ok], ['cancelled', false])
    const status = await ivy.ask({ cmd: 'status' })
    assert.equal(status.stage, 'ready')
    assert.equal(status.nick, 'ivy')
  })

  it('answers bad lines with error events and keeps working', async () => {
    const bad: Array<[string, string]> = [
      ['this is not json', 'BAD_JSON'],
      ['[1,2,3]', 'NOT_AN_OBJECT'],
      ['"send"', 'NOT_AN_OBJECT'],
      ['{"text":"no cmd"}', 'MISSING_FIELD'],
      ['{"cmd":"launch"}', 'UNKNOWN_CMD'],
      ['{"cmd":"send","to":"bob"}', 'MISSING_FIELD'],
      ['{"cmd":"send","to":5,"text":"x"}', 'BAD_FIELD'],
      ['{"cmd":"send","to":"bob","text":"x","colour":"red"}', 'BAD_FIELD'],
      ['{"cmd":"send","to":"Not A Nick!","text":"x"}', 'BAD_NICK'],
      ['{"cmd":"send","to":"bob","text":""}', 'EMPTY'],
      [JSON.stringify({ cmd: 'send', to: 'bob', text: 'x'.repeat(5000) }), 'TOO_LONG'],
      [`{"cmd":"send","to":"bob","text":"${'y'.repeat(200_000)}"}`, 'LINE_TOO_LONG']
    ]
    const before = bob.json().filter(o => o.event === 'error').length
    for (const [line] of bad) bob.child.stdin.write(line + '\n')
    await waitFor(() => bob.json().filter(o => o.event === 'error').length >= before + bad.length, 'an error event for every bad line', 10_000)
    const errors = bob.json().filter(o => o.event === 'error').slice(before)
    assert.deepEqual(errors.map(e => e.code), bad.map(([, code]) => code))
    for (const e of errors) assert.ok(typeof e.message === 'string' && e.message.length > 0 && !e.message.includes('\n'), String(e.message))
    // a tag on a bad command comes back on its error
    const tagged = await bob.ask({ cmd: 'whois' })
    assert.equal(tagged.event, 'error')
    assert.equal(tagged.code, 'MISSING_FIELD')
    // still alive and working
    const sent = await bob.ask({ cmd: 'send', to: 'alice', text: 'still here' })
    await bob.waitForJson(o => o.event === 'delivered' && o.id === sent.id, 60_000)
  })

  it('whois finds a user and its two mailboxes, and an unknown nick is reported clearly', async () => {
    const found = await alice.ask({ cmd: 'whois', nick: 'bob' })
    assert.deepEqual({ ...found, tag: undefined }, { event: 'whois', nick: 'bob', found: true, mailboxes: 2, fingerprint: bobReady.fingerprint, pin: 'same', trust: 'unverified', tag: undefined })
    const missing = await alice.ask({ cmd: 'whois', nick: 'nobody' })
    assert.equal(missing.found, false)
    assert.equal(missing.fingerprint, null)
    // nobody holds the nick and we never pinned it: failing now is honest (a queue would hand it to whoever takes the nick later)
    const sent = await alice.ask({ cmd: 'send', to: 'nobody', text: 'anyone there?' })
    const failed = await alice.waitForJson(o => o.event === 'failed' && o.id === sent.id, 60_000)
    assert.match(String(failed.reason), /nobody holds the nick "nobody"/)
    const contacts = await alice.ask({ cmd: 'contacts' })
    assert.deepEqual((contacts.contacts as Json[]).map(c => c.nick), ['bob', 'ivy'], 'a nick the user wrote to is a contact; one nobody holds is not')
  })

  it('flags an impostor whose messages claim a pinned nick with another key', async () => {
    const fake = await ChatNode.create({
      dataDir: net.dataDir('fakealice'),
      nick: 'fakealice',
      bootstrap: [net.bootstrapAddr],
      allow: LOOPBACK_ALLOW,
      timing: TEST_TIMING,
      privacy: 'fast'
    })
    try {
      await within(fake.start(), 60_000, 'the impostor joining')
      Object.defineProperty(fake, 'nick', { value: 'alice' })
      fake.send('bob', 'this is alice, honest')
      const msg = await bob.waitForJson(o => o.event === 'message' && o.text === 'this is alice, honest', 60_000)
      assert.equal(msg.from, 'alice')
      assert.equal(msg.verified, false)
      assert.ok(String(msg.reason ?? '') !== '', 'a reason is given')
      assert.notEqual(msg.fingerprint, aliceReady.fingerprint)
    } finally {
      await within(fake.stop(), 10_000, 'the impostor stopping')
    }
  })

  it('a message to a recipient who is away is stored in its mailbox, arrives once when it is back, and the restarted sender sees it delivered', async () => {
    const daveDir = net.dataDir('dave')
    // erin joins once (her name record names her two mailboxes), then goes away
    const erinFirst = await net.start('erin')
    assert.equal(await erinFirst.proc.stop(), 0)
    const first = await net.start('dave', { dataDir: daveDir })
    const sent = await first.proc.ask({ cmd: 'send', to: 'erin', text: 'waiting for you, erin' })
    await first.proc.waitForJson(o => o.event === 'stored' && o.id === sent.id, 60_000)
    assert.equal(first.proc.json().some(o => o.event === 'delivered' && o.id === sent.id), false, 'not delivered: erin is away')
    assert.equal(await first.proc.stop(), 0)

    const erin = await net.start('erin')
    assert.equal(erin.ready.fingerprint, erinFirst.ready.fingerprint, 'the same identity on the next start')
    await erin.proc.waitForJson(o => o.event === 'message' && o.id === sent.id, 60_000)
    const again = await net.start('dave', { dataDir: daveDir })
    assert.equal(again.ready.fingerprint, first.ready.fingerprint)
    // erin's receipt waits in dave's mailbox: his next start sees the message delivered
    await again.proc.waitForJson(o => o.event === 'delivered' && o.id === sent.id, 60_000)
    // a later message, delivered after it, bounds the wait for a duplicate of the first
    const later = await again.proc.ask({ cmd: 'send', to: 'erin', text: 'one more' })
    await again.proc.waitForJson(o => o.event === 'delivered' && o.id === later.id, 60_000)
    await erin.proc.waitForJson(o => o.event === 'message' && o.id === later.id)
    const seen = erin.proc.json().filter(o => o.event === 'message')
    assert.deepEqual(seen.map(o => o.text), ['waiting for you, erin', 'one more'])
    assert.equal(seen[0].verified, true, String(seen[0].reason))
    assert.equal(again.proc.json().filter(o => o.event === 'delivered' && o.id === sent.id).length, 1)
  })

  it('refuses a nick held by another key with one clear error (exit 1)', async () => {
    const taken = net.spawnUser('bob', { dataDir: net.dataDir('second-bob') })
    const err = await taken.waitForJson(o => o.event === 'error' || o.event === 'ready', 60_000)
    assert.equal(err.code, 'NICK_TAKEN', JSON.stringify(err))
    assert.match(String(err.message), /nick "bob" is held by another key/)
    assert.equal(await within(taken.exited, 15_000, 'the refused start exiting'), 1)
    assert.match(taken.stderr, /^p2pchat: nick "bob" is held by another key/m)
    assert.doesNotMatch(taken.stderr, /\n\s+at /, 'no stack trace')
  })

  it('writes only JSON on stdout and stops cleanly on SIGINT, quit and end of input', async () => {
    for (const p of net.procs) assert.doesNotThrow(() => p.json(), p.lines.join('\n'))
    for (const p of net.procs) for (const o of p.json()) assert.equal(typeof o.event, 'string')
    alice.send({ cmd: 'quit' })
    assert.equal(await within(alice.exited, 15_000, 'alice quitting'), 0)
    bob.child.stdin.end()
    assert.equal(await within(bob.exited, 15_000, 'bob at end of input'), 0)
    const refused = net.procs.filter(p => p.child.spawnargs.includes(net.dataDir('second-bob')) || p.child.spawnargs.includes(net.dataDir('nick-relay')))
    const codes = await Promise.all(net.procs.filter(p => !refused.includes(p)).map(async p => await p.stop()))
    assert.deepEqual(codes.filter(c => c !== 0), [], 'every process exits 0')
  })
})
