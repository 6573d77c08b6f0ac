/**
 * The contact tables of the local store (schema migration 3, node/store.ts): contact requests, blocked
 * keys, the user's verification of a pin, and read marks. One small module over `ChatStore.database`,
 * writing inside the store's transactions.
 *
 * - `requests`: one row per nick that wrote to us without being a contact: the key and the signed name
 *   record its first message carried (to send receipts once accepted); its messages are rows of
 *   `messages` with `request = 1`. At most MAX_REQUESTS rows: a flood of strangers cannot fill the disk.
 * - `blocked`: identity keys whose items are dropped unread; `dropped` counts them.
 * - `pins.verified_at`: set by `/verify <nick> confirm`, cleared when another key is accepted.
 * - `read_marks`: per nick, the local time up to which incoming messages were read (unread counts).
 */
import type { DatabaseSync, SQLOutputValue, StatementSync } from 'node:sqlite'
import { fingerprint } from '../protocols/chat/fingerprint.ts'
import type { ChatStore } from './store.ts'

/** Pending requests kept at most: a stranger per row; more than any person answers, small on disk (a record is < 1 KiB). */
export const MAX_REQUESTS = 200
/** Messages kept per pending request: enough to judge a stranger by, not a way to fill our disk. */
export const MAX_REQUEST_MESSAGES = 20

export interface ContactRequest {
  nick: string
  identityKey: Uint8Array
  fingerprint: string
  /** the signed name record the first message carried */
  record: Uint8Array
  firstSeen: number
  lastSeen: number
  /** messages waiting in this request */
  messages: number
}

export interface BlockedKey {
  nick: string
  identityKey: Uint8Array
  fingerprint: string
  blockedAt: number
  /** items from this key dropped since it was blocked */
  dropped: number
}

export interface Conversation {
  nick: string
  unread: number
  last: { id: string, direction: 'in' | 'out', text: string, ts: number, state: string } | null
  /**
   * Presence as the network told it (issue 15): when the newest sign of this contact reached us, a
   * message from it or its receipt for one of ours, by our clock. Nothing is ever sent to learn it:
   * no beacon, no probe, so no relay learns who is online from presence.
   */
  heard: { at: number, by: 'message' | 'receipt' } | null
}

type Row = Record<string, SQLOutputValue>

function bytes (v: SQLOutputValue): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new TypeError('expected a BLOB column')
  return new Uint8Array(v)
}

export class ContactsStore {
  private readonly store: ChatStore
  private readonly sql: Record<string, StatementSync>

  constructor (store: ChatStore) {
    this.store = store
    const db: DatabaseSync = store.database
    this.sql = {
      getRequest: db.prepare(`SELECT r.*, (SELECT count(*) FROM messages m WHERE m.peer_nick = r.nick AND m.direction = 'in' AND m.request = 1) AS n
        FROM requests r WHERE r.nick = ?`),
      requests: db.prepare(`SELECT r.*, (SELECT count(*) FROM messages m WHERE m.peer_nick = r.nick AND m.direction = 'in' AND m.request = 1) AS n
        FROM requests r ORDER BY r.first_seen, r.nick`),
      countRequests: db.prepare('SELECT count(*) AS n FROM requests'),
      addRequest: db.prepare(`INSERT INTO requests (nick, identity_key, fingerprint, record, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT (nick) DO UPDATE SET last_seen = excluded.last_seen`),
      deleteRequest: db.prepare('DELETE FROM requests WHERE nick = ?'),
      requestMessages: db.prepare(`SELECT id FROM messages WHERE peer_nick = ? AND direction = 'in' AND request = 1 ORDER BY timestamp, rowid`),
      acceptMessages: db.prepare(`UPDATE messages SET request = 0 WHERE peer_nick = ? AND direction = 'in' AND request = 1`),
      dropMessages: db.prepare(`DELETE FROM messages WHERE peer_nick = ? AND direction = 'in' AND request = 1`),
      block: db.prepare(`INSERT INTO blocked (identity_key, nick, blocked_at) VALUES (?, ?, ?) ON CONFLICT (identity_key) DO NOTHING`),
      isBlocked: db.prepare('SELECT 1 AS b FROM blocked WHERE identity_key = ?'),
      countDropped: db.prepare('UPDATE blocked SET dropped = dropped + 1 WHERE identity_key = ?'),
      blocked: db.prepare('SELECT * FROM blocked ORDER BY blocked_at'),
      verify: db.prepare('UPDATE pins SET verified_at = ? WHERE nick = ? AND identity_key = ? AND pending_key IS NULL'),
      getRead: db.prepare('SELECT read_at FROM read_marks WHERE nick = ?'),
      markRead: db.prepare(`INSERT INTO read_marks (nick, read_at) VALUES (?, ?) ON CONFLICT (nick) DO UPDATE SET read_at = max(read_at, excluded.read_at)`),
      nicks: db.prepare(`SELECT nick FROM pins UNION SELECT DISTINCT peer_nick FROM messages WHERE request = 0`),
      unread: db.prepare(`SELECT count(*) AS n FROM messages WHERE peer_nick = ? AND direction = 'in' AND request = 0
        AND stored_at > coalesce((SELECT read_at FROM read_marks WHERE nick = ?), 0)`),
      last: db.prepare(`SELECT id, direction, text, timestamp, state FROM messages WHERE peer_nick = ? AND request = 0 ORDER BY timestamp DESC, rowid DESC LIMIT 1`),
      heard: db.prepare(`SELECT (SELECT max(stored_at) FROM messages WHERE peer_nick = ? AND direction = 'in' AND request = 0) AS message,
        (SELECT max(delivered_at) FROM messages WHERE peer_nick = ? AND direction = 'out' AND state = 'delivered') AS receipt`)
    }
  }

