/** Text shown to a person: times, short ids, verified marks, and text from the network made safe for a terminal. */

/**
 * Text from the network is shown on a terminal: escape sequences in it could rewrite the screen,
 * fake a verified mark or retitle the window. Every C0/C1 control character (and DEL) except tab is
 * shown as a visible escape; line breaks become ⏎ so a message is always one block that starts with
 * its sender.
 */
export function safeText (text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\r\n|\n|\r/g, ' ⏎ ').replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, c => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

/** HH:MM:SS in local time; a message from another day also shows the date. */
export function clock (ts: number, now = Date.now()): string {
  const d = new Date(ts)
  const pad = (n: number): string => String(n).padStart(2, '0')
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  if (new Date(now).toDateString() === d.toDateString()) return time
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`
}

/** The first 8 hex digits of a message id: enough to tell your recent messages apart. */
export function shortId (id: string): string { return id.slice(0, 8) }

/** A peer id shortened for display: `12D3Koo…wxyz`. */
export function shortPeer (peerId: string): string {
  return peerId.length <= 16 ? peerId : `${peerId.slice(0, 8)}…${peerId.slice(-6)}`
}

export const MARK_VERIFIED = '✓'
export const MARK_UNVERIFIED = '!'
/** A mailbox of the recipient holds it (protocol v2's first tick). */
export const MARK_STORED = '✓'
export const MARK_DELIVERED = '✓✓'
export const MARK_FAILED = '✗'

/** `✓` for a verified sender, `! (reason)` otherwise. */
export function verifiedMark (verified: boolean, reason: string | null): string {
  return verified ? MARK_VERIFIED : `${MARK_UNVERIFIED} (unverified: ${safeText(reason ?? 'no reason given')})`
}

/** Signed and not yet verified by the user (compare the safety number: /verify). */
export const MARK_SIGNED = '·'
export const MARK_CHANGED = '!'

/**
 * The mark after a sender's nick: `✓` verified by the user, `·` signed but not yet verified, `!` and
 * the reason when the key changed or the message does not verify; a request says so.
 */
export function trustMark (trust: 'unverified' | 'verified' | 'changed', verified: boolean, reason: string | null, request = false): string {
  if (!verified) return verifiedMark(false, reason)
  if (trust === 'changed') return `${MARK_CHANGED} (KEY CHANGED: /verify)`
  const mark = trust === 'verified' ? MARK_VERIFIED : MARK_SIGNED
  return request ? `${mark} (contact request: /accept, /deny or /block)` : mark
}

/** YYYY-MM-DD in local time: the day heading of a conversation. */
export function day (ts: number): string {
  const d = new Date(ts)
  const pad = (n: number): string => String(n).padStart(2, '0')
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`
}

/**
 * Text longer than `maxBytes` of UTF-8 cut into parts of at most `maxBytes` each, at a space or line
 * break in the last quarter of a part where there is one, never inside a character. Short text: one part.
 */
export function splitText (text: string, maxBytes: number): string[] {
  const parts: string[] = []
  let rest = text
  for (let guard = 0; Buffer.byteLength(rest, 'utf8') > maxBytes && guard < 100_000; guard++) {
    // the longest prefix of whole code points within maxBytes
    let end = 0
    let bytes = 0
    for (const ch of rest) {
      const b = Buffer.byteLength(ch, 'utf8')
      if (bytes + b > maxBytes) break
      bytes += b
      end += ch.length
    }
    const cut = rest.slice(0, end)
    const space = Math.max(cut.lastIndexOf(' '), cut.lastIndexOf('\n'))
    const at = space >= end * 0.75 ? space + 1 : end
    parts.push(rest.slice(0, at))
    rest = rest.slice(at)
  }
  if (rest.length > 0 || parts.length === 0) parts.push(rest)
  return parts
}
