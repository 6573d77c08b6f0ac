/**
 * `p2pchat start` for a person at a terminal: a status line while the node joins the network, then a
 * prompt. Events (incoming messages, receipts, warnings) are printed above the prompt without
 * disturbing what is being typed. Works without a TTY too (plain lines, no spinner), for pipes.
 */
import { createInterface, clearLine, cursorTo } from 'node:readline'
import type { Interface } from 'node:readline'
import type { Readable, Writable } from 'node:stream'
import { UserError } from '../node/errors.ts'
import type { ChatEvent, ChatNode } from '../node/chat-node.ts'
import { MAX_TEXT_BYTES } from '../protocols/chat/index.ts'
import { CHAT_COMMANDS, CHAT_HELP, NICK_COMMANDS, parseChatLine } from './chat-commands.ts'
import type { ChatAction } from './chat-commands.ts'
import { endOfInputWaitMs, SessionOutbox, UNCONFIRMED_AT_END } from './session-outbox.ts'
import { clock, day, MARK_DELIVERED, MARK_STORED, MARK_FAILED, safeText, shortId, shortPeer, splitText, trustMark } from './format.ts'
import type { StoredMessage } from '../node/store.ts'

/** Parts a long text may be split into at most (a paste of a few pages; more is surely a mistake). */
const MAX_PARTS = 16
/** Lines joined by a trailing backslash into one message, at most (bounds what one paste can hold). */
const MAX_CONTINUED_LINES = 100

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏']

interface Tty { isTTY?: boolean }

export class InteractiveSession {
  private readonly chat: ChatNode
  private readonly out: Writable
  private readonly tty: boolean
  private rl: Interface | undefined
  private open: string | undefined
  private spinner: ReturnType<typeof setInterval> | undefined
  private status = 'starting'
  private frame = 0
  /** Messages sent in this session, waited for at the end of piped input. */
  private readonly sent = new SessionOutbox()
  /** close() was called (a signal): end without waiting for anything */
  private closing = false
  /** Messages whose 'queued' line was shown: it is shown once; /history keeps the state. */
  private readonly queuedShown = new Set<string>()

  constructor (chat: ChatNode, out: Writable) {
    this.chat = chat
    this.out = out
    this.tty = (out as Writable & Tty).isTTY === true
  }

  private paint (text: string, code: string): string {
    return this.tty ? `\x1b[${code}m${text}\x1b[0m` : text
  }

  /** Prints one block above the prompt, then redraws the prompt and the line being typed. */
  print (text: string): void {
    if (this.rl != null && this.tty) {
      clearLine(this.out, 0)
      cursorTo(this.out, 0)
      this.out.write(text + '\n')
      this.rl.prompt(true)
    } else if (this.spinner != null) {
      clearLine(this.out, 0)
      cursorTo(this.out, 0)
      this.out.write(text + '\n')
      this.drawStatus()
    } else {
      this.out.write(text + '\n')
    }
  }

  private drawStatus (): void {
    clearLine(this.out, 0)
    cursorTo(this.out, 0)
    this.out.write(`${SPINNER[this.frame % SPINNER.length]} ${this.status}`)
  }

  /** Shows ChatNode events; call before start() so the status line follows the stages. */
  attach (): () => void {
    if (this.tty) {
      this.spinner = setInterval(() => { this.frame++; this.drawStatus() }, 100)
      this.drawStatus()
    }
    return this.chat.on(e => { this.onEvent(e); this.sent.onEvent(e) })
  }

  private stopSpinner (): void {
    if (this.spinner == null) return
    clearInterval(this.spinner)
    this.spinner = undefined
    clearLine(this.out, 0)
    cursorTo(this.out, 0)
  }

  /** The start failed or was interrupted: clear the status line. */
  abandon (): void { this.stopSpinner() }

  /** Ends run() from outside (a signal): closing readline gives the terminal back its normal mode. */
  close (): void {
    this.stopSpinner()
    this.closing = true
    this.rl?.close()
  }

