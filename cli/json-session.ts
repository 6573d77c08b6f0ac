/**
 * `p2pchat start --json`: ChatNode events out as one JSON object per line on stdout, commands in as
 * one JSON object per line on stdin (parsed by json-commands.ts). Nothing else is written to stdout.
 * A bad line is answered with an error event; the session goes on.
 */
import type { Readable } from 'node:stream'
import { UserError } from '../node/errors.ts'
import type { ChatEvent, ChatNode } from '../node/chat-node.ts'
import { textTooLong } from './args.ts'
import { MAX_JSON_LINE_BYTES, parseJsonCommand } from './json-commands.ts'
import type { JsonCommand } from './json-commands.ts'
import { readLines } from './lines.ts'
import { emit } from './output.ts'
import type { CliIO } from './output.ts'
import { endOfInputWaitMs, SessionOutbox, UNCONFIRMED_AT_END } from './session-outbox.ts'

/** A ChatNode event as the JSON line a script sees ('sent' per attempt becomes 'attempt'). */
export function chatEventToJson (e: ChatEvent): Record<string, unknown> {
  switch (e.type) {
    case 'sent': return { event: 'attempt', id: e.id, to: e.to, attempt: e.attempt, path: e.path }
    case 'status': return { event: 'status', stage: e.stage, detail: e.detail }
    case 'queued': return { event: 'queued', id: e.id, to: e.to, reason: e.reason }
    case 'stored': return { event: 'stored', id: e.id, to: e.to }
    case 'delivered': return { event: 'delivered', id: e.id, to: e.to }
    case 'failed': return { event: 'failed', id: e.id, to: e.to, reason: e.reason }
    case 'message': return { event: 'message', id: e.id, from: e.from, fingerprint: e.fingerprint, verified: e.verified, trust: e.trust, request: e.request, reason: e.reason, text: e.text, ts: e.ts }
    case 'request': return { event: 'request', nick: e.nick, fingerprint: e.fingerprint, ts: e.ts }
    case 'cancelled': return { event: 'cancelled', id: e.id, to: e.to, ok: true }
    case 'key-changed': return { event: 'key-changed', nick: e.nick, pinned: e.pinned, seen: e.seen }
    case 'warning': return { event: 'warning', message: e.message }
  }
}

export function readyEvent (chat: ChatNode): Record<string, unknown> {
  return { event: 'ready', nick: chat.nick, addrs: chat.addrs(), relay: false, fingerprint: chat.fingerprint, relays: chat.relays().length, privacy: privacyJson(chat) }
}

/** The privacy level and its cover traffic as --json shows them (ready and node-status). */
export function privacyJson (chat: ChatNode): Record<string, unknown> {
  const p = chat.privacyStatus()
  return { level: p.level, meanDelayMsPerHop: p.meanDelayMsPerHop, loopPerMinute: p.loopPerMinute, dropPerMinute: p.dropPerMinute, receiptDelayMs: p.receiptDelayMs, cover: p.cover }
}

/** How a session ended: {"cmd":"quit"}, or the end of stdin. */
export type SessionEnd = 'quit' | 'end'

export class JsonSession {
  private readonly chat: ChatNode
  private readonly io: CliIO
  /** Commands read and not yet answered. */
  private readonly inFlight = new Set<Promise<void>>()
  private readonly sent = new SessionOutbox()
  private cancelling = false
  /** The last 'queued' reason sent per message: the outbox retries on a timer, a script hears each reason once (issue 15 bug 3). */
  private readonly queuedReason = new Map<string, string>()

  constructor (chat: ChatNode, io: CliIO) {
    this.chat = chat
    this.io = io
  }

  /** Forwards ChatNode events; call before start() so the status events are seen too. */
  attach (): () => void {
    return this.chat.on(e => {
      if (this.shows(e)) emit(this.io, chatEventToJson(e))
      this.sent.onEvent(e)
    })
  }

  /**
   * Whether an event is written: a cancel asked by this session is answered once, with its tag
   * (handle()); a message's 'queued' is written once per reason (the outbox retries on a timer).
   */
  private shows (e: ChatEvent): boolean {
    if (e.type === 'cancelled' && this.cancelling) return false
    if (e.type === 'queued') {
      if (this.queuedReason.get(e.id) === e.reason) return false
      this.queuedReason.set(e.id, e.reason)
    } else if (e.type === 'stored' || e.type === 'delivered' || e.type === 'failed' || e.type === 'cancelled') {
      this.queuedReason.delete(e.id)
    }
    return true
  }

  ready (): void { emit(this.io, readyEvent(this.chat)) }

  error (code: string, message: string, tag?: string): void {
    emit(this.io, tag == null ? { event: 'error', code, message } : { event: 'error', code, message, tag })
  }

