import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { parseChatLine } from '../cli/chat-commands.ts'
import { safeText } from '../cli/format.ts'
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
      ['/accept carol', undefined, { kind: 'accept', nick: 'carol' }],
      ['/whois', undefined, { kind: 'error', message: 'usage: /whois <nick>' }],
      ['/whois a b', undefined, { kind: 'error', message: '/whois takes one nick; usage: /whois <nick>' }],
      ['/history', 'bob', { kind: 'history', nick: 'bob' }],
      ['/QUIT', undefined, { kind: 'quit' }],
      ['/nope', undefined, { kind: 'error', message: 'unknown command /nope (/help lists commands)' }]
    ]
    for (const [line, open, want] of cases) assert.deepEqual(parseChatLine(line, open), want, line)
  })

  it('never lets text from the network drive the terminal', () => {
    assert.equal(safeText('hi\x1b[2J\x1b]0;pwned\x07 there'), 'hi\\u001b[2J\\u001b]0;pwned\\u0007 there')
    assert.equal(safeText('two\nlines\r\n'), 'two ⏎ lines ⏎ ')
    assert.equal(safeText('über ✓ \u202eevil'), 'über ✓ \\u202eevil')
    assert.equal(safeText('tab\there'), 'tab\there')
  })
})

describe('p2pchat start in a real terminal (tmux), with bob and 4 relays in process', { timeout: 180_000 }, () => {
  const net = new ChatNetwork()
  const term = new TmuxSession()
  let bob: TestUser

  before(async () => {
    const [boot] = await net.bootstrap()
    await net.startRelays(4)
    bob = await net.user('bob')
    // no --listen: a user only dials out, to a bootstrap node once and to its entry relay
    term.start([process.execPath, BIN, 'start', '--nick', 'alice', '--bootstrap', boot, '--data-dir', join(net.root, 'alice')],
      { P2PCHAT_BOOTSTRAP: '', P2PCHAT_TIMING: JSON.stringify(TEST_TIMING) })
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

  it('prints an incoming message with its time, sender and verified mark', async () => {
    const { id } = bob.chat.send('alice', 'hi alice, bob here')
    await term.waitForScreen(/^\d\d:\d\d:\d\d bob ✓: hi alice, bob here$/m, 60_000)
    await waitFor(() => eventsOf(bob, 'delivered').some(e => e.id === id), 'bob\'s receipt', 60_000)
  })

  it('/open sends plain lines; errors are one line and the prompt goes on', async () => {
    term.type('/open bob')
    await term.waitForScreen(/talking to bob \(fingerprint [a-z2-7-]{19}\)/)
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
    const screen = await term.waitForScreen(/bob \(directory\): +[a-z2-7-]{19}/)
    assert.match(screen, new RegExp(`bob \\(pinned\\): +${bob.chat.fingerprint}`))
    assert.doesNotMatch(screen, /\n\s+at /, 'no stack trace on the screen')
    await term.waitForScreen(/^\[bob\]> ?$/m)
  })

  it('stops cleanly on Ctrl-C (exit 0)', async () => {
    term.keys('C-c')
    assert.equal(await term.exitStatus(), 0)
    assert.match(term.screen(), /bye/)
  })
})