  private onEvent (e: ChatEvent): void {
    switch (e.type) {
      case 'status':
        this.status = `${e.stage}: ${e.detail}`
        if (this.spinner != null) this.drawStatus()
        else if (this.rl == null) this.print(`… ${this.status}`)
        return
      case 'message': {
        const mark = trustMark(e.trust, e.verified, e.reason, e.request)
        const colour = !e.verified || e.trust === 'changed' ? '33' : e.trust === 'verified' ? '32' : '2'
        // a new message outside the open conversation rings the terminal bell
        const bell = this.tty && e.from !== this.open ? '\x07' : ''
        this.print(`${clock(e.ts)} ${this.paint(safeText(e.from), '1')} ${this.paint(mark, colour)}: ${safeText(e.text)}${bell}`)
        if (e.from === this.open && !e.request) this.chat.markRead(e.from)
        return
      }
      case 'request':
        this.print(this.paint(`contact request from ${e.nick} (fingerprint ${e.fingerprint}): no receipt is sent until you /accept ${e.nick}; /deny ${e.nick} or /block ${e.nick} otherwise`, '1;33'))
        return
      case 'cancelled':
        this.print(this.paint(`  [${shortId(e.id)}] cancelled: not sent to ${e.to}`, '2'))
        return
      case 'sent':
        if (e.attempt > 1) this.print(this.paint(`  [${shortId(e.id)}] trying another mailbox of ${e.to} (attempt ${e.attempt})`, '2'))
        return
      case 'stored':
        this.print(this.paint(`  [${shortId(e.id)}] ${MARK_STORED} stored in a mailbox of ${e.to}`, '32'))
        return
      case 'queued':
        // once per message: the outbox retries on a timer, the conversation view (/history) keeps the state
        if (this.queuedShown.has(e.id)) return
        this.queuedShown.add(e.id)
        this.print(this.paint(`  [${shortId(e.id)}] queued for ${e.to}: ${e.reason} (/retry ${shortId(e.id)}, /cancel ${shortId(e.id)})`, '33'))
        return
      case 'delivered':
        this.print(this.paint(`  [${shortId(e.id)}] ${MARK_DELIVERED} delivered to ${e.to}`, '32'))
        return
      case 'failed':
        this.print(this.paint(`  [${shortId(e.id)}] ${MARK_FAILED} failed to reach ${e.to}: ${e.reason}`, '31'))
        return
      case 'key-changed':
        this.print(this.paint([
          `!!! WARNING: the key of "${e.nick}" HAS CHANGED !!!`,
          `!!!   pinned key: ${e.pinned}`,
          `!!!   now seen:   ${e.seen}`,
          `!!! Someone else may be using the name ${e.nick}. Their messages show as unverified and nothing is sent to ${e.nick}`,
          `!!! until you compare the safety number with them out of band (/verify ${e.nick}) and accept (/accept ${e.nick}).`
        ].join('\n'), '1;31'))
        return
      case 'warning':
        this.print(this.paint(`warning: ${e.message}`, '33'))
        return
    }
  }

  private promptText (): string {
    return this.open == null ? '> ' : `[${this.open}]> `
  }

  /**
   * The node is up: show who we are, then read commands until /quit, Ctrl-C or Ctrl-D. When the input
   * is not a terminal (a pipe, a file), its end works as in --json: every line read is carried out,
   * then each message sent waits (bounded) until it is delivered, failed or queued.
   */
  async run (input: Readable, waitMs = endOfInputWaitMs(this.chat)): Promise<void> {
    this.stopSpinner()
    const relays = this.chat.relays().length
    this.out.write(`${this.paint(`p2pchat: you are ${this.chat.nick}`, '1')}, fingerprint ${this.chat.fingerprint}\n` +
      `${relays} relays known; privacy ${this.chat.privacy.summary}. /help lists commands; /msg <nick> <text> sends.\n`)
    const away = this.awaySummary()
    if (away !== '') this.out.write(away + '\n')
    const inputIsTty = (input as Readable & Tty).isTTY === true
    const rl = createInterface({
      input,
      output: this.out,
      prompt: this.promptText(),
      terminal: this.tty && inputIsTty,
      historySize: 200,
      completer: (line: string) => this.complete(line)
    })
    this.rl = rl
    await new Promise<void>(resolve => {
      let busy = Promise.resolve()
      let done = false
      const finish = (): void => {
        if (done) return
        done = true
        resolve()
      }
      let closed = false
      rl.on('SIGINT', finish)
      rl.on('close', () => {
        closed = true
        this.rl = undefined // events printed from now on go below, without a prompt
        if (inputIsTty || this.closing) { finish(); return }
        // readline has emitted every line before 'close': they are all on the chain
        const deadline = Date.now() + waitMs
        busy.then(async () => {
          for (const { id, to } of await this.sent.settle(deadline)) this.print(this.paint(`  [${shortId(id)}] queued for ${to}: ${UNCONFIRMED_AT_END}`, '33'))
        }).catch(() => {}).finally(finish)
      })
      // a line ending in a backslash goes on on the next line: the lines are one message
      let continued: string[] = []
      rl.on('line', raw => {
        if (raw.endsWith('\\') && !raw.endsWith('\\\\') && continued.length < MAX_CONTINUED_LINES) {
          continued.push(raw.slice(0, -1))
          rl.setPrompt('… ')
          rl.prompt()
          return
        }
        const line = [...continued, raw].join('\n')
        continued = []
        // one command at a time, in order: a /whois that takes a while does not reorder later sends
        busy = busy.then(async () => {
          if (done) return
          const action = parseChatLine(line, this.open)
          if (action.kind === 'quit') { finish(); return }
          try {
            await this.act(action)
          } catch (err) {
            this.print(this.paint(`error: ${(err as Error).message}`, '31'))
            if (!(err instanceof UserError) && process.env.DEBUG != null) this.print((err as Error).stack ?? '')
          }
          if (!done && !closed) { rl.setPrompt(this.promptText()); rl.prompt() }
        })
      })
      rl.prompt()
    })
    this.rl = undefined
    rl.close()
    input.pause()
  }