  /**
   * Reads commands until {"cmd":"quit"} or the end of stdin, then answers every command already read.
   * At end of input it also waits until each message sent in this session is delivered, failed or
   * queued (the recipient unreachable: it stays in the outbox for the next start), for at most the
   * node's own give-up time plus a margin; a message still unconfirmed then is reported as queued.
   * {"cmd":"quit"} does not wait for deliveries: what is undelivered stays in the outbox.
   */
  async run (input: Readable, waitMs = endOfInputWaitMs(this.chat)): Promise<SessionEnd> {
    const how = await new Promise<SessionEnd>(resolve => {
      let stop: () => void = () => {}
      let over = false
      const finish = (how: SessionEnd): void => { over = true; stop(); input.pause(); resolve(how) }
      stop = readLines(input, MAX_JSON_LINE_BYTES, item => {
        if (over) return // lines after quit, in the same chunk
        if ('oversize' in item) {
          this.error('LINE_TOO_LONG', `a command line may hold at most ${MAX_JSON_LINE_BYTES} bytes (got ${item.oversize})`)
          return
        }
        if (item.line.trim() === '') return
        const parsed = parseJsonCommand(item.line)
        if (!parsed.ok) { this.error(parsed.code, parsed.message, parsed.tag); return }
        if (parsed.command.cmd === 'quit') { finish('quit'); return }
        const running: Promise<void> = this.handle(parsed.command).catch(err => {
          const code = err instanceof UserError ? err.code : 'INTERNAL'
          this.error(code, (err as Error).message, parsed.command.tag)
          if (!(err instanceof UserError)) this.io.stderr.write(`p2pchat: ${(err as Error).stack ?? String(err)}\n`)
        }).finally(() => { this.inFlight.delete(running); this.sent.wake() })
        this.inFlight.add(running)
      }, () => { finish('end') })
    })
    const deadline = Date.now() + waitMs
    await this.sent.until(() => this.inFlight.size === 0, deadline)
    if (how === 'end') {
      for (const { id, to } of await this.sent.settle(deadline)) emit(this.io, { event: 'queued', id, to, reason: UNCONFIRMED_AT_END })
    }
    return how
  }

  private withTag (cmd: JsonCommand, event: Record<string, unknown>): Record<string, unknown> {
    return cmd.tag == null ? event : { ...event, tag: cmd.tag }
  }

  async handle (cmd: JsonCommand): Promise<void> {
    const out = (event: Record<string, unknown>): void => { emit(this.io, this.withTag(cmd, event)) }
    switch (cmd.cmd) {
      case 'send': {
        const tooLong = textTooLong(cmd.text)
        if (tooLong != null) throw tooLong
        const { id, to } = this.chat.send(cmd.to, cmd.text)
        this.sent.track(id, to)
        out({ event: 'sent', id, to })
        return
      }
      case 'whois': {
        const r = await this.chat.whois(cmd.nick)
        out({ event: 'whois', nick: r.nick, found: r.found, mailboxes: r.mailboxes ?? null, fingerprint: r.fingerprint ?? null, pin: r.pin ?? null, trust: r.trust ?? null })
        return
      }
      case 'contacts':
        out({
          event: 'contacts',
          contacts: this.chat.contacts().map(p => ({ nick: p.nick, fingerprint: p.fingerprint, trust: p.trust, firstSeen: p.firstSeen, verifiedAt: p.verifiedAt, accepted: p.accepted, pending: p.pending?.fingerprint ?? null }))
        })
        return
      case 'history':
        out({
          event: 'history',
          nick: cmd.nick,
          messages: this.chat.history(cmd.nick, cmd.limit).map(m => ({
            id: m.id, direction: m.direction, text: m.text, ts: m.timestamp, state: m.state, verified: m.verified, request: m.request, reason: m.verifyReason ?? m.failureReason
          })),
          trust: this.chat.trust(cmd.nick) ?? null
        })
        return
      case 'relays': {
        const relays = this.chat.relays()
        out({ event: 'relays', count: relays.length, relays })
        return
      }
      case 'accept':
        out({ event: 'accepted', nick: cmd.nick, ok: this.chat.accept(cmd.nick) !== 'none' })
        return
      case 'conversations':
        out({
          event: 'conversations',
          conversations: this.chat.conversations().map(c => ({
            nick: c.nick, fingerprint: c.fingerprint, trust: c.trust, unread: c.unread, heard: c.heard,
            last: c.last == null ? null : { id: c.last.id, direction: c.last.direction, text: c.last.text, ts: c.last.ts, state: c.last.state }
          }))
        })
        return
      case 'read':
        this.chat.markRead(cmd.nick)
        out({ event: 'read', nick: cmd.nick, unread: 0 })
        return
      case 'requests':
        out({ event: 'requests', requests: this.chat.requests().map(r => ({ nick: r.nick, fingerprint: r.fingerprint, firstSeen: r.firstSeen, messages: r.messages })) })
        return
      case 'deny':
        out({ event: 'denied', nick: cmd.nick, ok: this.chat.deny(cmd.nick) })
        return
      case 'block':
        out({ event: 'blocked', nick: cmd.nick, ok: this.chat.block(cmd.nick) })
        return
      case 'verify': {
        const v = cmd.confirm === true ? this.chat.confirmVerified(cmd.nick) : this.chat.safetyNumber(cmd.nick)
        out({ event: 'verify', nick: v.nick, safetyNumber: v.safetyNumber, mine: v.mine, theirs: v.theirs, trust: v.trust, pending: v.pending ?? null })
        return
      }
      case 'retry': {
        const r = this.chat.retry(cmd.id)
        this.queuedReason.delete(r.id)
        if (r.ok) this.sent.track(r.id, this.chat.store.get(r.id)?.peerNick ?? '')
        out({ event: 'retried', id: r.id, ok: r.ok })
        return
      }
      case 'cancel': {
        this.cancelling = true
        let r: { ok: boolean, id: string }
        try { r = this.chat.cancel(cmd.id) } finally { this.cancelling = false }
        out({ event: 'cancelled', id: r.id, to: r.ok ? this.chat.store.get(r.id)?.peerNick ?? null : null, ok: r.ok })
        return
      }
      case 'status':
        out({ event: 'node-status', nick: this.chat.nick, fingerprint: this.chat.fingerprint, relays: this.chat.relays().length, stage: this.chat.stage, privacy: privacyJson(this.chat) })
        return
      case 'quit':
        return
    }
  }
}
