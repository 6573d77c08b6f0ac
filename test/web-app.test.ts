/**
 * The web app (cli/web-server.ts, web/app/) in a real headless Chromium (@sparticuz/chromium, driven
 * by puppeteer-core; both come from the npm registry with `npm ci`). An in-process network
 * (bootstrap, 4 relays, alice and bob); alice's node serves the app. The page is driven as a person
 * would: it loads with no console error and no request leaving 127.0.0.1, alice looks bob up, sends,
 * sees ✓✓, bob's reply appears, hostile texts from the network stay inert text, a second tab and a
 * reopened tab see everything. Then the access rules: no session, a replayed token, a foreign Origin
 * or Host are refused, over HTTP and over the WebSocket. A screenshot goes to test/screenshots/.
 */
/// <reference lib="dom" />
import assert from 'node:assert/strict'
import { createServer, request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdirSync } from 'node:fs'
import { PassThrough } from 'node:stream'
import { gzipSync } from 'node:zlib'
import { after, before, describe, it } from 'node:test'
import chromium from '@sparticuz/chromium'
import puppeteer from 'puppeteer-core'
import type { Browser, Page } from 'puppeteer-core'
import { WebSocket } from 'ws'
import { parseJsonCommand } from '../cli/json-commands.ts'
import { JsonSession } from '../cli/json-session.ts'
import { WebServer } from '../cli/web-server.ts'
import { loadWebAssets } from '../cli/web-assets.ts'
import { ChatNetwork, eventsOf } from './helpers/chat-network.ts'
import type { TestUser } from './helpers/chat-network.ts'
import { waitFor, within } from './helpers/wait.ts'

const SCREENSHOTS = new URL('./screenshots/', import.meta.url)
/** Waits in the page: a message crosses the onion both ways in about a second on loopback; the machine may be loaded. */
const PAGE_WAIT_MS = 60_000

/** Texts a hostile peer sends: each must show exactly as typed, as text. */
const HOSTILE = [
  '<b>bold?</b> <i>no</i>',
  '<img src=x onerror="window.__pwned = 1">',
  '<script>window.__pwned = 1</script>',
  '"><svg onload="window.__pwned = 1"></svg><a href="javascript:window.__pwned=1">click</a>',
  'bidi: \u202Egnp.exe\u202C and \u2067isolate\u2069 \u200F end',
  'x'.repeat(1024) // the longest message there is (1024 bytes), one unbroken word
]

/**
 * Alice gets contact requests from strangers where the node has them (ChatNodeOptions.acceptAnyone of
 * the contacts work; the harness accepts anyone by default). Not a literal, so it also type-checks
 * against a ChatNode without that option, which ignores it.
 */
const ALICE_OPTIONS = { acceptAnyone: false, timing: {} }

/**
 * @sparticuz/chromium's flags (made for serverless functions) without the ones that switch the
 * browser's own protections off (same-origin policy, mixed content, site isolation) or run it as
 * one process: the page is tested in a browser as a user has it. --no-sandbox stays (root here).
 */
function browserArgs (): string[] {
  const weakening = /^--(disable-web-security|allow-running-insecure-content|disable-site-isolation-trials|single-process|no-zygote|disable-features=)/
  return chromium.args.filter(a => !weakening.test(a))
}

interface HttpAnswer { status: number, headers: Record<string, string | string[] | undefined>, body: string }

/** A GET with exactly the headers given (fetch cannot set Host). */
async function get (port: number, path: string, headers: Record<string, string>): Promise<HttpAnswer> {
  return await new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', headers, setHost: false }, res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { body += c })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body }) })
    })
    req.on('error', reject)
    req.end()
  })
}

/** Opens a WebSocket with the given headers: its first message, or the HTTP status that refused it. */
async function wsTry (port: number, headers: Record<string, string>): Promise<{ status: number, first?: Record<string, unknown>, ws?: WebSocket }> {
  return await within(new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, { headers })
    ws.once('unexpected-response', (_req, res) => { resolve({ status: res.statusCode ?? 0 }); res.resume(); ws.terminate() })
    ws.once('message', data => { resolve({ status: 101, first: JSON.parse(String(data)), ws }) })
    ws.once('error', err => { if (ws.readyState !== ws.CLOSED) reject(err) })
  }), 10_000, 'a WebSocket attempt')
}