  private async act (a: ChatAction): Promise<void> {
    const chat = this.chat
    switch (a.kind) {
      case 'none':
      case 'quit':
        return
      case 'error':
        this.print(this.paint(`error: ${a.message}`, '31'))
        return
      case 'help':
        this.print(CHAT_HELP.trimEnd())
        return
      case 'msg': {
        // text longer than one message holds goes as several, numbered, each with its own state
        const parts = splitText(a.text, MAX_TEXT_BYTES)
        if (parts.length > MAX_PARTS) throw new UserError(`message too long: ${parts.length} parts of ${MAX_TEXT_BYTES} bytes; at most ${MAX_PARTS} at once`, 'TOO_LONG')
        for (const [i, part] of parts.entries()) {
          const { id, to } = chat.send(a.to, part)
          this.sent.track(id, to)
          const n = parts.length > 1 ? ` (${i + 1}/${parts.length})` : ''
          this.print(`${clock(Date.now())} ${this.paint('you', '1')} → ${to} [${shortId(id)}]${n}: ${safeText(part)}`)
        }
        return
      }
      case 'open': {
        const unread = chat.conversations().find(c => c.nick === a.nick)?.unread ?? 0
        const r = await chat.whois(a.nick)
        this.open = a.nick
        if (!r.found && chat.trust(a.nick) == null) this.print(this.paint(`${r.nick} is not in the directory: nobody holds that nick (a user who is offline stays in it, with mailboxes that keep messages)`, '33'))
        else this.print(`talking to ${r.nick} (fingerprint ${r.fingerprint ?? chat.safetyNumber(a.nick).theirs}, ${this.trustWord(chat.trust(a.nick))}); plain lines go to ${r.nick}, /close to stop`)
        if (unread > 0) this.print(this.conversation(chat.history(a.nick, 200).filter(m => !m.request).slice(-unread), `${unread} unread:`))
        chat.markRead(a.nick)
        return
      }
      case 'list': {
        const convs = chat.conversations()
        const reqs = chat.requests()
        if (convs.length === 0 && reqs.length === 0) { this.print('no conversations yet: /msg <nick> <text> starts one'); return }
        const lines = convs.map(c => {
          const unread = c.unread > 0 ? this.paint(`${c.unread} unread`.padEnd(10), '1') : ''.padEnd(10)
          const last = c.last == null ? '' : `${clock(c.last.ts)} ${c.last.direction === 'out' ? 'you: ' : ''}${safeText(c.last.text).slice(0, 60)}${c.last.direction === 'out' ? ` (${c.last.state})` : ''}`
          // presence is only what reached us (a message, a receipt): p2pchat sends no beacon to learn it
          const heard = c.heard == null ? '  (not heard from yet)' : `  (heard ${day(c.heard.at)} ${clock(c.heard.at)}, ${c.heard.by})`
          return `  ${c.nick.padEnd(16)} ${(c.trust ?? '-').padEnd(10)} ${unread} ${last}${heard}`
        })
        if (reqs.length > 0) lines.push(this.paint(`  ${reqs.length} contact request${reqs.length === 1 ? '' : 's'}: /requests`, '33'))
        this.print(lines.join('\n'))
        return
      }
      case 'requests': {
        const reqs = chat.requests()
        if (reqs.length === 0) { this.print('no contact requests'); return }
        const lines: string[] = []
        for (const r of reqs) {
          lines.push(`${r.nick} (fingerprint ${r.fingerprint}), since ${clock(r.firstSeen)}, ${r.messages} message${r.messages === 1 ? '' : 's'}:`)
          for (const m of chat.history(r.nick, 200).filter(m => m.request)) lines.push(`  ${clock(m.timestamp)} ${safeText(m.text)}`)
        }
        lines.push('/accept <nick> makes one a contact (it then gets its receipts), /deny <nick> deletes it, /block <nick> drops its key for good')
        this.print(lines.join('\n'))
        return
      }
      case 'deny':
        this.print(chat.deny(a.nick) ? `denied ${a.nick}: deleted, nothing was sent to it` : `${a.nick} has no request and no changed key waiting`)
        return
      case 'block':
        this.print(chat.block(a.nick) ? `blocked ${a.nick}: what its key sends is dropped unread from now on` : `${a.nick} is not a contact and sent no request`)
        return
      case 'retry': {
        const r = chat.retry(a.id)
        if (r.ok) this.sent.track(r.id, chat.store.get(r.id)?.peerNick ?? '?')
        if (r.ok) this.queuedShown.delete(r.id)
        this.print(r.ok ? `  [${shortId(r.id)}] sending again` : `no queued or failed message ${a.id} (ids are the 8 hex digits in [brackets])`)
        return
      }
      case 'cancel': {
        const r = chat.cancel(a.id)
        if (!r.ok) this.print(`no queued or failed message ${a.id} to cancel`)
        return
      }
      case 'close':
        this.open = undefined
        return
      case 'whois': {
        const r = await chat.whois(a.nick)
        if (!r.found) { this.print(`${r.nick}: not in the directory (nobody holds that nick)`); return }
        const pin = r.pin === 'same' ? 'matches your pin' : r.pin === 'new' ? 'not pinned yet' : this.paint('DIFFERS FROM YOUR PIN', '1;31')
        this.print(`${r.nick}: fingerprint ${r.fingerprint ?? '?'} (${pin}), ${r.mailboxes ?? 0} mailboxes`)
        return
      }
      case 'contacts': {
        const pins = chat.contacts()
        if (pins.length === 0) { this.print('no contacts yet: a nick becomes a contact when you message it or accept its request'); return }
        this.print(pins.map(p => `  ${p.nick.padEnd(16)} ${p.fingerprint}  ${this.trustWord(p.trust).padEnd(10)}  since ${clock(p.firstSeen)}` +
          (p.pending != null ? this.paint(`  KEY CHANGED to ${p.pending.fingerprint}: /verify ${p.nick}`, '1;31') : '')).join('\n'))
        return
      }
      case 'verify': {
        const v = chat.safetyNumber(a.nick)
        const lines = [
          `safety number with ${a.nick} (${this.trustWord(v.trust)}):`,
          `  ${v.safetyNumber.slice(0, 35)}`,
          `  ${v.safetyNumber.slice(36)}`,
          `your fingerprint:  ${v.mine}`,
          `${a.nick}'s fingerprint: ${v.theirs}`
        ]
        if (v.pending != null) {
          lines.push(this.paint(`${a.nick} now shows ANOTHER KEY: ${v.pending.fingerprint}; its safety number would be`, '1;31'))
          lines.push(this.paint(`  ${v.pending.safetyNumber}`, '1;31'))
          lines.push(`compare that one with ${a.nick}, then /accept ${a.nick} (or /deny ${a.nick} to keep the old key)`)
        } else {
          lines.push(`Read the 60 digits to ${a.nick} over another channel (in person, a call): they see the same. If they match: /verify ${a.nick} confirm`)
        }
        this.print(lines.join('\n'))
        return
      }
      case 'confirm': {
        const v = chat.confirmVerified(a.nick)
        this.print(this.paint(`${a.nick} is now verified ✓ (safety number ${v.safetyNumber.slice(0, 11)}…)`, '32'))
        return
      }
      case 'accept': {
        const kind = chat.accept(a.nick)
        if (kind === 'request') this.print(`${a.nick} is now a contact (not yet verified: /verify ${a.nick}); its messages are in the conversation and it gets their receipts`)
        else if (kind === 'key') this.print(`accepted the new key of ${a.nick}; queued messages to ${a.nick} are sent now`)
        else this.print(`${a.nick} has no request and no changed key waiting to be accepted`)
        return
      }
      case 'history': {
        const msgs = chat.history(a.nick, 200)
        if (msgs.length === 0) { this.print(`no messages with ${a.nick}`); return }
        this.print(this.conversation(msgs, `conversation with ${a.nick} (${this.trustWord(chat.trust(a.nick))}):`))
        chat.markRead(a.nick)
        return
      }
      case 'relays': {
        const relays = chat.relays()
        const now = Date.now()
        this.print(relays.length === 0
          ? 'no relays known yet: messages wait until at least 3 relays are heard from'
          : [`${relays.length} relays known${relays.length < 3 ? ' (a path needs 3)' : ''}:`, ...relays.map(r => `  ${shortPeer(r.peerId)}  heard ${Math.round((now - r.lastSeen) / 1000)} s ago`)].join('\n'))
        return
      }
      case 'status': {
        const p = chat.privacyStatus()
        const lines = [`privacy ${p.summary}`]
        if (p.receiptDelayMs > 0) lines.push(`  receipts leave after a random delay (${p.receiptDelayMs / 1000} s on average); retries at drawn intervals`)
        if (p.cover != null) {
          lines.push(`  cover sent: ${p.cover.loops} loop (${p.cover.loopsReturned} came back), ${p.cover.drops} drop, ${p.cover.real} real packets in cover slots, ${p.cover.waiting} waiting` +
            `${p.cover.failed.loop + p.cover.failed.drop + p.cover.failed.real > 0 ? `; failed ${p.cover.failed.loop} loop, ${p.cover.failed.drop} drop, ${p.cover.failed.real} real` : ''}`)
        } else {
          lines.push('  no cover traffic: an observer of your link sees when you send')
        }
        lines.push(`${chat.relays().length} relays live; stage ${chat.stage}`)
        this.print(lines.join('\n'))
        return
      }
    }
  }

