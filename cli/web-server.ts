/**
 * `p2pchat start --web`: the user's own node serves a single-page app (web/app/) on 127.0.0.1 and
 * carries the `--json` protocol over a WebSocket, unchanged: each WebSocket text message is one
 * command line (parsed by json-commands.ts parseJsonCommand, answered by JsonSession.handle), and
 * each event the node sends is one JSON object per message (json-session.ts chatEventToJson). The
 * protocol is documented once, in the README's `--json` section; differences here: the first
 * message is the `ready` event, and {"cmd":"quit"} closes that tab's connection (the node goes on).
 *
 * Access, like a local admin page done right:
 * - The listening address is 127.0.0.1 unless the user passes another (--web-host, with a warning).
 * - The URL the node prints carries a one-time token (32 random bytes). GET /?token=T, if T is the
 *   current unused token, sets a session cookie (32 random bytes, HttpOnly, SameSite=Strict, Path=/)
 *   and redirects to / (so the token leaves the address bar and history). A used token is dead; the
 *   node then prints a new one for another browser. A token is never on a command line (other local
 *   users read those in /proc): only on the node's stdout.
 * - Every HTTP request and WebSocket upgrade: the Host header must be this server's own host:port
 *   (a DNS-rebinding page has its own name there), an Origin, when the browser sends one, must be
 *   this server's origin (a WebSocket upgrade must carry it), Sec-Fetch-Site, when sent, must be
 *   same-origin or none, and everything but the token exchange needs the session cookie.
 * - Every page response carries a strict Content-Security-Policy (scripts, styles, images and
 *   connections from this origin only, no inline script, Trusted Types required so no string can
 *   become HTML), no-store, nosniff, no referrer, no framing.
 *
 * Limits: at most MAX_SOCKETS WebSockets at once, a message of at most MAX_WS_MESSAGE_BYTES, and a
 * tab that does not read its events (MAX_BUFFERED_BYTES waiting) is closed; it reconnects and reloads.
 * Not protected: a browser sends a 127.0.0.1 cookie to every port of 127.0.0.1, so another local web
 * server the user's browser visits receives it; anyone who can read the node's stdout can log in.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto'
import { createServer } from 'node:http'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import { Writable } from 'node:stream'
import { WebSocketServer } from 'ws'
import type { WebSocket } from 'ws'
import type { ChatNode } from '../node/chat-node.ts'
import { UserError } from '../node/errors.ts'
import { MAX_JSON_LINE_BYTES, parseJsonCommand } from './json-commands.ts'
import { JsonSession, readyEvent } from './json-session.ts'
import type { CliOptions } from './args.ts'
import { emit } from './output.ts'
import type { CliIO } from './output.ts'
import { loadWebAssets } from './web-assets.ts'
import type { WebAssets } from './web-assets.ts'

/** The only address served unless the user says otherwise: nothing off this machine can connect. */
export const DEFAULT_WEB_HOST = '127.0.0.1'
/** Tabs open at once: a handful of tabs and windows; more is a runaway script. */
export const MAX_SOCKETS = 16
/** A command is one --json line; a little over its limit so a long one gets LINE_TOO_LONG, not a closed socket. */
export const MAX_WS_MESSAGE_BYTES = MAX_JSON_LINE_BYTES + 1024
/** Events waiting for a tab that does not read them; past this the tab is closed (it reloads on reconnect). */
export const MAX_BUFFERED_BYTES = 4 * 1024 * 1024
/** Random bytes in a login token and a session id: unguessable. */
const SECRET_BYTES = 32
/** Sessions at once: each login makes one; the oldest goes first past this. */
const MAX_SESSIONS = 64

export class WebAccessError extends Error {
  readonly status: number
  constructor (message: string, status: number) {
    super(message)
    this.name = 'WebAccessError'
    this.status = status
  }
}

export interface WebServerOptions {
  chat: ChatNode
  host?: string
  /** 0: a free port. */
  port?: number
  /** A new login URL (after the previous one was used): shown to the user the way the first one was. */
  onLoginUrl?: (url: string) => void
  /** Lines for the operator (never secrets or message text). */
  log?: (line: string) => void
}

function secret (): string { return randomBytes(SECRET_BYTES).toString('base64url') }