function cookieOf (a: HttpAnswer): string {
  const set = a.headers['set-cookie']
  assert.ok(Array.isArray(set) && set.length === 1, `one Set-Cookie: ${String(set)}`)
  assert.match(set[0], /; HttpOnly; SameSite=Strict; Path=\/$/)
  return set[0].split(';')[0]
}

describe('web app in headless Chromium', { timeout: 240_000 }, () => {
  const net = new ChatNetwork()
  let alice: TestUser
  let bob: TestUser
  let web: WebServer
  let browser: Browser
  const consoleErrors: string[] = []
  const requests: string[] = []
  const logins: string[] = []

  /** Records what a page logs and loads. */
  function watch (page: Page): Page {
    page.on('console', m => { if (m.type() === 'error' || m.type() === 'warn') consoleErrors.push(`${m.type()}: ${m.text()}`) })
    page.on('pageerror', err => { consoleErrors.push(`pageerror: ${String(err)}`) })
    page.on('request', r => { requests.push(r.url()) })
    page.on('requestfailed', r => { consoleErrors.push(`request failed: ${r.url()}`) })
    return page
  }

  before(async () => {
    await net.bootstrap()
    await net.startRelays(4)
    alice = await net.user('alice', ALICE_OPTIONS)
    bob = await net.user('bob')
    web = new WebServer({ chat: alice.chat, onLoginUrl: url => { logins.push(url) } })
    await web.start()
    browser = await puppeteer.launch({ executablePath: await chromium.executablePath(), args: browserArgs(), headless: true, defaultViewport: { width: 1100, height: 700 } })
  })

  after(async () => {
    await browser?.close().catch(() => {})
    await web?.stop()
    await net.teardown()
  })

  it('loads, chats with bob (✓✓, the reply), keeps hostile text inert, survives a second and a reopened tab', async () => {
    const page = watch(await browser.newPage())
    const first = web.loginUrl()
    const res = await page.goto(first)
    assert.equal(res?.status(), 200)
    assert.equal(page.url(), `${web.origin}/`, 'the token left the address bar')
    await page.waitForFunction(() => document.querySelector('.me .nick')?.textContent === 'alice', { timeout: PAGE_WAIT_MS })
    await page.waitForFunction(() => /\d+ relays known/.test(document.querySelector('.status')?.textContent ?? '') && !/ 0 relays/.test(document.querySelector('.status')?.textContent ?? ''), { timeout: PAGE_WAIT_MS })
    assert.equal(logins.length, 1, 'a used link is replaced by a new one')
    assert.notEqual(logins[0], first)

    // alice looks bob up with the keyboard and sends
    await page.keyboard.press('/')
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'new-chat', '/ focuses the new-chat box')
    await page.keyboard.type('bob')
    await page.keyboard.press('Enter')
    await page.waitForFunction(() => document.querySelector('.chat-head h1')?.textContent === 'bob', { timeout: PAGE_WAIT_MS })
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'composer')
    await page.keyboard.type('hello bob, from a browser')
    await page.keyboard.press('Enter')
    await waitFor(() => eventsOf(bob, 'message').some(m => m.text === 'hello bob, from a browser' && m.from === 'alice' && m.verified), 'bob receiving it', PAGE_WAIT_MS)
    // bob accepts alice through the --json protocol (where contact requests exist, his receipt waits for this)
    const bobSession = new JsonSession(bob.chat, { stdout: new PassThrough(), stderr: new PassThrough(), env: {} })
    await bobSession.handle({ cmd: 'accept', nick: 'alice' })
    await page.waitForFunction(() => document.querySelector('.msg.out .state')?.getAttribute('data-state') === 'delivered', { timeout: PAGE_WAIT_MS })
    assert.equal(await page.$eval('.msg.out .state', e => e.textContent), '✓✓')

    // bob replies, then sends hostile texts
    // keyboard focus on bob's entry in the list survives the list's redraw when his reply comes
    await page.focus('.conv[data-nick="bob"]')
    bob.chat.send('alice', 'hi alice, bob here')
    await page.waitForFunction(() => [...document.querySelectorAll('.msg.in .text')].some(e => e.textContent === 'hi alice, bob here'), { timeout: PAGE_WAIT_MS })
    await page.waitForFunction(() => /hi alice, bob here/.test(document.querySelector('.conv[data-nick="bob"] .last')?.textContent ?? ''), { timeout: PAGE_WAIT_MS })
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('data-nick')), 'bob', 'focus kept')
    assert.equal(await page.$$eval('.msg.in .unverified', els => els.length), 0, "bob's signature verified")
    assert.equal(await page.$eval('.messages .day', e => e.textContent), 'Today', 'a day separator')
    assert.equal(await page.$eval('.chat-head .trust', e => e.textContent), 'unverified', 'the safety number is not compared yet')
    mkdirSync(SCREENSHOTS, { recursive: true })
    await page.screenshot({ path: new URL('web-main.png', SCREENSHOTS).pathname as `${string}.png` })

    // the verification screen, by keyboard: both fingerprints; Escape closes it
    await page.click('.verify-btn')
    await page.waitForFunction(() => (document.querySelector('dialog.verify') as HTMLDialogElement | null)?.open === true && /Theirs/.test(document.querySelector('dialog.verify')?.textContent ?? ''), { timeout: PAGE_WAIT_MS })
    const verifyText = await page.$eval('dialog.verify', e => e.textContent ?? '')
    assert.ok(verifyText.includes(alice.chat.fingerprint) && verifyText.includes(bob.chat.fingerprint), verifyText)
    await page.keyboard.press('Escape')
    await page.waitForFunction(() => (document.querySelector('dialog.verify') as HTMLDialogElement | null)?.open === false, { timeout: PAGE_WAIT_MS })
    for (const text of HOSTILE) bob.chat.send('alice', text)
    await page.waitForFunction((n: number) => document.querySelectorAll('.msg.in').length >= n, { timeout: PAGE_WAIT_MS }, HOSTILE.length + 1)
    const shown = await page.$$eval('.msg.in .text', els => els.map(e => e.textContent))
    for (const text of HOSTILE) assert.ok(shown.includes(text), `shown as typed: ${text.slice(0, 40)}`)
    assert.equal(await page.$$eval('.messages img, .messages script, .messages svg, .messages a, .messages b, .messages i', els => els.length), 0, 'no element from a message')
    assert.equal(await page.evaluate(() => (window as unknown as { __pwned?: unknown }).__pwned), undefined, 'the sentinel stays unset')
    // bidi controls stay inside their bubble; the long word wraps instead of widening the page
    assert.equal(await page.$$eval('.msg .text', els => els.every(e => getComputedStyle(e).unicodeBidi === 'isolate')), true)
    assert.equal(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), true, 'no horizontal overflow')

    // 10,000 characters typed by alice: refused with the reason, and kept in the box
    const long = 'y'.repeat(10_000)
    await page.$eval('#composer', (e, v) => { (e as HTMLTextAreaElement).value = v }, long)
    await page.focus('#composer')
    const before = await page.$$eval('.msg.out', els => els.length)
    await page.keyboard.press('Enter')
    await page.waitForFunction(() => /too long/.test(document.querySelector('.composer .note')?.textContent ?? ''), { timeout: PAGE_WAIT_MS })
    assert.equal(await page.$eval('#composer', e => (e as HTMLTextAreaElement).value.length), 10_000, 'nothing typed is lost')
    assert.equal(await page.$$eval('.msg.out', els => els.length), before)
    await page.$eval('#composer', e => { (e as HTMLTextAreaElement).value = '' })

    // the conversation list shows bob with his last message
    await page.waitForFunction(() => document.querySelector('.conv[data-nick="bob"] .last') != null, { timeout: PAGE_WAIT_MS })

    // a second tab (same browser, so the same session) sees the conversation and the ✓✓
    const second = watch(await browser.newPage())
    assert.equal((await second.goto(`${web.origin}/`))?.status(), 200)
    await second.waitForSelector('.conv[data-nick="bob"]', { timeout: PAGE_WAIT_MS })
    await second.click('.conv[data-nick="bob"]')
    await second.waitForFunction(() => document.querySelector('.msg.out .state')?.getAttribute('data-state') === 'delivered', { timeout: PAGE_WAIT_MS })
    // a message while only the second tab is open arrives there; closing every tab loses nothing
    await page.close()
    bob.chat.send('alice', 'while one tab was closed')
    await second.waitForFunction(() => [...document.querySelectorAll('.msg.in .text')].some(e => e.textContent === 'while one tab was closed'), { timeout: PAGE_WAIT_MS })
    await second.close()
    bob.chat.send('alice', 'while every tab was closed')
    await waitFor(() => eventsOf(alice, 'message').some(m => m.text === 'while every tab was closed'), 'alice receiving with no tab open', PAGE_WAIT_MS)
    const third = watch(await browser.newPage())
    await third.setViewport({ width: 390, height: 780 })
    await third.goto(`${web.origin}/`)
    await third.waitForSelector('.conv[data-nick="bob"]', { timeout: PAGE_WAIT_MS })
    await third.click('.conv[data-nick="bob"]')
    await third.waitForFunction(() => [...document.querySelectorAll('.msg.in .text')].some(e => e.textContent === 'while every tab was closed'), { timeout: PAGE_WAIT_MS })
    // phone-sized: one pane at a time, with a way back
    assert.equal(await third.$eval('.sidebar', e => getComputedStyle(e).display), 'none')
    assert.equal(await third.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), true, 'no horizontal overflow on a phone')
    await third.screenshot({ path: new URL('web-phone.png', SCREENSHOTS).pathname as `${string}.png` })
    await third.keyboard.press('Escape')
    assert.notEqual(await third.$eval('.sidebar', e => getComputedStyle(e).display), 'none')
    await third.close()

    assert.deepEqual(consoleErrors, [], 'no console error or warning')
    const foreign = requests.filter(u => !u.startsWith(`${web.origin}/`))
    assert.deepEqual(foreign, [], 'no request outside the node')
  })

  it('refuses requests without a session, with a replayed token, a foreign Origin or a foreign Host (HTTP and WebSocket)', async () => {
    const port = web.port
    const host = `127.0.0.1:${port}`
    const origin = `http://${host}`
    // no session
    for (const path of ['/', '/app.js', '/style.css']) assert.equal((await get(port, path, { host })).status, 403, path)
    assert.equal((await wsTry(port, { host, origin })).status, 403)
    // a login, then the same token again
    const url = new URL(web.loginUrl())
    const login = await get(port, url.pathname + url.search, { host })
    assert.equal(login.status, 303)
    assert.equal(login.headers.location, '/')
    const cookie = cookieOf(login)
    const replay = await get(port, url.pathname + url.search, { host })
    assert.equal(replay.status, 403, 'a token works once')
    assert.equal(replay.headers['set-cookie'], undefined)
    assert.equal((await get(port, '/?token=' + 'A'.repeat(43), { host })).status, 403, 'a made-up token')
    // a request target that is no URL, and a method other than GET: refused, and the server goes on
    assert.equal((await get(port, 'http://[', { host, cookie })).status, 400)
    const upgrade = { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' }
    assert.equal((await get(port, 'http://[', { host, origin, cookie, ...upgrade })).status, 400)
    assert.equal(web.refused.get('url'), 2, 'refused by the server, not by the HTTP parser')
    // with the session, the page and its headers
    const page = await get(port, '/', { host, cookie })
    assert.equal(page.status, 200)
    const csp = String(page.headers['content-security-policy'])
    for (const rule of ["default-src 'none'", "script-src 'self'", `connect-src ws://${host}`, "frame-ancestors 'none'", "require-trusted-types-for 'script'"]) assert.ok(csp.includes(rule), rule)
    assert.equal(page.headers['x-content-type-options'], 'nosniff')
    // a foreign Host (DNS rebinding) or Origin, even with the session
    assert.equal((await get(port, '/', { host: `evil.example:${port}`, cookie })).status, 421)
    assert.equal((await get(port, '/app.js', { host, cookie, origin: 'http://evil.example' })).status, 403)
    assert.equal((await get(port, '/', { host, cookie, 'sec-fetch-site': 'cross-site' })).status, 403)
    assert.equal((await wsTry(port, { host: `evil.example:${port}`, origin: `http://evil.example:${port}`, cookie })).status, 421)
    assert.equal((await wsTry(port, { host, origin: 'http://evil.example', cookie })).status, 403)
    assert.equal((await wsTry(port, { host, cookie })).status, 403, 'a WebSocket must say its Origin')
    // and the right one: the --json protocol, starting with ready
    const ok = await wsTry(port, { host, origin, cookie })
    assert.equal(ok.status, 101)
    assert.equal(ok.first?.event, 'ready')
    assert.equal(ok.first?.nick, 'alice')
    const ws = ok.ws as WebSocket
    const answers: Array<Record<string, unknown>> = []
    ws.on('message', d => { answers.push(JSON.parse(String(d))) })
    ws.send('{"cmd":"nope","tag":"a"}')
    ws.send('not json')
    ws.send(JSON.stringify({ cmd: 'contacts', tag: 'c' }))
    await waitFor(() => answers.some(a => a.tag === 'c'), 'the contacts answer', 10_000)
    assert.equal(answers.find(a => a.tag === 'a')?.code, 'UNKNOWN_CMD')
    assert.ok(answers.some(a => a.event === 'error' && a.code === 'BAD_JSON'))
    assert.ok((answers.find(a => a.tag === 'c')?.contacts as Array<{ nick: string }>).some(c => c.nick === 'bob'))
    ws.close()
    assert.ok((web.refused.get('session') ?? 0) >= 4)
  })

  it('contact requests (accept), unread counts and the safety-number check, where the node has them', async (t) => {
    // the contacts commands of the --json protocol (README); a node without them is covered by the fallbacks above
    if (!parseJsonCommand('{"cmd":"requests"}').ok) { t.skip('this node has no contact requests in its --json protocol'); return }
    const carol = await net.user('carol')
    const page = watch(await browser.newPage())
    await page.goto(web.loginUrl())
    await page.waitForSelector('.conv[data-nick="bob"]', { timeout: PAGE_WAIT_MS })
    await page.click('.conv[data-nick="bob"]')
    // a stranger writes: a request, not a conversation, until alice accepts
    carol.chat.send('alice', 'hello alice, I am carol')
    await page.waitForSelector('.request[data-nick="carol"]', { timeout: PAGE_WAIT_MS })
    assert.equal(await page.$('.conv[data-nick="carol"]'), null)
    await page.click('.request[data-nick="carol"] button')
    await page.waitForSelector('.conv[data-nick="carol"]', { timeout: PAGE_WAIT_MS })
    assert.equal(await page.$('.request[data-nick="carol"]'), null)
    // two more strangers: one denied, one blocked
    const dave = await net.user('dave')
    const erin = await net.user('erin')
    dave.chat.send('alice', 'dave here')
    erin.chat.send('alice', 'erin here')
    await page.waitForSelector('.request[data-nick="dave"]', { timeout: PAGE_WAIT_MS })
    await page.waitForSelector('.request[data-nick="erin"]', { timeout: PAGE_WAIT_MS })
    await page.click('.request[data-nick="dave"] button:nth-child(2)')
    await page.click('.request[data-nick="erin"] button.danger')
    await page.waitForFunction(() => document.querySelector('.request[data-nick="dave"], .request[data-nick="erin"]') == null, { timeout: PAGE_WAIT_MS })
    const reload = watch(await browser.newPage())
    await reload.goto(`${web.origin}/`)
    await reload.waitForSelector('.conv[data-nick="carol"]', { timeout: PAGE_WAIT_MS })
    assert.equal(await reload.$$eval('.request', els => els.length), 0, 'denied and blocked requests are gone for good')
    assert.equal(await reload.$$eval('.conv[data-nick="dave"], .conv[data-nick="erin"]', els => els.length), 0)
    await reload.close()
    // a message from carol while bob's conversation is open: an unread count, gone once read
    carol.chat.send('alice', 'are you there?')
    await page.waitForSelector('.conv[data-nick="carol"] .unread', { timeout: PAGE_WAIT_MS })
    await page.click('.conv[data-nick="carol"]')
    await page.waitForFunction(() => [...document.querySelectorAll('.msg.in .text')].some(e => e.textContent === 'are you there?'), { timeout: PAGE_WAIT_MS })
    assert.equal(await page.$('.conv[data-nick="carol"] .unread'), null)
    // the safety number: compared, confirmed, shown as verified
    await page.click('.conv[data-nick="bob"]')
    await page.click('.verify-btn')
    await page.waitForSelector('dialog.verify .safety', { timeout: PAGE_WAIT_MS })
    assert.match(await page.$eval('dialog.verify .safety', e => e.textContent ?? ''), /\d{5}/)
    await page.click('dialog.verify .confirm')
    await page.waitForFunction(() => document.querySelector('.chat-head .trust')?.textContent === '✔ verified', { timeout: PAGE_WAIT_MS })
    await page.close()
    assert.deepEqual(consoleErrors, [], 'no console error or warning')
  })

  it('a message that fails shows ✗ with the reason, and Retry tries again', async () => {
    const page = watch(await browser.newPage())
    await page.goto(web.loginUrl())
    await page.waitForSelector('.conv[data-nick="bob"]', { timeout: PAGE_WAIT_MS })
    // another tab of alice's (a WebSocket with her session) writes to a nick nobody holds
    const login = await get(web.port, new URL(web.loginUrl()).search.replace(/^/, '/'), { host: `127.0.0.1:${web.port}` })
    const other = await wsTry(web.port, { host: `127.0.0.1:${web.port}`, origin: web.origin, cookie: cookieOf(login) })
    const seen: Array<Record<string, unknown>> = []
    other.ws?.on('message', d => { seen.push(JSON.parse(String(d))) })
    const failures = (): number => seen.filter(e => e.event === 'failed' && e.to === 'ghost').length
    other.ws?.send(JSON.stringify({ cmd: 'send', to: 'ghost', text: 'anyone there?' }))
    await page.waitForSelector('.conv[data-nick="ghost"]', { timeout: PAGE_WAIT_MS })
    await page.click('.conv[data-nick="ghost"]')
    await page.waitForFunction(() => document.querySelector('.msg.out .state')?.getAttribute('data-state') === 'failed', { timeout: PAGE_WAIT_MS })
    assert.equal(await page.$eval('.msg.out .state', e => e.textContent), '✗')
    assert.match(await page.$eval('.msg.out .reason', e => e.textContent ?? ''), /nobody holds (the|this) nick/)
    await waitFor(() => failures() === 1, 'the first failure', PAGE_WAIT_MS)
    await page.click('.msg.out .retry')
    // tried again (the same message, or a new one where the node cannot retry), and failed again: every tab hears it
    await waitFor(() => failures() === 2, 'the retry failing too', PAGE_WAIT_MS)
    await page.waitForFunction(() => [...document.querySelectorAll('.msg.out .state')].every(e => e.getAttribute('data-state') === 'failed'), { timeout: PAGE_WAIT_MS })
    other.ws?.close()
    await page.close()
    assert.deepEqual(consoleErrors, [], 'no console error or warning')
  })

  it('notifies of a message while the tab is hidden, once permission is given', async () => {
    // headless Chromium has no hidden tabs and refuses notifications: the page is told it is hidden and
    // that permission was given, and what it hands to Notification is recorded
    const page = watch(await browser.newPage())
    await page.evaluateOnNewDocument(() => {
      const w = window as unknown as { __hidden: boolean, __notes: unknown[] }
      w.__hidden = false
      w.__notes = []
      Object.defineProperty(Document.prototype, 'hidden', { get: () => w.__hidden })
      window.Notification = new Proxy(window.Notification, {
        get (target, key) { return key === 'permission' ? 'granted' : Reflect.get(target, key) },
        construct (_target, args) { w.__notes.push(args); return { close () {} } }
      })
    })
    await page.goto(web.loginUrl())
    await page.waitForSelector('.conv[data-nick="bob"]', { timeout: PAGE_WAIT_MS })
    await page.click('.conv[data-nick="bob"]')
    await page.waitForSelector('.msg', { timeout: PAGE_WAIT_MS })
    bob.chat.send('alice', 'seen at once')
    await page.waitForFunction(() => [...document.querySelectorAll('.msg.in .text')].some(e => e.textContent === 'seen at once'), { timeout: PAGE_WAIT_MS })
    await page.evaluate(() => { (window as unknown as { __hidden: boolean }).__hidden = true; document.dispatchEvent(new Event('visibilitychange')) })
    bob.chat.send('alice', 'while you were away <b>x</b>')
    await page.waitForFunction(() => (window as unknown as { __notes: unknown[] }).__notes.length > 0, { timeout: PAGE_WAIT_MS })
    const notes = await page.evaluate(() => (window as unknown as { __notes: unknown[] }).__notes)
    assert.deepEqual(notes, [['p2pchat: bob', { body: 'while you were away <b>x</b>', tag: 'p2pchat-bob' }]], 'one notification, for the hidden tab only, text as text')
    assert.equal(await page.title(), '(1) p2pchat')
    await page.evaluate(() => { (window as unknown as { __hidden: boolean }).__hidden = false; document.dispatchEvent(new Event('visibilitychange')) })
    await page.waitForFunction(() => document.title === 'p2pchat', { timeout: PAGE_WAIT_MS })
    await page.close()
    assert.deepEqual(consoleErrors, [], 'no console error or warning')
  })

  it('a page of another local server, in the same browser, cannot reach the app (its Origin is refused)', async () => {
    // the browser holds alice's session; a cookie for 127.0.0.1 goes to every port of it, so only the Origin check stops this
    const evil = createServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/html' })
      res.end(`<script>
        window.__result = { ws: 'pending', fetch: 'pending' }
        const ws = new WebSocket('ws://127.0.0.1:${web.port}/ws')
        ws.onopen = () => { window.__result.ws = 'open' }
        ws.onmessage = m => { window.__result.ws = 'message ' + m.data }
        ws.onerror = () => { if (window.__result.ws === 'pending') window.__result.ws = 'refused' }
        fetch('http://127.0.0.1:${web.port}/app.js', { credentials: 'include', mode: 'no-cors' })
          .then(r => { window.__result.fetch = 'type ' + r.type }, () => { window.__result.fetch = 'refused' })
      </script>`)
    })
    await new Promise<void>(resolve => { evil.listen(0, '127.0.0.1', resolve) })
    const before = (web.refused.get('origin') ?? 0) + (web.refused.get('site') ?? 0)
    try {
      const page = await browser.newPage()
      await page.goto(`http://127.0.0.1:${(evil.address() as AddressInfo).port}/`)
      await page.waitForFunction(() => { const r = (window as unknown as { __result?: { ws: string, fetch: string } }).__result; return r != null && r.ws !== 'pending' && r.fetch !== 'pending' }, { timeout: PAGE_WAIT_MS })
      const result = await page.evaluate(() => (window as unknown as { __result: { ws: string, fetch: string } }).__result)
      assert.equal(result.ws, 'refused')
      // no-cors hides the answer from the page anyway; the server refused it too
      await page.close()
      assert.ok((web.refused.get('origin') ?? 0) + (web.refused.get('site') ?? 0) >= before + 2, `refused: ${JSON.stringify([...web.refused])}`)
    } finally {
      evil.closeAllConnections()
      await new Promise(resolve => evil.close(resolve))
    }
  })

  it('the page is small', async () => {
    const assets = await loadWebAssets()
    // the figure for the README: html + css + js + icon, uncompressed
    let gzipped = 0
    for (const f of assets.files.values()) gzipped += gzipSync(f.body).length
    process.stdout.write(`# web app size: ${assets.totalBytes} bytes, ${gzipped} gzipped (app.js ${assets.files.get('/app.js')?.body.length})\n`)
    assert.ok(assets.totalBytes < 64 * 1024, `${assets.totalBytes} bytes`)
  })
})
