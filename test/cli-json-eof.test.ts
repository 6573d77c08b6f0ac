/**
 * `p2pchat start --json` fed by a pipe, as a script would: the commands and then end of input at
 * once. Every command read is answered and every message sent reaches a state the script can see
 * (delivered, failed or queued) before the process exits 0.
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
    await Promise.all([1, 2, 3].map(async i => await net.start(`relay${i}`, { relay: true })))
    const b = await net.start('bob')
    bob = b.proc
    bobReady = b.ready
    await net.waitForRelays(bob, 3)
  })

  after(async () => { await net.teardown() })

  it('answers whois, delivers a send, reports a queued one, then exits 0', async () => {
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
    assert.deepEqual({ event: whois?.event, found: whois?.found, peerId: whois?.peerId, fingerprint: whois?.fingerprint },
      { event: 'whois', found: true, peerId: bobReady.peerId, fingerprint: bobReady.fingerprint }, JSON.stringify(out))

    const sent = byTag('s')
    assert.equal(sent?.event, 'sent')
    assert.ok(out.some(o => o.event === 'delivered' && o.id === sent?.id), `a delivered event for the send: ${JSON.stringify(out)}`)
    // and bob has it (his process is still running, so the event can arrive just after alice's receipt)
    const got = await bob.waitForJson(o => o.event === 'message' && o.id === sent?.id, 15_000)
    assert.equal(got.text, 'piped hello, bob')
    assert.equal(got.from, 'alice')

    const queuedSend = byTag('q')
    assert.equal(queuedSend?.event, 'sent')
    const queued = out.find(o => o.event === 'queued' && o.id === queuedSend?.id)
    assert.ok(queued != null, `a queued event for the unreachable recipient: ${JSON.stringify(out)}`)

    const long = byTag('long')
    assert.equal(long?.event, 'error')
    assert.equal(long?.code, 'TOO_LONG')
    assert.equal(long?.message, 'message too long: 1025 bytes of UTF-8 text, at most 1024 per message; send it as several messages')

    assert.equal(out.filter(o => o.event === 'ready').length, 1)
  })

  it('waits for the outcome of a send to a recipient that stops answering, and reports it before exiting 0', async () => {
    // carol is in the directory (her record lives on) but gone: every attempt times out
    const carol = await net.start('carol')
    assert.equal(carol.proc.child.kill('SIGKILL'), true)
    await within(carol.proc.exited, 10_000, 'carol dying')
    const dave = net.spawn(['start', '--json', '--nick', 'dave', '--listen', '/ip4/127.0.0.1/tcp/0', '--bootstrap', net.bootstrapAddr, '--data-dir', net.dataDir('dave')])
    // with the test timers: 4 attempts 5 s apart, then failed, within the 30 s end-of-input bound
    dave.child.stdin.end(JSON.stringify({ cmd: 'send', to: 'carol', text: 'are you there, carol?', tag: 'c' }) + '\n')
    const code = await within(dave.exited, 120_000, 'dave finishing at end of input')
    assert.equal(code, 0, dave.stderr)
    const out = dave.json()
    const sent = out.find(o => o.tag === 'c')
    assert.equal(sent?.event, 'sent', JSON.stringify(out))
    const final = out.filter(o => o.id === sent?.id && ['delivered', 'failed', 'queued'].includes(String(o.event)))
    assert.deepEqual(final.map(o => o.event), ['failed'], `one final state for the message: ${JSON.stringify(out)}`)
    assert.ok(out.some(o => o.event === 'attempt' && o.id === sent?.id), 'it was really sent, not just read')
  })

  it('does the same without --json: a piped interactive session carries out every line and reports delivery', async () => {
    const erin = net.spawn(['start', '--nick', 'erin', '--listen', '/ip4/127.0.0.1/tcp/0', '--bootstrap', net.bootstrapAddr, '--data-dir', net.dataDir('erin')])
    erin.child.stdin.end('/whois bob\n/msg bob hello from a pipe\n')
    const code = await within(erin.exited, 120_000, 'erin finishing at end of input')
    assert.equal(code, 0, erin.stderr)
    const out = erin.lines.join('\n')
    assert.ok(erin.lines.some(l => l.includes(`bob: fingerprint ${String(bobReady.fingerprint)}`)), out)
    const sent = /you → bob \[([0-9a-f]+)\]: hello from a pipe/.exec(out)
    assert.ok(sent != null, out)
    assert.ok(erin.lines.some(l => l.includes(`[${sent[1]}] ✓✓ delivered to bob`)), out)
    const got = await bob.waitForJson(o => o.event === 'message' && o.text === 'hello from a pipe', 15_000)
    assert.equal(got.from, 'erin')
  })
})