function sameSecret (a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

function cookieValue (req: IncomingMessage, name: string): string | undefined {
  const header = req.headers.cookie
  if (header == null) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return undefined
}

export class WebServer {
  private readonly chat: ChatNode
  private readonly host: string
  private readonly wantPort: number
  private readonly onLoginUrl: (url: string) => void
  private readonly log: (line: string) => void
  private readonly http: Server
  private readonly wss: WebSocketServer
  private readonly sessions = new Set<string>()
  private readonly sockets = new Set<WebSocket>()
  private token = secret()
  private assets: WebAssets | undefined
  private boundPort = 0
  /** Requests refused, by reason (tests and the operator can see attacks were turned away). */
  readonly refused = new Map<string, number>()

  constructor (opts: WebServerOptions) {
    this.chat = opts.chat
    this.host = opts.host ?? DEFAULT_WEB_HOST
    this.wantPort = opts.port ?? 0
    this.onLoginUrl = opts.onLoginUrl ?? (() => {})
    this.log = opts.log ?? (() => {})
    this.http = createServer((req, res) => { this.onRequest(req, res) })
    this.http.on('upgrade', (req, socket, head) => { this.onUpgrade(req, socket, head) })
    this.wss = new WebSocketServer({ noServer: true, maxPayload: MAX_WS_MESSAGE_BYTES })
  }

  /** Bundles the app (web-assets.ts) and listens. */
  async start (): Promise<void> {
    this.assets = await loadWebAssets()
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject)
      this.http.listen(this.wantPort, this.host, () => { this.http.off('error', reject); resolve() })
    })
    const addr = this.http.address()
    this.boundPort = typeof addr === 'object' && addr != null ? addr.port : this.wantPort
  }

  get port (): number { return this.boundPort }

  /** http://host:port, as the browser's Origin says it. */
  get origin (): string { return `http://${this.hostPort}` }

  private get hostPort (): string { return `${this.host.includes(':') ? `[${this.host}]` : this.host}:${this.boundPort}` }

  /** The URL to open: carries the current one-time token. */
  loginUrl (): string { return `${this.origin}/?token=${this.token}` }

  /** Cookies are not kept apart by port: the name carries it, so two nodes on one machine do not overwrite each other's. */
  private get cookieName (): string { return `p2pchat-${this.boundPort}` }

  private refuse (reason: string): void { this.refused.set(reason, (this.refused.get(reason) ?? 0) + 1) }

  /** Host, Origin and Sec-Fetch-Site; throws WebAccessError. */
  private checkSite (req: IncomingMessage, originRequired: boolean): void {
    const allowed = new Set([this.hostPort])
    if (this.host === '127.0.0.1') allowed.add(`localhost:${this.boundPort}`)
    if (req.headers.host == null || !allowed.has(req.headers.host.toLowerCase())) throw new WebAccessError('host', 421)
    const origin = req.headers.origin
    if (origin == null ? originRequired : origin !== `http://${req.headers.host.toLowerCase()}`) throw new WebAccessError('origin', 403)
    const site = req.headers['sec-fetch-site']
    if (site != null && site !== 'same-origin' && site !== 'none') throw new WebAccessError('site', 403)
  }

  private hasSession (req: IncomingMessage): boolean {
    const sid = cookieValue(req, this.cookieName)
    if (sid == null) return false
    for (const s of this.sessions) if (sameSecret(s, sid)) return true
    return false
  }

  /** The request's path and query; a target that is no URL is refused (WebAccessError), never thrown further. */
  private target (req: IncomingMessage): URL {
    try {
      return new URL(req.url ?? '/', this.origin)
    } catch {
      throw new WebAccessError('url', 400)
    }
  }

  private onRequest (req: IncomingMessage, res: ServerResponse): void {
    try {
      this.checkSite(req, false)
      if (req.method !== 'GET' && req.method !== 'HEAD') throw new WebAccessError('method', 405)
      const url = this.target(req)
      const token = url.searchParams.get('token')
      if (url.pathname === '/' && token != null && req.method === 'GET') { this.login(token, res); return }
      if (!this.hasSession(req)) throw new WebAccessError('session', 403)
      const asset = this.assets?.files.get(url.pathname)
      if (asset == null) { this.send(res, 404, 'text/plain; charset=utf-8', 'not found\n'); return }
      this.send(res, 200, asset.type, asset.body, req.method === 'HEAD')
    } catch (err) {
      if (!(err instanceof WebAccessError)) throw err
      this.refuse(err.message)
      this.send(res, err.status, 'text/plain; charset=utf-8', err.message === 'session'
        ? 'no session: open the link that p2pchat printed (each link works once)\n'
        : `refused (${err.message})\n`)
    }
  }

  private login (token: string, res: ServerResponse): void {
    if (!sameSecret(token, this.token)) throw new WebAccessError('token', 403)
    this.token = secret()
    const sid = secret()
    this.sessions.add(sid)
    if (this.sessions.size > MAX_SESSIONS) this.sessions.delete(this.sessions.values().next().value as string)
    res.setHeader('Set-Cookie', `${this.cookieName}=${sid}; HttpOnly; SameSite=Strict; Path=/`)
    res.setHeader('Location', '/')
    this.send(res, 303, 'text/plain; charset=utf-8', 'logged in\n')
    this.log('a browser logged in to the web app')
    this.onLoginUrl(this.loginUrl())
  }

  private send (res: ServerResponse, status: number, type: string, body: string | Buffer, head = false): void {
    const ws = `ws://${this.hostPort}`
    res.writeHead(status, {
      'Content-Type': type,
      'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
        `connect-src ${ws}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; ` +
        "require-trusted-types-for 'script'; trusted-types 'none'",
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
      'X-Frame-Options': 'DENY',
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Resource-Policy': 'same-origin'
    })
    res.end(head ? undefined : body)
  }

  private onUpgrade (req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const deny = (reason: string, status: number): void => {
      this.refuse(reason)
      socket.end(`HTTP/1.1 ${status} Refused\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`)
    }
    try {
      this.checkSite(req, true)
      if (this.target(req).pathname !== '/ws') throw new WebAccessError('path', 404)
    } catch (err) {
      if (!(err instanceof WebAccessError)) throw err
      deny(err.message, err.status)
      return
    }
    if (!this.hasSession(req)) { deny('session', 403); return }
    if (this.sockets.size >= MAX_SOCKETS) { deny('sockets', 503); return }
    this.wss.handleUpgrade(req, socket, head, ws => { this.connected(ws) })
  }

  /** One tab: its own JsonSession over the one ChatNode. */
  private connected (ws: WebSocket): void {
    this.sockets.add(ws)
    const send = (line: string): void => {
      if (ws.readyState !== ws.OPEN) return
      if (ws.bufferedAmount > MAX_BUFFERED_BYTES) { this.refuse('slow'); ws.terminate(); return }
      ws.send(line)
    }
    const io: CliIO = {
      stdout: new Writable({ write (chunk: Buffer | string, _enc, cb) { send(String(chunk).trimEnd()); cb() } }),
      stderr: new Writable({ write (_chunk, _enc, cb) { cb() } }),
      env: {}
    }
    const session = new JsonSession(this.chat, io)
    const detach = session.attach()
    send(JSON.stringify(readyEvent(this.chat)))
    ws.on('message', (data, isBinary) => {
      if (isBinary) { session.error('BAD_JSON', 'a command must be a text message'); return }
      const parsed = parseJsonCommand(String(data))
      if (!parsed.ok) { session.error(parsed.code, parsed.message, parsed.tag); return }
      const cmd = parsed.command
      if (cmd.cmd === 'quit') { ws.close(1000, 'quit'); return }
      session.handle(cmd).catch((err: unknown) => {
        const code = err instanceof UserError ? err.code : 'INTERNAL'
        session.error(code, (err as Error).message, cmd.tag)
        if (!(err instanceof UserError)) this.log(`web: a command failed: ${(err as Error).name}`)
      })
    })
    ws.on('close', () => { detach(); this.sockets.delete(ws) })
    ws.on('error', () => { ws.terminate() })
  }

  /** Closes every tab and stops listening; safe to call twice. */
  async stop (): Promise<void> {
    for (const ws of this.sockets) ws.terminate()
    this.sockets.clear()
    this.wss.close()
    if (!this.http.listening) return
    this.http.closeAllConnections()
    await new Promise<void>(resolve => { this.http.close(() => { resolve() }) })
  }
}