  private toRequest (r: Row): ContactRequest {
    return { nick: String(r.nick), identityKey: bytes(r.identity_key), fingerprint: String(r.fingerprint), record: bytes(r.record), firstSeen: Number(r.first_seen), lastSeen: Number(r.last_seen), messages: Number(r.n) }
  }

  request (nick: string): ContactRequest | undefined {
    const row = this.sql.getRequest.get(nick)
    return row == null ? undefined : this.toRequest(row)
  }

  requests (): ContactRequest[] { return this.sql.requests.all().map(r => this.toRequest(r)) }

  /**
   * Notes a request from `nick` (first message, or one more). False when it cannot be kept: the
   * request list is full, or this request already holds MAX_REQUEST_MESSAGES messages.
   */
  noteRequest (nick: string, identityKey: Uint8Array, record: Uint8Array, now = Date.now()): boolean {
    const held = this.request(nick)
    if (held == null && Number((this.sql.countRequests.get() as Row).n) >= MAX_REQUESTS) return false
    if (held != null && held.messages >= MAX_REQUEST_MESSAGES) return false
    this.sql.addRequest.run(nick, identityKey, fingerprint(identityKey), record, now, now)
    return true
  }

  /** Accepting: the request's messages join the conversation; returns their ids (receipts are owed for them). */
  acceptRequest (nick: string): string[] {
    return this.store.transaction(() => {
      const ids = this.sql.requestMessages.all(nick).map(r => String(r.id))
      this.sql.acceptMessages.run(nick)
      this.sql.deleteRequest.run(nick)
      return ids
    })
  }

  /** Denying: the request and its messages are deleted (nothing is sent back). False if there was none. */
  denyRequest (nick: string): boolean {
    return this.store.transaction(() => {
      this.sql.dropMessages.run(nick)
      return Number(this.sql.deleteRequest.run(nick).changes) === 1
    })
  }

  block (nick: string, identityKey: Uint8Array, now = Date.now()): void {
    this.sql.block.run(identityKey, nick, now)
  }

  isBlocked (identityKey: Uint8Array): boolean { return this.sql.isBlocked.get(identityKey) != null }

  /** Counts one more item dropped from a blocked key. */
  countDropped (identityKey: Uint8Array): void { this.sql.countDropped.run(identityKey) }

  blocked (): BlockedKey[] {
    return this.sql.blocked.all().map(r => ({ nick: String(r.nick), identityKey: bytes(r.identity_key), fingerprint: fingerprint(bytes(r.identity_key)), blockedAt: Number(r.blocked_at), dropped: Number(r.dropped) }))
  }

  /** The user compared the safety number of this key: true if it is the pinned key (and no changed key waits). */
  markVerified (nick: string, identityKey: Uint8Array, now = Date.now()): boolean {
    return Number(this.sql.verify.run(now, nick, identityKey).changes) === 1
  }

  markRead (nick: string, now = Date.now()): void { this.sql.markRead.run(nick, now) }

  unread (nick: string): number { return Number((this.sql.unread.get(nick, nick) as Row).n) }

  /** The newest message from `nick` or receipt by it that reached us (Conversation.heard). */
  heard (nick: string): Conversation['heard'] {
    const h = this.sql.heard.get(nick, nick) as Row
    const message = h.message == null ? null : Number(h.message)
    const receipt = h.receipt == null ? null : Number(h.receipt)
    if (message == null && receipt == null) return null
    return receipt != null && (message == null || receipt > message) ? { at: receipt, by: 'receipt' } : { at: message as number, by: 'message' }
  }

  /** Every conversation (a contact, or anyone a message was exchanged with outside requests), by nick. */
  conversations (): Conversation[] {
    const nicks = this.sql.nicks.all().map(r => String(r.nick)).sort()
    return nicks.map(nick => {
      const l = this.sql.last.get(nick)
      return {
        nick,
        unread: this.unread(nick),
        last: l == null ? null : { id: String(l.id), direction: String(l.direction) as 'in' | 'out', text: String(l.text), ts: Number(l.timestamp), state: String(l.state) },
        heard: this.heard(nick)
      }
    })
  }
}
