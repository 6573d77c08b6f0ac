/**
 * The interactive prompt's slash commands, parsed by a pure function: a typed line (and the contact
 * opened with /open, if any) in, one action out. No I/O, so it can be table-tested.
 */

export type ChatAction =
  | { kind: 'none' }
  | { kind: 'msg', to: string, text: string }
  | { kind: 'open', nick: string }
  | { kind: 'close' }
  | { kind: 'whois', nick: string }
  | { kind: 'contacts' }
  | { kind: 'verify', nick: string }
  | { kind: 'accept', nick: string }
  | { kind: 'history', nick: string }
  | { kind: 'relays' }
  | { kind: 'help' }
  | { kind: 'quit' }
  | { kind: 'error', message: string }

export const CHAT_HELP = `commands:
  /msg <nick> <text>      send one message (nick or nick#fingerprint)
  /open <nick>            talk to <nick>: plain lines go to them until /close
  /close                  stop sending plain lines to the open contact
  /whois <nick>           look a nick up in the directory (peer id, fingerprint, pin)
  /contacts               the nicks you have pinned, with their fingerprints
  /verify <nick>          both fingerprints, to compare with <nick> out of band
  /verify <nick> accept   accept <nick>'s changed key (same as /accept <nick>)
  /history <nick>         recent messages with <nick>
  /relays                 the relays this node knows
  /help                   this help
  /quit                   leave (Ctrl-C and Ctrl-D too)
marks: ✓ verified sender  ! unverified (with the reason)  ✓✓ delivered  ✗ failed
`

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
  const one = (kind: 'open' | 'whois' | 'verify' | 'accept' | 'history', usage: string): ChatAction => {
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
      return one('verify', '/verify <nick> [accept]')
    case '/accept':
      return one('accept', '/accept <nick>')
    case '/history':
      if (args.length === 0 && open != null) return { kind: 'history', nick: open }
      return one('history', '/history <nick>')
    case '/relays':
      return { kind: 'relays' }
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
