import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { PassThrough, Readable } from 'node:stream'
import { parseChatLine } from '../cli/chat-commands.ts'
import { safeText, splitText } from '../cli/format.ts'
import { InteractiveSession } from '../cli/interactive.ts'
import type { ChatEvent, ChatNode } from '../node/chat-node.ts'
import { privacyLevel } from '../node/privacy.ts'
import { BIN } from './helpers/cli.ts'
import { ChatNetwork, eventsOf } from './helpers/chat-network.ts'
import type { TestUser } from './helpers/chat-network.ts'
import { TEST_TIMING } from './helpers/cli-network.ts'
import { TmuxSession } from './helpers/tmux.ts'
import { waitFor } from './helpers/wait.ts'

describe('interactive: pure parsing and display', () => {
  it('parses slash commands and plain lines', () => {
    const cases: Array<[string, string | undefined, unknown]> = [
      ['/msg bob hello  there', undefined, { kind: 'msg', to: 'bob', text: 'hello  there' }],
      ['/msg bob#abcd-efgh-ijkl-mnop hi', undefined, { kind: 'msg', to: 'bob#abcd-efgh-ijkl-mnop', text: 'hi' }],
      ['/msg bob bob', undefined, { kind: 'msg', to: 'bob', text: 'bob' }],
      ['/msg bob', undefined, { kind: 'error', message: 'usage: /msg <nick> <text>' }],
      ['hello', 'bob', { kind: 'msg', to: 'bob', text: 'hello' }],
      ['//not a command', 'bob', { kind: 'msg', to: 'bob', text: '/not a command' }],
      ['hello', undefined, { kind: 'error', message: 'no contact open: /msg <nick> <text>, or /open <nick> first (/help lists commands)' }],
      ['   ', undefined, { kind: 'none' }],
      ['/open carol', undefined, { kind: 'open', nick: 'carol' }],
      ['/verify carol', undefined, { kind: 'verify', nick: 'carol' }],
      ['/verify carol accept', undefined, { kind: 'accept', nick: 'carol' }],
      ['/verify carol confirm', undefined, { kind: 'confirm', nick: 'carol' }],
      ['/verify carol maybe', undefined, { kind: 'error', message: 'usage: /verify <nick> [confirm]' }],
      ['/requests', undefined, { kind: 'requests' }],
      ['/deny dave', undefined, { kind: 'deny', nick: 'dave' }],
      ['/block dave', undefined, { kind: 'block', nick: 'dave' }],
      ['/list', undefined, { kind: 'list' }],
      ['/retry 0123ABCD', undefined, { kind: 'retry', id: '0123abcd' }],
      ['/cancel 0123abcd', undefined, { kind: 'cancel', id: '0123abcd' }],
      ['/cancel xyz', undefined, { kind: 'error', message: 'usage: /cancel <id> (the 8 hex digits shown in [brackets])' }],
      ['/accept carol', undefined, { kind: 'accept', nick: 'carol' }],
      ['/whois', undefined, { kind: 'error', message: 'usage: /whois <nick>' }],
      ['/whois a b', undefined, { kind: 'error', message: '/whois takes one nick; usage: /whois <nick>' }],
      ['/history', 'bob', { kind: 'history', nick: 'bob' }],
      ['/QUIT', undefined, { kind: 'quit' }],
      ['/nope', undefined, { kind: 'error', message: 'unknown command /nope (/help lists commands)' }]
    ]
    for (const [line, open, want] of cases) assert.deepEqual(parseChatLine(line, open), want, line)
  })

  it('splits long text into parts within the byte limit, at a space where there is one, never inside a character', () => {
    assert.deepEqual(splitText('short', 1024), ['short'])
    const words = 'word '.repeat(500).trim()
    const parts = splitText(words, 1024)
    assert.equal(parts.join(''), words)
    assert.ok(parts.every(p => Buffer.byteLength(p) <= 1024))
    assert.ok(parts.slice(0, -1).every(p => p.endsWith(' ')), 'cut after a space')
    const emoji = '🙂'.repeat(600) // 4 bytes each, no space
    const e = splitText(emoji, 1024)
    assert.deepEqual(e.map(p => Buffer.byteLength(p)), [1024, 1024, 352])
    assert.equal(e.join(''), emoji)
  })

  it('never lets text from the network drive the terminal', () => {
    assert.equal(safeText('hi\x1b[2J\x1b]0;pwned\x07 there'), 'hi\\u001b[2J\\u001b]0;pwned\\u0007 there')
    assert.equal(safeText('two\nlines\r\n'), 'two ⏎ lines ⏎ ')
    assert.equal(safeText('über ✓ \u202eevil'), 'über ✓ \\u202eevil')
    assert.equal(safeText('tab\there'), 'tab\there')
  })
})

