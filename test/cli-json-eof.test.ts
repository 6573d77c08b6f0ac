/**
 * `p2pchat start --json` fed by a pipe, as a script would: the commands and then end of input at
 * once. Every command read is answered and every message sent reaches a state the script can see
 * (stored in a mailbox of the recipient, delivered, failed or queued) before the process exits 0.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { CliNetwork } from './helpers/cli-network.ts'
import type { CliProcess } from './helpers/cli.ts'
import { within } from './helpers/wait.ts'

type Json = Record<string, unknown>

describe('p2pchat start with piped input: end of input finishes the work already read', { timeout: 240_000 }, () => {
  const net = new CliNetwork()
  let bob: CliProcess
  let bobReady: Json

  before(async () => {
    await net.bootstrap()
    await net.relays(4)
    const b = await net.start('bob')
    bob = b.proc
    bobReady = b.ready
    await net.waitForRelays(bob, 4)
  })

  after(async () => { await net.teardown() })

  it('answers whois, has a send stored in a mailbox, reports a send to nobody as failed, refuses a long one, then exits 0', async () => {
    const alice = net.spawnUser('alice')
    const lines = [
      { cmd: 'whois', nick: 'bob', tag: 'w' },
      { cmd: 'send', to: 'bob', text: 'piped hello, bob', tag: 's' },
      { cmd: 'send', to: 'nobodyhere', text: 'is anyone there?', tag: 'q' },
      { cmd: 'send', to: 'bob', text: 'x'.repeat(1025), tag: 'long' }
    ]
    // everything at once, then end of input, before alice has even joined the network
    alice.child.stdin.end(lines.map(l => JSON.stringify(l) + '\n').join(''))
    const code = await within(alice.exited, 120_000, 'alice finishing at end of input')
    assert.equal(code, 0, alice.stderr)
    const out = alice.json()
    const byTag = (tag: string): Json | undefined => out.find(o => o.tag === tag)

    const whois = byTag('w')
    assert.deepEqual({ event: whois?.event, found: whois?.found, mailboxes: whois?.mailboxes, fingerprint: whois?.fingerprint },
      { event: 'whois', found: true, mailboxes: 2, fingerprint: bobReady.fingerprint }, JSON.stringify(out))

    const sent = byTag('s')
    assert.equal(sent?.event, 'sent')
    // end of input waits until a mailbox of bob's holds it (✓): the mailbox, not alice, delivers it from then on
    assert.ok(out.some(o => o.event === 'stored' && o.id === sent?.id), `a stored event for the send: ${JSON.stringify(out)}`)
    assert.equal(out.some(o => o.event === 'queued' && o.id === sent?.id), false, JSON.stringify(out))
    // and bob gets it though alice has gone
    const got = await bob.waitForJson(o => o.event === 'message' && o.id === sent?.id, 60_000)
    assert.equal(got.text, 'piped hello, bob')
    assert.equal(got.from, 'alice')

    const toNobody = byTag('q')
    assert.equal(toNobody?.event, 'sent')
    const failed = out.find(o => o.event === 'failed' && o.id === toNobody?.id)
    assert.match(String(failed?.reason), /nobody holds the nick/, `a failed event for the nick nobody holds: ${JSON.stringify(out)}`)

    const long = byTag('long')
    assert.equal(long?.event, 'error')
    assert.equal(long?.code, 'TOO_LONG')
    assert.equal(long?.message, 'message too long: 1025 bytes of UTF-8 text, at most 1024 per message; send it as several messages')

    assert.equal(out.filter(o => o.event === 'ready').length, 1)
  })

  it('a send to a recipient who is gone is stored in its mailbox: end of input reports stored and exits 0 without waiting for a receipt', async () => {
    // carol is in the directory (her record names her mailboxes) but gone
    const carol = await net.start('carol')
    assert.equal(carol.proc.child.kill('SIGKILL'), true)
    await within(carol.proc.exited, 10_000, 'carol dying')
    const dave = net.spawnUser('dave')
    dave.child.stdin.end(JSON.stringify({ cmd: 'send', to: 'carol', text: 'are you there, carol?', tag: 'c' }) + '\n')
    const code = await within(dave.exited, 120_000, 'dave finishing at end of input')
    assert.equal(code, 0, dave.stderr)
    const out = dave.json()
    const sent = out.find(o => o.tag === 'c')
    assert.equal(sent?.event, 'sent', JSON.stringify(out))
    const final = out.filter(o => o.id === sent?.id && ['stored', 'delivered', 'failed', 'queued'].includes(String(o.event)))
    assert.deepEqual(final.map(o => o.event), ['stored'], `one state for the message, stored: ${JSON.stringify(out)}`)
    assert.ok(out.some(o => o.event === 'attempt' && o.id === sent?.id), 'it was really sent, not just read')
  })

  it('does the same without --json: a piped interactive session carries out every line and reports delivery', async () => {
    const erin = net.spawn(['start', '--nick', 'erin', '--bootstrap', net.bootstrapAddr, '--data-dir', net.dataDir('erin')])
    erin.child.stdin.end('/whois bob\n/msg bob hello from a pipe\n')
    const code = await within(erin.exited, 120_000, 'erin finishing at end of input')
    assert.equal(code, 0, erin.stderr)
    const out = erin.lines.join('\n')
    assert.ok(erin.lines.some(l => l.includes(`bob: fingerprint ${String(bobReady.fingerprint)}`)), out)
    const sent = /you → bob \[([0-9a-f]+)\]: hello from a pipe/.exec(out)
    assert.ok(sent != null, out)
    // end of input waits for ✓ (stored in bob's mailbox); bob is online, so ✓✓ usually follows, but need not come before the exit
    assert.ok(erin.lines.some(l => l.includes(`[${sent[1]}] ✓ stored in a mailbox of bob`)), out)
    const got = await bob.waitForJson(o => o.event === 'message' && o.text === 'hello from a pipe', 60_000)
    assert.equal(got.from, 'erin')
  })
})