  private trustWord (trust: 'unverified' | 'verified' | 'changed' | undefined): string {
    return trust === 'verified' ? 'verified ✓' : trust === 'changed' ? this.paint('KEY CHANGED', '1;31') : trust === 'unverified' ? 'not verified' : 'not a contact'
  }

  /** Messages under a heading, with a date line wherever the day changes, each outgoing one with its state. */
  private conversation (msgs: StoredMessage[], heading: string): string {
    const lines = [heading]
    let lastDay = ''
    for (const m of msgs) {
      const d = day(m.timestamp)
      if (d !== lastDay) { lines.push(this.paint(`-- ${d} --`, '2')); lastDay = d }
      const time = clock(m.timestamp, m.timestamp)
      if (m.direction === 'in') {
        const mark = m.request ? '(request)' : trustMark(this.chat.trust(m.peerNick) ?? 'unverified', m.verified, m.verifyReason)
        lines.push(`${time} ${m.peerNick} ${mark}: ${safeText(m.text)}`)
      } else {
        const state = m.state === 'delivered' ? MARK_DELIVERED : m.state === 'stored' ? MARK_STORED
          : m.state === 'failed' ? `${MARK_FAILED} ${m.failureReason ?? ''}` : `${m.state} (/retry ${shortId(m.id)}, /cancel ${shortId(m.id)})`
        lines.push(`${time} you → ${m.peerNick} [${shortId(m.id)}] ${state}: ${safeText(m.text)}`)
      }
    }
    return lines.join('\n')
  }