/** The ChatNode surface InteractiveSession uses, with events fed by the test. */
function fakeChat (init: { conversations?: unknown[], requests?: unknown[] } = {}): { chat: ChatNode, emit: (e: ChatEvent) => void } {
  const listeners = new Set<(e: ChatEvent) => void>()
  const fake = {
    nick: 'alice',
    fingerprint: 'aaaa-bbbb-cccc-dddd',
    timing: { requestTimeoutMs: 1000 },
    privacy: privacyLevel('fast'),
    on: (l: (e: ChatEvent) => void) => { listeners.add(l); return () => listeners.delete(l) },
    relays: () => [],
    conversations: () => init.conversations ?? [],
    requests: () => init.requests ?? [],
    markRead: () => {}
  }
  return { chat: fake as unknown as ChatNode, emit: (e) => { for (const l of listeners) l(e) } }
}

function capture (tty: boolean): { out: PassThrough & { isTTY?: boolean }, text: () => string } {
  const out: PassThrough & { isTTY?: boolean } = new PassThrough()
  if (tty) out.isTTY = true
  let text = ''
  out.on('data', (b: Buffer) => { text += b.toString() })
  return { out, text: () => text }
}

describe('interactive: what the session prints (a stand-in node)', () => {
  it('bug 3: a queued message is shown once, however often the outbox retries it', () => {
    const { chat, emit } = fakeChat()
    const { out, text } = capture(false)
    const session = new InteractiveSession(chat, out)
    session.attach()
    for (let i = 0; i < 10; i++) emit({ type: 'queued', id: 'ab'.repeat(16), to: 'carol', reason: 'carol cannot be reached now; will retry' })
    assert.equal(text().split('\n').filter(l => l.includes('queued for carol')).length, 1, text())
    session.close()
  })

  it('rings the terminal bell for a message outside the open conversation; marks trust and requests', () => {
    const { chat, emit } = fakeChat()
    const { out, text } = capture(true)
    const session = new InteractiveSession(chat, out)
    session.attach()
    session.close() // no spinner: lines are printed as they come
    emit({ type: 'message', id: '01'.repeat(16), from: 'dave', fingerprint: 'x', verified: true, trust: 'unverified', request: true, reason: null, text: 'hi', ts: Date.now() })
    emit({ type: 'message', id: '02'.repeat(16), from: 'bob', fingerprint: 'x', verified: true, trust: 'verified', request: false, reason: null, text: 'yo', ts: Date.now() })
    const shown = text()
    assert.match(shown, /dave.*· \(contact request: \/accept, \/deny or \/block\).*: hi\x07/)
    assert.match(shown, /bob.*✓.*: yo\x07/)
  })

  it('shows what arrived while away at start', async () => {
    const { chat } = fakeChat({
      conversations: [{ nick: 'bob', unread: 2, last: { id: '03'.repeat(16), direction: 'in', text: 'are you there?', ts: Date.now(), state: 'received' }, fingerprint: 'x', trust: 'unverified' }],
      requests: [{ nick: 'dave', fingerprint: 'y', firstSeen: Date.now(), messages: 1 }]
    })
    const { out, text } = capture(false)
    const session = new InteractiveSession(chat, out)
    await session.run(Readable.from([]), 0)
    assert.match(text(), /while you were away:\n {2}bob: 2 new, last \d\d:\d\d:\d\d: are you there\? {2}\(\/open bob\)\n {2}1 contact request \(dave\): \/requests/)
  })
})