/** --web-port and --web-host only with --web, and not for a relay. */
export function checkWebFlags (opts: CliOptions): void {
  if (!opts.web && (opts.webPort != null || opts.webHost != null)) throw new UserError('--web-port and --web-host go with --web', 'USAGE')
  if (opts.web && opts.relay) throw new UserError('a relay has no web app: --web goes with start --nick', 'USAGE')
}

/**
 * Serves the web app for `p2pchat start --web`: warns on stderr when the address is not 127.0.0.1,
 * and shows each login URL on stdout (a line for a person, or {"event":"web","url"} with --json).
 */
export async function serveWebApp (chat: ChatNode, opts: CliOptions, io: CliIO): Promise<WebServer> {
  const host = opts.webHost ?? DEFAULT_WEB_HOST
  if (host !== DEFAULT_WEB_HOST) {
    io.stderr.write(`p2pchat: warning: the web app listens on ${host}, not only on this machine's 127.0.0.1: whoever reaches it there may try to log in, ` +
      'and it is plain HTTP, so anyone on the way sees the session cookie; prefer an SSH tunnel to 127.0.0.1\n')
  }
  const show = (url: string, again: boolean): void => {
    if (opts.json) emit(io, { event: 'web', url })
    else io.stdout.write(again ? `web app: that link is used up; a new one for another browser: ${url}\n` : `web app: open ${url} (the link works once; keep it to yourself)\n`)
  }
  const server = new WebServer({ chat, host, port: opts.webPort, onLoginUrl: url => { show(url, true) }, log: line => { io.stderr.write(`p2pchat: ${line}\n`) } })
  try {
    await server.start()
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EADDRINUSE') throw new UserError(`cannot serve the web app on ${host}:${opts.webPort ?? 0}: it is already in use; pick another --web-port`, 'WEB_PORT_IN_USE')
    if (code === 'EADDRNOTAVAIL' || code === 'EACCES') throw new UserError(`cannot serve the web app on ${host}:${opts.webPort ?? 0} (${code}); check --web-host and --web-port`, 'WEB_LISTEN')
    throw err
  }
  if (!opts.json) io.stdout.write(`${chat.nick} is online (fingerprint ${chat.fingerprint}); Ctrl-C stops the node\n`)
  show(server.loginUrl(), false)
  return server
}