  /** What arrived while we were away (unread conversations, requests), shown once at start. */
  private awaySummary (): string {
    const unread = this.chat.conversations().filter(c => c.unread > 0)
    const reqs = this.chat.requests()
    if (unread.length === 0 && reqs.length === 0) return ''
    const lines = ['while you were away:']
    for (const c of unread) lines.push(`  ${c.nick}: ${c.unread} new${c.last != null ? `, last ${clock(c.last.ts)}: ${safeText(c.last.text).slice(0, 60)}` : ''}  (/open ${c.nick})`)
    if (reqs.length > 0) lines.push(`  ${reqs.length} contact request${reqs.length === 1 ? '' : 's'} (${reqs.map(r => r.nick).join(', ')}): /requests`)
    return lines.join('\n')
  }

  /** Tab: a command at the start of a line, else a nick (contacts, conversations, requests). */
  private complete (line: string): [string[], string] {
    if (/^\/\S*$/.test(line)) {
      const hits = CHAT_COMMANDS.filter(c => c.startsWith(line.toLowerCase()))
      return [hits.length === 1 ? [`${hits[0]} `] : hits, line]
    }
    const words = line.split(' ')
    const word = words[words.length - 1]
    const first = words[0].toLowerCase()
    if (words.length !== 2 || !NICK_COMMANDS.has(first)) return [[], word]
    const nicks = new Set([...this.chat.contacts().map(p => p.nick), ...this.chat.conversations().map(c => c.nick), ...this.chat.requests().map(r => r.nick)])
    const hits = [...nicks].filter(n => n.startsWith(word)).sort()
    return [hits.length === 1 ? [`${hits[0]} `] : hits, word]
  }
}
