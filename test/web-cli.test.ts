/**
 * `--web` as real processes: `p2pchat demo --web --json` prints a login URL for alice and for bob,
 * each URL logs a client in once and serves the app, and Ctrl-C stops it cleanly; `start`'s web
 * flags are checked before anything starts.
 */
import assert from 'node:assert/strict'
import { request } from 'node:http'
import { describe, it } from 'node:test'
import { parseCli } from '../cli/args.ts'
import { WebSocket } from 'ws'
import { CliProcess, runCli } from './helpers/cli.ts'
import { CliNetwork } from './helpers/cli-network.ts'
import { waitFor, within } from './helpers/wait.ts'

async function get (url: URL, cookie?: string): Promise<{ status: number, cookie?: string, type?: string }> {
  return await new Promise((resolve, reject) => {
    const req = request(url, { headers: cookie == null ? {} : { cookie } }, res => {
      res.resume()
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, cookie: res.headers['set-cookie']?.[0]?.split(';')[0], type: res.headers['content-type'] }) })
    })
    req.on('error', reject)
    req.end()
  })
}

describe('--web on the command line', { timeout: 180_000 }, () => {
  it('parses --web, --web-port and --web-host, and refuses a bad port', () => {
    const o = parseCli(['start', '--nick', 'alice', '--web', '--web-port', '8080'])
    assert.equal(o.web, true)
    assert.equal(o.webPort, 8080)
    assert.equal(o.webHost, undefined)
    assert.throws(() => parseCli(['start', '--web', '--web-port', '70000']), { name: 'UserError', message: /--web-port must be a port number/ })
    assert.throws(() => parseCli(['start', '--web', '--web-port', 'x1']), { name: 'UserError' })
    assert.throws(() => parseCli(['bootstrap', '--web']), { name: 'UserError', message: /does not take --web/ })
  })

  it('start: --web-port without --web, and --web for a relay, are one-line errors', async () => {
    const a = await runCli(['start', '--nick', 'alice', '--web-port', '9000', '--bootstrap', '/ip4/127.0.0.1/tcp/9/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN'])
    assert.equal(a.code, 1)
    assert.match(a.stderr, /^p2pchat: --web-port and --web-host go with --web\n$/)
    const b = await runCli(['start', '--relay', '--web'])
    assert.equal(b.code, 1)
    assert.match(b.stderr, /a relay has no web app/)
  })

  it('demo --web prints two browser-ready URLs, each logs in once, and Ctrl-C stops it', async () => {
    const p = new CliProcess(['demo', '--web', '--json'])
    try {
      await p.waitForJson(o => o.event === 'serving', 120_000)
      const webs = p.json().filter(o => o.event === 'web')
      assert.deepEqual(webs.map(w => w.name), ['alice', 'bob'])
      const urls = webs.map(w => new URL(String(w.url)))
      assert.notEqual(urls[0].port, urls[1].port)
      for (const url of urls) {
        assert.equal(url.hostname, '127.0.0.1')
        const login = await get(url)
        assert.equal(login.status, 303)
        assert.ok(login.cookie?.startsWith(`p2pchat-${url.port}=`), login.cookie)
        assert.equal((await get(url)).status, 403, 'the link works once')
        const app = await get(new URL('/app.js', url), login.cookie)
        assert.equal(app.status, 200)
        assert.match(String(app.type), /^text\/javascript/)
        assert.equal((await get(new URL('/app.js', url))).status, 403)
      }
      // a new link for each used one
      await p.waitForJson(o => o.event === 'web' && o.name === 'bob' && o.url !== webs[1].url, 10_000)
    } finally {
      assert.equal(await p.stop(), 0, p.stderr)
    }
    assert.ok(p.json().some(o => o.event === 'done' && o.ok === true))
  })

  it('start --web serves the app instead of the terminal chat: a login URL on stdout, the --json protocol on the WebSocket, Ctrl-C stops it', async () => {
    const net = new CliNetwork()
    try {
      await net.bootstrap()
      await net.relays(3)
      const alice = net.spawn(['start', '--nick', 'alice', '--web', '--bootstrap', net.bootstrapAddr, '--data-dir', net.dataDir('alice')])
      const LINE = /^web app: open (http:\/\/127\.0\.0\.1:\d+\/\?token=[A-Za-z0-9_-]{43}) \(the link works once; keep it to yourself\)$/
      await waitFor(() => alice.lines.some(l => LINE.test(l)) || alice.child.exitCode != null, () => `the login URL; stdout: ${alice.lines.join('\n')}; stderr: ${alice.stderr}`, 90_000)
      const url = new URL((LINE.exec(alice.lines.find(l => LINE.test(l)) ?? '') ?? [])[1] ?? 'http://invalid/')
      const login = await get(url)
      assert.equal(login.status, 303)
      await waitFor(() => alice.lines.some(l => l.startsWith('web app: that link is used up; a new one for another browser: http://127.0.0.1:')), 'a new link', 10_000)
      const ws = new WebSocket(`ws://${url.host}/ws`, { headers: { origin: url.origin, cookie: login.cookie ?? '' } })
      const events: Array<Record<string, unknown>> = []
      ws.on('message', d => { events.push(JSON.parse(String(d))) })
      await within(new Promise(resolve => ws.once('open', resolve)), 10_000, 'the WebSocket opening')
      ws.send(JSON.stringify({ cmd: 'relays', tag: 'r' }))
      await waitFor(() => events.some(e => e.tag === 'r'), 'the relays answer', 10_000)
      assert.equal(events[0].event, 'ready')
      assert.equal(events[0].nick, 'alice')
      assert.ok(Number(events.find(e => e.tag === 'r')?.count) >= 3)
      ws.close()
      assert.equal(await alice.stop(), 0, alice.stderr)
      assert.doesNotMatch(alice.stderr, /token=/, 'the token is not logged')

      // --json as well, on another loopback address: the link is a JSON line, the address a warning
      const bob = net.spawn(['start', '--nick', 'bob', '--json', '--web', '--web-host', '127.0.0.2', '--bootstrap', net.bootstrapAddr, '--data-dir', net.dataDir('bob')])
      const link = new URL(String((await bob.waitForJson(o => o.event === 'web', 90_000)).url))
      assert.equal(link.hostname, '127.0.0.2')
      assert.match(bob.stderr, /^p2pchat: warning: the web app listens on 127\.0\.0\.2, not only on this machine's 127\.0\.0\.1/m)
      assert.equal((await get(link)).status, 303)
      assert.ok(bob.json().some(o => o.event === 'ready' && o.nick === 'bob'))
      bob.child.stdin.end()
      assert.equal(await within(bob.exited, 30_000, 'bob exiting at the end of input'), 0, bob.stderr)
    } finally {
      await net.teardown()
    }
  })
})
