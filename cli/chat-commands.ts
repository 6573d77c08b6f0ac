/**
 * The interactive prompt's slash commands, parsed by a pure function: a typed line (and the contact
 * opened with /open, if any) in, one action out. No I/O, so it can be table-tested.
 */
import { MAX_TEXT_BYTES } from '../protocols/chat/index.ts'

export type ChatAction =
  | { kind: 'none' }
  | { kind: 'msg', to: string, text: string }
  | { kind: 'open', nick: string }
  | { kind: 'close' }
  | { kind: 'whois', nick: string }
  | { kind: 'contacts' }
  | { kind: 'verify', nick: string }
  | { kind: 'confirm', nick: string }
  | { kind: 'accept', nick: string }
  | { kind: 'deny', nick: string }
  | { kind: 'block', nick: string }
  | { kind: 'requests' }
  | { kind: 'list' }
  | { kind: 'retry', id: string }
  | { kind: 'cancel', id: string }
  | { kind: 'history', nick: string }
  | { kind: 'relays' }
  | { kind: 'status' }
  | { kind: 'help' }
  | { kind: 'quit' }
  | { kind: 'error', message: string }

export const CHAT_HELP = `commands:
  /msg <nick> <text>      send one message (nick or nick#fingerprint); text over ${MAX_TEXT_BYTES} bytes goes as several
  /open <nick>            talk to <nick>: plain lines go to them until /close (shows what is unread)
  /close                  stop sending plain lines to the open contact
  /list                   conversations: unread counts and the last message
  /history [<nick>]       the conversation with <nick>, with dates and each message's state
  /requests               messages from people who are not your contacts yet (no receipt sent to them)
  /accept <nick>          make a request a contact (it gets its receipts), or accept a contact's changed key
  /deny <nick>            delete a request (nothing is sent), or refuse a changed key
  /block <nick>           drop everything from <nick>'s key from now on (counted)
  /verify <nick>          the safety number to compare with <nick> out of band (in person, a call)
  /verify <nick> confirm  you compared it and it matched: <nick> becomes verified ✓
  /retry <id>             send a queued or failed message now (id: its first 8 hex digits)
  /cancel <id>            do not send a queued or failed message
  /whois <nick>           look a nick up in the directory (fingerprint, pin)
  /contacts               your contacts, with fingerprints and trust
  /relays                 the relays this node knows
  /status                 privacy level (mixing delay, cover traffic rates and counts), relays, mailboxes
  /help                   this help
  /quit                   leave (Ctrl-C and Ctrl-D too)
Tab completes commands and nicks. End a line with \\ to go on on the next line (one message).
marks: ✓ verified by you  · signed, not yet verified (/verify)  ! key changed or not verifiable
       ✓ after a message you sent: stored in a mailbox of the recipient  ✓✓ delivered  ✗ failed
`

/** The slash commands, for Tab completion. */
export const CHAT_COMMANDS = ['/msg', '/open', '/close', '/list', '/history', '/requests', '/accept', '/deny', '/block',
  '/verify', '/retry', '/cancel', '/whois', '/contacts', '/relays', '/status', '/help', '/quit']

/** Commands whose first argument is a nick (completed with Tab). */
export const NICK_COMMANDS = new Set(['/msg', '/m', '/open', '/o', '/history', '/accept', '/deny', '/block', '/verify', '/whois'])

function needNick (name: string, args: string[], usage: string): ChatAction | string {
  if (args.length === 0 || args[0] === '') return { kind: 'error', message: `usage: ${usage}` }
  if (args.length > 1) return { kind: 'error', message: `${name} takes one nick; usage: ${usage}` }
  return args[0]
}

export function parseChatLine (line: string, open?: string): ChatAction {
  const trimmed = line.trim()
  if (trimmed === '') return { kind: 'none' }
  if (!trimmed.startsWith('/') || trimmed.startsWith('//')) {
    // `//text` sends a line that starts with a slash
    const text = trimmed.startsWith('//') ? trimmed.slice(1) : trimmed
    if (open == null) return { kind: 'error', message: 'no contact open: /msg <nick> <text>, or /open <nick> first (/help lists commands)' }
    return { kind: 'msg', to: open, text }
  }
  const space = trimmed.search(/\s/)
  const name = (space === -1 ? trimmed : trimmed.slice(0, space)).toLowerCase()
  const rest = space === -1 ? '' : trimmed.slice(space).trim()
  const args = rest === '' ? [] : rest.split(/\s+/)
  const one = (kind: 'open' | 'whois' | 'verify' | 'accept' | 'history' | 'deny' | 'block', usage: string): ChatAction => {
    const nick = needNick(name, args, usage)
    return typeof nick === 'string' ? { kind, nick } : nick
  }
  switch (name) {
    case '/msg':
    case '/m': {
      if (args.length < 2) return { kind: 'error', message: 'usage: /msg <nick> <text>' }
      const to = args[0]
      const text = rest.slice(rest.indexOf(to) + to.length).trim()
      return { kind: 'msg', to, text }
    }
    case '/open':
    case '/o':
      return one('open', '/open <nick>')
    case '/close':
      return { kind: 'close' }
    case '/whois':
      return one('whois', '/whois <nick>')
    case '/contacts':
      return { kind: 'contacts' }
    case '/verify':
      if (args.length === 2 && args[1].toLowerCase() === 'accept') return { kind: 'accept', nick: args[0] }
      if (args.length === 2 && args[1].toLowerCase() === 'confirm') return { kind: 'confirm', nick: args[0] }
      if (args.length === 2) return { kind: 'error', message: 'usage: /verify <nick> [confirm]' }
      return one('verify', '/verify <nick> [confirm]')
    case '/accept':
      return one('accept', '/accept <nick>')
    case '/deny':
      return one('deny', '/deny <nick>')
    case '/block':
      return one('block', '/block <nick>')
    case '/requests':
      return { kind: 'requests' }
    case '/list':
    case '/l':
      return { kind: 'list' }
    case '/retry':
    case '/cancel': {
      if (args.length !== 1 || !/^[0-9a-fA-F]{8,32}$/.test(args[0])) return { kind: 'error', message: `usage: ${name} <id> (the 8 hex digits shown in [brackets])` }
      return { kind: name === '/retry' ? 'retry' : 'cancel', id: args[0].toLowerCase() }
    }
    case '/history':
      if (args.length === 0 && open != null) return { kind: 'history', nick: open }
      return one('history', '/history <nick>')
    case '/relays':
      return { kind: 'relays' }
    case '/status':
      return { kind: 'status' }
    case '/help':
    case '/?':
      return { kind: 'help' }
    case '/quit':
    case '/exit':
    case '/q':
      return { kind: 'quit' }
    default:
      return { kind: 'error', message: `unknown command ${name.slice(0, 40)} (/help lists commands)` }
  }
}
