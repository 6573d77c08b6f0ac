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
import { textTooLong } from './args.ts'
import { CHAT_HELP, parseChatLine } from './chat-commands.ts'
import type { ChatAction } from './chat-commands.ts'
import { endOfInputWaitMs, SessionOutbox, UNCONFIRMED_AT_END } from './session-outbox.ts'
import { clock, MARK_DELIVERED, MARK_STORED, MARK_FAILED, safeText, shortId, shortPeer, verifiedMark } from './format.ts'

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
      case 'message':
        this.print(`${clock(e.ts)} ${this.paint(safeText(e.from), '1')} ${e.verified ? this.paint(verifiedMark(true, null), '32') : this.paint(verifiedMark(false, e.reason), '33')}: ${safeText(e.text)}`)
        return
      case 'sent':
        if (e.attempt > 1) this.print(this.paint(`  [${shortId(e.id)}] trying another mailbox of ${e.to} (attempt ${e.attempt})`, '2'))
        return
      case 'stored':
        this.print(this.paint(`  [${shortId(e.id)}] ${MARK_STORED} stored in a mailbox of ${e.to}`, '32'))
        return
      case 'queued':
        this.print(this.paint(`  [${shortId(e.id)}] queued for ${e.to}: ${e.reason}`, '33'))
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
          `!!! until you compare fingerprints with them out of band (/verify ${e.nick}) and accept (/verify ${e.nick} accept).`
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
    const inputIsTty = (input as Readable & Tty).isTTY === true
    const rl = createInterface({ input, output: this.out, prompt: this.promptText(), terminal: this.tty && inputIsTty, historySize: 200 })
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
      rl.on('line', line => {
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
        const tooLong = textTooLong(a.text)
        if (tooLong != null) throw tooLong
        const { id, to } = chat.send(a.to, a.text)
        this.sent.track(id, to)
        this.print(`${clock(Date.now())} ${this.paint('you', '1')} → ${to} [${shortId(id)}]: ${safeText(a.text)}`)
        return
      }
      case 'open': {
        const r = await chat.whois(a.nick)
        this.open = a.nick
        if (!r.found) this.print(this.paint(`${r.nick} is not in the directory: nobody holds that nick (a user who is offline stays in it, with mailboxes that keep messages)`, '33'))
        else this.print(`talking to ${r.nick} (fingerprint ${r.fingerprint ?? '?'}${r.pin === 'changed' ? ', KEY CHANGED: /verify ' + r.nick : ''}); plain lines go to ${r.nick}, /close to stop`)
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
        if (pins.length === 0) { this.print('no contacts yet: a nick is pinned the first time you message it or it messages you'); return }
        this.print(pins.map(p => `  ${p.nick.padEnd(16)} ${p.fingerprint}  since ${clock(p.firstSeen)}` +
          (p.pending != null ? this.paint(`  KEY CHANGED to ${p.pending.fingerprint}: /verify ${p.nick}`, '1;31') : '')).join('\n'))
        return
      }
      case 'verify': {
        const pin = chat.contacts().find(p => p.nick === a.nick)
        const r = await chat.whois(a.nick)
        const lines = [`your fingerprint:        ${chat.fingerprint}`]
        lines.push(`${a.nick} (pinned):${' '.repeat(Math.max(1, 15 - a.nick.length))}${pin?.fingerprint ?? 'not pinned yet'}`)
        if (pin?.pending != null) lines.push(this.paint(`${a.nick} (NEW KEY):${' '.repeat(Math.max(1, 14 - a.nick.length))}${pin.pending.fingerprint}  — /verify ${a.nick} accept to trust it`, '1;31'))
        lines.push(`${a.nick} (directory):${' '.repeat(Math.max(1, 12 - a.nick.length))}${r.found ? r.fingerprint ?? '?' : 'not found'}`)
        lines.push(`Compare these with ${a.nick} over another channel (in person, a call). Send to ${a.nick}#<fingerprint> to insist on one key.`)
        this.print(lines.join('\n'))
        return
      }
      case 'accept':
        if (chat.acceptKey(a.nick)) this.print(`accepted the new key of ${a.nick}; queued messages to ${a.nick} are sent now`)
        else this.print(`${a.nick} has no changed key waiting to be accepted`)
        return
      case 'history': {
        const msgs = chat.history(a.nick)
        if (msgs.length === 0) { this.print(`no messages with ${a.nick}`); return }
        this.print(msgs.map(m => m.direction === 'in'
          ? `${clock(m.timestamp)} ${m.peerNick} ${verifiedMark(m.verified, m.verifyReason)}: ${safeText(m.text)}`
          : `${clock(m.timestamp)} you → ${m.peerNick} [${shortId(m.id)}] ${m.state === 'delivered' ? MARK_DELIVERED : m.state === 'stored' ? MARK_STORED : m.state === 'failed' ? `${MARK_FAILED} ${m.failureReason ?? ''}` : m.state}: ${safeText(m.text)}`).join('\n'))
        return
      }
      case 'relays': {
        const relays = chat.relays()
        const now = Date.now()
        this.print(relays.length === 0
          ? 'no relays known yet: messages wait until at least 3 relays are heard from'
          : [`${relays.length} relays known${relays.length < 3 ? ' (a path needs 3)' : ''}:`, ...relays.map(r => `  ${shortPeer(r.peerId)}  heard ${Math.round((now - r.lastSeen) / 1000)} s ago`)].join('\n'))
      }
    }
  }
}
