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