describe('p2pchat start in a real terminal (tmux), with bob and 4 relays in process', { timeout: 180_000 }, () => {
  const net = new ChatNetwork()
  const term = new TmuxSession()
  let bob: TestUser

  before(async () => {
    const [boot] = await net.bootstrap()
    await net.startRelays(4)
    bob = await net.user('bob', { timing: { requestTimeoutMs: 20_000 } })
    // no --listen: a user only dials out, to a bootstrap node once and to its entry relay
    term.start([process.execPath, BIN, 'start', '--nick', 'alice', '--bootstrap', boot, '--data-dir', join(net.root, 'alice')],
      // an onion request may take long on a loaded machine: 20 s, not 5
      // at `fast`: with mixing delays a receipt may overtake the mailbox's stored answer (✓✓ then shows
      // without the ✓ line), and what this test pins is the terminal, not the mixing (test/mixing*.test.ts)
      { P2PCHAT_BOOTSTRAP: '', P2PCHAT_PRIVACY: 'fast', P2PCHAT_TIMING: JSON.stringify({ ...TEST_TIMING, requestTimeoutMs: 20_000 }) })
    await term.waitForScreen(/p2pchat: you are alice/, 60_000)
  })

  after(async () => {
    term.kill()
    await net.teardown()
  })

  it('shows a prompt, and /msg gets ✓ stored (in a mailbox of bob\'s), then ✓✓ delivered', async () => {
    await term.waitForScreen(/^> ?$/m)
    term.type('/msg bob hello from a terminal')
    const screen = await term.waitForScreen(/\[([0-9a-f]{8})\] ✓✓ delivered to bob/, 60_000)
    const id = /you → bob \[([0-9a-f]{8})\]: hello from a terminal/.exec(screen)?.[1]
    assert.ok(id != null, screen)
    const stored = screen.indexOf(`[${id}] ✓ stored in a mailbox of bob`)
    const delivered = screen.indexOf(`[${id}] ✓✓ delivered to bob`)
    assert.ok(stored >= 0 && stored < delivered, `✓ stored before ✓✓ delivered:\n${screen}`)
    const got = eventsOf(bob, 'message').find(m => m.text === 'hello from a terminal')
    assert.equal(got?.verified, true)
    assert.ok(got?.id.startsWith(id))
  })

  it('prints an incoming message with its time, sender and trust mark (· signed, not yet verified)', async () => {
    const { id } = bob.chat.send('alice', 'hi alice, bob here')
    await term.waitForScreen(/^\d\d:\d\d:\d\d bob ·: hi alice, bob here/m, 60_000)
    await waitFor(() => eventsOf(bob, 'delivered').some(e => e.id === id), 'bob\'s receipt', 60_000)
  })

  it('/status names the privacy level and says there is no cover traffic at fast', async () => {
    term.type('/status')
    await term.waitForScreen(/privacy fast: no mixing delays, no cover traffic[^\n]*\n\s*no cover traffic: an observer of your link sees when you send/, 30_000)
  })

  it('/open sends plain lines; errors are one line and the prompt goes on', async () => {
    term.type('/open bob')
    await term.waitForScreen(/talking to bob \(fingerprint [a-z2-7-]{19}, not verified\)/)
    term.type('a plain line for bob')
    await waitFor(() => eventsOf(bob, 'message').some(m => m.text === 'a plain line for bob'), 'the plain line at bob', 60_000)
    await term.waitForScreen(/you → bob \[[0-9a-f]{8}\]: a plain line for bob/)
    term.type('/frobnicate')
    await term.waitForScreen(/^error: unknown command \/frobnicate/m)
    term.type('/msg Not-A-Nick! hi')
    await term.waitForScreen(/^error: invalid nick "Not-A-Nick!"/m)
    term.type('/whois nobody')
    await term.waitForScreen(/^nobody: not in the directory \(nobody holds that nick\)/m)
    term.type('/whois bob')
    await term.waitForScreen(new RegExp(`^bob: fingerprint ${bob.chat.fingerprint} \\(.*\\), 2 mailboxes$`, 'm'))
    term.type('/verify bob')
    const screen = await term.waitForScreen(/bob's fingerprint: [a-z2-7-]{19}/)
    assert.match(screen, new RegExp(`bob's fingerprint: ${bob.chat.fingerprint}`))
    assert.doesNotMatch(screen, /\n\s+at /, 'no stack trace on the screen')
    await term.waitForScreen(/^\[bob\]> ?$/m)
  })

  it('bug 7: /verify shows the safety number bob sees too; /verify bob confirm makes his messages ✓', async () => {
    const number = bob.chat.safetyNumber('alice').safetyNumber
    const screen = await term.waitForScreen(/safety number with bob \(not verified\):\n {2}(\d{5} ){5}\d{5}\n/)
    assert.ok(screen.includes(`  ${number.slice(0, 35)}\n  ${number.slice(36)}`), `the same 60 digits as bob's:\n${screen}`)
    term.type('/verify bob confirm')
    await term.waitForScreen(/^bob is now verified ✓/m)
    bob.chat.send('alice', 'now verified')
    await term.waitForScreen(/^\d\d:\d\d:\d\d bob ✓: now verified/m, 60_000)
  })

  it('requests: a stranger\'s message waits under /requests with no receipt until /accept; /list shows unread counts', async () => {
    const kim = await net.user('kim', { acceptAnyone: false, timing: { requestTimeoutMs: 20_000 } })
    const { id } = kim.chat.send('alice', 'hello from kim')
    await term.waitForScreen(/contact request from kim \(fingerprint [a-z2-7-]{19}\)/, 60_000)
    await term.waitForScreen(/kim · \(contact request: \/accept, \/deny or \/block\): hello from kim/)
    await waitFor(() => eventsOf(kim, 'stored').some(e => e.id === id), 'kim\'s ✓', 60_000)
    term.type('/requests')
    await term.waitForScreen(/^kim \(fingerprint [a-z2-7-]{19}\), since [\d:]+, 1 message:\n {2}[\d:]+ hello from kim/m)
    // bob's message to alice after kim's is receipted; kim's is not (a receipt would prove alice online)
    const fromBob = bob.chat.send('alice', 'receipt me')
    await waitFor(() => eventsOf(bob, 'delivered').some(e => e.id === fromBob.id), 'bob\'s receipt', 60_000)
    assert.equal(eventsOf(kim, 'delivered').some(e => e.id === id), false, 'no ✓✓ for kim before /accept')
    term.type('/accept kim')
    await term.waitForScreen(/^kim is now a contact/m)
    await waitFor(() => eventsOf(kim, 'delivered').some(e => e.id === id), 'kim\'s ✓✓ after /accept', 60_000)
    term.type('/list')
    // presence: when kim's message reached alice (nothing is sent to learn it)
    await term.waitForScreen(/^ {2}kim {14}unverified +1 unread +[\d:]+ hello from kim {2}\(heard \d{4}-\d\d-\d\d [\d:]+, message\)/m)
    term.type('/open kim')
    await term.waitForScreen(/^1 unread:\n-- \d{4}-\d\d-\d\d --\n[\d:]+ kim ·: hello from kim/m)
  })

  it('Tab completes commands and nicks', async () => {
    term.keys('/ver', 'Tab')
    // (the screen's trailing blanks are trimmed: the space completion adds is not seen)
    await term.waitForScreen(/^\[kim\]> \/verify ?$/m)
    term.keys('k', 'Tab')
    await term.waitForScreen(/^\[kim\]> \/verify kim ?$/m)
    term.keys('Enter')
    await term.waitForScreen(/^safety number with kim \(not verified\):/m)
  })

  it('a line ending in \\ goes on on the next line (one message); text over 1,024 bytes goes as several messages', async () => {
    const kim = net.users.find(u => u.chat.nick === 'kim')
    assert.ok(kim != null)
    term.type('first line\\')
    await term.waitForScreen(/^… ?$/m)
    term.type('second line')
    await waitFor(() => eventsOf(kim, 'message').some(m => m.text === 'first line\nsecond line'), 'one message of two lines at kim', 60_000)
    const long = Array.from({ length: 300 }, (_, i) => `w${i}`).join(' ') // 1,489 bytes
    term.type(`/msg kim ${long}`)
    await term.waitForScreen(/you → kim \[[0-9a-f]{8}\] \(2\/2\): /, 60_000)
    await waitFor(() => eventsOf(kim, 'message').filter(m => m.text.startsWith('w')).length >= 2, 'both parts at kim', 60_000)
    // the parts may arrive in either order: the first is the one that starts with w0
    const parts = eventsOf(kim, 'message').filter(m => m.text.startsWith('w')).map(m => m.text).sort((a, b) => Number(b.startsWith('w0 ')) - Number(a.startsWith('w0 ')))
    assert.equal(parts.length, 2)
    assert.equal(parts.join(''), long)
    assert.ok(parts.every(p => Buffer.byteLength(p) <= 1024))
  })

  it('stops cleanly on Ctrl-C (exit 0)', async (t) => {
    t.diagnostic(`the session's screen (README "what a user sees"):\n${term.screen()}`)
    term.keys('C-c')
    assert.equal(await term.exitStatus(), 0)
    assert.match(term.screen(), /bye/)
  })
})
