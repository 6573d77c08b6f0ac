/**
 * The local store: message history, the outbox, pins and the SURB secrets awaiting a receipt (contact
 * requests, blocked keys, verification and read marks: node/contacts-store.ts).
 *
 * One SQLite file, `<dataDir>/p2pchat.db` (node:sqlite), created mode 0600; a file that other users can
 * read is refused like a key file (it holds history and SURB secrets). WAL journal with
 * `synchronous=FULL`: every commit is fsynced before the call returns, so a message reported as stored
 * survives a crash (all but `markSent`, a count of attempts a crash may lose), except the commits a message
 * waits for: `addOutgoing`, `markStored` and `deferredTransaction` commit without an fsync and the caller awaits
 * `durable()` (an fdatasync on the thread pool, protocols/sqlite.ts) before 'stored' is said or the
 * receipt or ACK goes (a message's packet leaves without waiting for its outbox row's sync:
 * ChatNode.attempt). `secure_delete` overwrites deleted SURB secrets. The schema is versioned with
 * `PRAGMA user_version`; each migration runs in its own transaction.
 *
 * Ids are lowercase hex strings (message ids: 16 bytes = 32 hex characters). Times are ms since the epoch.
 */
import { join } from 'node:path'
import type { DatabaseSync, SQLOutputValue, StatementSync } from 'node:sqlite'
import { fingerprint } from '../protocols/chat/fingerprint.ts'
import { validateNick } from '../protocols/chat/nick.ts'
import { commitWithoutSync, openDatabase, WalSync, type DataSync } from '../protocols/sqlite.ts'
import { UserError } from './errors.ts'

/** The database file inside the data directory. */
export const STORE_FILE_NAME = 'p2pchat.db'
/** How long a write waits for another connection's lock before failing. */
export { DEFAULT_BUSY_TIMEOUT_MS } from '../protocols/sqlite.ts'

export type Direction = 'out' | 'in'
export type OutgoingState = 'queued' | 'sent' | 'stored' | 'delivered' | 'failed'
export type MessageState = OutgoingState | 'received'
export type PinResult = 'new' | 'same' | 'changed'

export interface StoredMessage {
  id: string
  direction: Direction
  peerNick: string
  peerFingerprint: string
  text: string
  /** the message's own timestamp (for incoming messages: as claimed by the sender) */
  timestamp: number
  state: MessageState
  /** incoming: the signature verified and the key matched the pin; always false for outgoing */
  verified: boolean
  /** incoming: why it is (not) verified, e.g. 'pinned', 'key-changed', 'bad-signature' */
  verifyReason: string | null
  attempts: number
  lastAttemptAt: number | null
  /** outgoing: the outbox gives up after this time; null: never */
  expiresAt: number | null
  deliveredAt: number | null
  failureReason: string | null
  /** when this row was written, local clock */
  storedAt: number
  /** incoming from a sender not yet accepted: shown under requests, no receipt sent (node/contacts.ts) */
  request: boolean
}

export interface OutgoingInit {
  id: string | Uint8Array
  peerNick: string
  peerFingerprint: string
  text: string
  timestamp: number
  expiresAt?: number | null
}

export interface IncomingInit {
  id: string | Uint8Array
  peerNick: string
  peerFingerprint: string
  text: string
  timestamp: number
  verified: boolean
  verifyReason?: string | null
  /** default: Date.now() */
  storedAt?: number
  /** from a sender not yet accepted (a contact request) */
  request?: boolean
}

export interface PinnedKey {
  identityKey: Uint8Array
  fingerprint: string
  /** when this key was first seen for the nick */
  firstSeen: number
}

export interface Pin extends PinnedKey {
  nick: string
  /** when the user compared the safety number and confirmed it (`/verify <nick> confirm`); null: never */
  verifiedAt: number | null
  /** false while a changed key waits for the user (`acceptKey` / `rejectKey`) */
  accepted: boolean
  /** a different key seen for the nick; never used until accepted */
  pending: PinnedKey | null
}

export interface SurbInit {
  id: string | Uint8Array
  messageId: string | Uint8Array
  secret: Uint8Array
  expiresAt: number
}

export interface SurbRecord {
  id: string
  messageId: string
  secret: Uint8Array
  expiresAt: number
}

export class StoreClosedError extends Error {
  constructor (message = 'the store is closed') {
    super(message)
    this.name = 'StoreClosedError'
  }
}

/** The file was written by a newer p2pchat. */
export class StoreVersionError extends Error {
  constructor (message = 'the database schema is newer than this program') {
    super(message)
    this.name = 'StoreVersionError'
  }
}

/** The database file is not a regular file or other users can read it. */
export class StorePermissionError extends UserError {
  constructor (message: string) {
    super(message, 'DB_PERMISSIONS')
    this.name = 'StorePermissionError'
  }
}

export class DuplicateMessageError extends Error {
  constructor (message = 'a message with this id is already stored') {
    super(message)
    this.name = 'DuplicateMessageError'
  }
}

export class DuplicateSurbError extends Error {
  constructor (message = 'a SURB with this id is already stored') {
    super(message)
    this.name = 'DuplicateSurbError'
  }
}

/** A caller passed something the schema cannot hold (bad id, nick, key, state). */
export class InvalidStoreInputError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'InvalidStoreInputError'
  }
}

/** Schema migrations; migration i takes the database from user_version i to i + 1. Append only. */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE messages (
    id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 32),
    direction TEXT NOT NULL CHECK (direction IN ('out', 'in')),
    peer_nick TEXT NOT NULL,
    peer_fingerprint TEXT NOT NULL,
    text TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (
      (direction = 'out' AND state IN ('queued', 'sent', 'delivered', 'failed')) OR
      (direction = 'in' AND state = 'received')
    ),
    verified INTEGER NOT NULL DEFAULT 0 CHECK (verified IN (0, 1)),
    verify_reason TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_attempt_at INTEGER,
    expires_at INTEGER,
    delivered_at INTEGER,
    failure_reason TEXT,
    stored_at INTEGER NOT NULL
  ) STRICT;
  CREATE INDEX messages_by_peer ON messages (peer_nick, timestamp);
  CREATE INDEX messages_outbox ON messages (state, timestamp) WHERE direction = 'out';

  CREATE TABLE pins (
    nick TEXT PRIMARY KEY NOT NULL,
    identity_key BLOB NOT NULL CHECK (length(identity_key) = 32),
    fingerprint TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    accepted INTEGER NOT NULL CHECK (accepted IN (0, 1)),
    pending_key BLOB CHECK (pending_key IS NULL OR length(pending_key) = 32),
    pending_fingerprint TEXT,
    pending_seen INTEGER
  ) STRICT;

  CREATE TABLE surbs (
    id TEXT PRIMARY KEY NOT NULL,
    message_id TEXT NOT NULL,
    secret BLOB NOT NULL,
    expires_at INTEGER NOT NULL
  ) STRICT;
  CREATE INDEX surbs_by_expiry ON surbs (expires_at);
  `,
  // protocol version 2: the user's rotating onion keys, its mailbox keys, and the seal keys already seen
  // (each table has its own module: node/onion-keys.ts, node/mailbox-keys.ts, node/seen-seals.ts)
  `
  CREATE TABLE onion_keys (
    epoch INTEGER PRIMARY KEY NOT NULL CHECK (epoch >= 0),
    public_key BLOB NOT NULL CHECK (length(public_key) = 32),
    private_key BLOB NOT NULL CHECK (length(private_key) = 32),
    not_before INTEGER NOT NULL,
    not_after INTEGER NOT NULL CHECK (not_after > not_before)
  ) STRICT;

  CREATE TABLE mailbox_keys (
    id BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 32),
    relay BLOB NOT NULL CHECK (length(relay) = 32),
    seed BLOB NOT NULL CHECK (length(seed) = 32),
    public_key BLOB NOT NULL CHECK (length(public_key) = 32),
    created_at INTEGER NOT NULL,
    registered_at INTEGER,
    retired_at INTEGER
  ) STRICT;

  CREATE TABLE seen_seals (
    ephemeral BLOB PRIMARY KEY NOT NULL CHECK (length(ephemeral) = 32),
    expires_at INTEGER NOT NULL
  ) STRICT;
  CREATE INDEX seen_seals_by_expiry ON seen_seals (expires_at);

  -- an outgoing message gains the state 'stored': a mailbox of the recipient holds it (one tick)
  CREATE TABLE messages_v2 (
    id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 32),
    direction TEXT NOT NULL CHECK (direction IN ('out', 'in')),
    peer_nick TEXT NOT NULL,
    peer_fingerprint TEXT NOT NULL,
    text TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (
      (direction = 'out' AND state IN ('queued', 'sent', 'stored', 'delivered', 'failed')) OR
      (direction = 'in' AND state = 'received')
    ),
    verified INTEGER NOT NULL DEFAULT 0 CHECK (verified IN (0, 1)),
    verify_reason TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_attempt_at INTEGER,
    expires_at INTEGER,
    delivered_at INTEGER,
    failure_reason TEXT,
    stored_at INTEGER NOT NULL
  ) STRICT;
  INSERT INTO messages_v2 SELECT id, direction, peer_nick, peer_fingerprint, text, timestamp, state, verified, verify_reason,
    attempts, last_attempt_at, expires_at, delivered_at, failure_reason, stored_at FROM messages ORDER BY rowid;
  DROP TABLE messages;
  ALTER TABLE messages_v2 RENAME TO messages;
  CREATE INDEX messages_by_peer ON messages (peer_nick, timestamp);
  CREATE INDEX messages_outbox ON messages (state, timestamp) WHERE direction = 'out';

  -- the latest verified name record of each contact: its mailboxes and onion keys, to send and to
  -- receipt without a lookup, also when the directory has lost it
  CREATE TABLE contact_records (
    nick TEXT PRIMARY KEY NOT NULL,
    record BLOB NOT NULL,
    sequence INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  ) STRICT;

  -- receipts owed: deposited in the sender's mailbox until one stores it
  CREATE TABLE receipts_out (
    message_id TEXT PRIMARY KEY NOT NULL CHECK (length(message_id) = 32),
    peer_nick TEXT NOT NULL,
    created_at INTEGER NOT NULL
  ) STRICT;
  `,
  // contacts (issue 15): a pin the user verified, messages from senders not yet accepted (requests),
  // blocked keys, and how far each conversation has been read (tables of node/contacts-store.ts)
  `
  ALTER TABLE pins ADD COLUMN verified_at INTEGER;
  ALTER TABLE messages ADD COLUMN request INTEGER NOT NULL DEFAULT 0 CHECK (request IN (0, 1));

  CREATE TABLE requests (
    nick TEXT PRIMARY KEY NOT NULL,
    identity_key BLOB NOT NULL CHECK (length(identity_key) = 32),
    fingerprint TEXT NOT NULL,
    record BLOB NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE blocked (
    identity_key BLOB PRIMARY KEY NOT NULL CHECK (length(identity_key) = 32),
    nick TEXT NOT NULL,
    blocked_at INTEGER NOT NULL,
    dropped INTEGER NOT NULL DEFAULT 0
  ) STRICT;

  CREATE TABLE read_marks (
    nick TEXT PRIMARY KEY NOT NULL,
    read_at INTEGER NOT NULL
  ) STRICT;
  `
]

/** The schema version this code writes. */
export const SCHEMA_VERSION = MIGRATIONS.length

const MESSAGE_COLUMNS = `id, direction, peer_nick, peer_fingerprint, text, timestamp, state, verified, verify_reason,
  attempts, last_attempt_at, expires_at, delivered_at, failure_reason, stored_at, request`

type Row = Record<string, SQLOutputValue>

function hexId (value: string | Uint8Array, what: string, bytes?: number): string {
  const hex = typeof value === 'string' ? value.toLowerCase() : value instanceof Uint8Array ? Buffer.from(value).toString('hex') : ''
  if (hex.length === 0 || hex.length % 2 !== 0 || !/^[0-9a-f]+$/.test(hex)) throw new InvalidStoreInputError(`${what} must be hex or bytes`)
  if (bytes != null && hex.length !== bytes * 2) throw new InvalidStoreInputError(`${what} must be ${bytes} bytes`)
  return hex
}

function checkNick (nick: string): void {
  if (!validateNick(nick)) throw new InvalidStoreInputError('nick must be 1-32 characters of [a-z0-9_-]')
}

function checkTime (value: number, what: string): void {
  if (!Number.isSafeInteger(value)) throw new InvalidStoreInputError(`${what} must be an integer (ms since the epoch)`)
}

function num (value: SQLOutputValue): number {
  return Number(value)
}

function numOrNull (value: SQLOutputValue): number | null {
  return value == null ? null : Number(value)
}

function strOrNull (value: SQLOutputValue): string | null {
  return value == null ? null : String(value)
}

function blob (value: SQLOutputValue): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError('expected a BLOB column')
  const out = new Uint8Array(value.length)
  out.set(value)
  return out
}

function toMessage (row: Row): StoredMessage {
  return {
    id: String(row.id),
    direction: String(row.direction) as Direction,
    peerNick: String(row.peer_nick),
    peerFingerprint: String(row.peer_fingerprint),
    text: String(row.text),
    timestamp: num(row.timestamp),
    state: String(row.state) as MessageState,
    verified: num(row.verified) === 1,
    verifyReason: strOrNull(row.verify_reason),
    attempts: num(row.attempts),
    lastAttemptAt: numOrNull(row.last_attempt_at),
    expiresAt: numOrNull(row.expires_at),
    deliveredAt: numOrNull(row.delivered_at),
    failureReason: strOrNull(row.failure_reason),
    storedAt: num(row.stored_at),
    request: num(row.request) === 1
  }
}

function toPin (row: Row): Pin {
  return {
    nick: String(row.nick),
    identityKey: blob(row.identity_key),
    fingerprint: String(row.fingerprint),
    firstSeen: num(row.first_seen),
    verifiedAt: numOrNull(row.verified_at),
    accepted: num(row.accepted) === 1,
    pending: row.pending_key == null
      ? null
      : { identityKey: blob(row.pending_key), fingerprint: String(row.pending_fingerprint), firstSeen: num(row.pending_seen) }
  }
}

function sameBytes (a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0
}

function isUniqueViolation (err: unknown): boolean {
  return err instanceof Error && /UNIQUE constraint failed|PRIMARY KEY/i.test(err.message)
}

function prepareStatements (db: DatabaseSync) {
  return {
    insertOutgoing: db.prepare(`INSERT INTO messages (id, direction, peer_nick, peer_fingerprint, text, timestamp, state,
      expires_at, stored_at) VALUES (?, 'out', ?, ?, ?, ?, 'queued', ?, ?)`),
    insertIncoming: db.prepare(`INSERT INTO messages (id, direction, peer_nick, peer_fingerprint, text, timestamp, state,
      verified, verify_reason, stored_at, request) VALUES (?, 'in', ?, ?, ?, ?, 'received', ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`),
    markSent: db.prepare(`UPDATE messages SET state = 'sent', attempts = attempts + 1, last_attempt_at = ?
      WHERE id = ? AND direction = 'out' AND state IN ('queued', 'sent')`),
    markDelivered: db.prepare(`UPDATE messages SET state = 'delivered', delivered_at = ?, failure_reason = NULL
      WHERE id = ? AND direction = 'out' AND state IN ('queued', 'sent', 'stored', 'failed')`),
    markStored: db.prepare(`UPDATE messages SET state = 'stored', failure_reason = NULL
      WHERE id = ? AND direction = 'out' AND state IN ('queued', 'sent', 'failed')`),
    awaitingReceipt: db.prepare(`SELECT ${MESSAGE_COLUMNS} FROM messages WHERE direction = 'out' AND state = 'stored' ORDER BY timestamp, rowid`),
    getContactRecord: db.prepare('SELECT record, sequence FROM contact_records WHERE nick = ?'),
    putContactRecord: db.prepare(`INSERT INTO contact_records (nick, record, sequence, updated_at) VALUES (?, ?, ?, ?)
      ON CONFLICT (nick) DO UPDATE SET record = excluded.record, sequence = excluded.sequence, updated_at = excluded.updated_at
      WHERE excluded.sequence > contact_records.sequence OR (excluded.sequence = contact_records.sequence AND excluded.record IS NOT contact_records.record)`),
    deleteContactRecord: db.prepare('DELETE FROM contact_records WHERE nick = ?'),
    addReceipt: db.prepare('INSERT INTO receipts_out (message_id, peer_nick, created_at) VALUES (?, ?, ?) ON CONFLICT (message_id) DO NOTHING'),
    receiptsOut: db.prepare('SELECT message_id, peer_nick, created_at FROM receipts_out ORDER BY created_at, rowid'),
    doneReceipt: db.prepare('DELETE FROM receipts_out WHERE message_id = ?'),
    expireReceipts: db.prepare('DELETE FROM receipts_out WHERE created_at <= ?'),
    markFailed: db.prepare(`UPDATE messages SET state = 'failed', failure_reason = ?
      WHERE id = ? AND direction = 'out' AND state IN ('queued', 'sent')`),
    cancel: db.prepare(`UPDATE messages SET state = 'failed', failure_reason = 'cancelled'
      WHERE id = ? AND direction = 'out' AND state IN ('queued', 'sent', 'failed') AND coalesce(failure_reason, '') <> 'cancelled'`),
    outgoingByPrefix: db.prepare(`SELECT ${MESSAGE_COLUMNS} FROM messages WHERE direction = 'out' AND substr(id, 1, ?) = ? LIMIT 2`),
    requeue: db.prepare(`UPDATE messages SET state = 'queued', failure_reason = NULL, expires_at = ?
      WHERE id = ? AND direction = 'out' AND state = 'failed'`),
    expireOutgoing: db.prepare(`UPDATE messages SET state = 'failed', failure_reason = 'expired'
      WHERE direction = 'out' AND state IN ('queued', 'sent') AND expires_at IS NOT NULL AND expires_at <= ?`),
    getMessage: db.prepare(`SELECT ${MESSAGE_COLUMNS} FROM messages WHERE id = ?`),
    history: db.prepare(`SELECT * FROM (
        SELECT rowid AS seq, ${MESSAGE_COLUMNS} FROM messages WHERE peer_nick = ? ORDER BY timestamp DESC, seq DESC LIMIT ?
      ) ORDER BY timestamp, seq`),
    deliveredAmongLatest: db.prepare(`SELECT 1 AS found FROM (
        SELECT rowid AS seq, direction, state FROM messages WHERE peer_nick = ? ORDER BY timestamp DESC, seq DESC LIMIT ?
      ) WHERE direction = 'out' AND state = 'delivered' LIMIT 1`),
    outbox: db.prepare(`SELECT ${MESSAGE_COLUMNS} FROM messages
      WHERE direction = 'out' AND state IN ('queued', 'sent') AND (expires_at IS NULL OR expires_at > ?)
      ORDER BY timestamp, rowid`),
    getPin: db.prepare('SELECT * FROM pins WHERE nick = ?'),
    insertPin: db.prepare(`INSERT INTO pins (nick, identity_key, fingerprint, first_seen, accepted)
      VALUES (?, ?, ?, ?, 1)`),
    setPending: db.prepare(`UPDATE pins SET accepted = 0, pending_key = ?, pending_fingerprint = ?, pending_seen = ?
      WHERE nick = ?`),
    acceptPending: db.prepare(`UPDATE pins SET identity_key = pending_key, fingerprint = pending_fingerprint,
      first_seen = pending_seen, accepted = 1, verified_at = NULL, pending_key = NULL, pending_fingerprint = NULL, pending_seen = NULL
      WHERE nick = ? AND pending_key IS NOT NULL`),
    rejectPending: db.prepare(`UPDATE pins SET accepted = 1, pending_key = NULL, pending_fingerprint = NULL,
      pending_seen = NULL WHERE nick = ? AND pending_key IS NOT NULL`),
    contacts: db.prepare('SELECT * FROM pins ORDER BY nick'),
    insertSurb: db.prepare('INSERT INTO surbs (id, message_id, secret, expires_at) VALUES (?, ?, ?, ?)'),
    takeSurb: db.prepare('DELETE FROM surbs WHERE id = ? RETURNING id, message_id, secret, expires_at'),
    expireSurbs: db.prepare('DELETE FROM surbs WHERE expires_at <= ?')
  } satisfies Record<string, StatementSync>
}

type Statements = ReturnType<typeof prepareStatements>

export class ChatStore {
  readonly path: string
  #db: DatabaseSync | undefined
  #sql: Statements | undefined
  readonly #wal: WalSync
  #savepoints = 0

  private constructor (path: string, db: DatabaseSync, sql: Statements, wal: WalSync) {
    this.path = path
    this.#db = db
    this.#sql = sql
    this.#wal = wal
  }

  /** `<dataDir>/p2pchat.db` */
  static pathIn (dataDir: string): string {
    return join(dataDir, STORE_FILE_NAME)
  }

  /**
   * Opens (creating if missing) the database file and brings its schema up to date.
   * Throws StorePermissionError for a file others can read, StoreVersionError for a newer schema.
   */
  static open (path: string, options: { busyTimeoutMs?: number, datasync?: DataSync } = {}): ChatStore {
    const db = openDatabase(path, { busyTimeoutMs: options.busyTimeoutMs, permissionError: message => new StorePermissionError(message) }, migrate)
    try {
      return new ChatStore(path, db, prepareStatements(db), new WalSync(path, { datasync: options.datasync }))
    } catch (err) {
      db.close()
      throw err
    }
  }

  /** Closes the database; a second call does nothing. */
  close (): void {
    const db = this.#db
    this.#db = undefined
    this.#sql = undefined
    if (db?.isOpen === true) db.close()
    this.#wal.close()
  }

  get isOpen (): boolean {
    return this.#db != null
  }

  /**
   * The open database, for the table modules beside this one (node/onion-keys.ts and the others), which
   * prepare their own statements and write inside this store's transactions. Throws StoreClosedError.
   */
  get database (): DatabaseSync {
    return this.#live().db
  }

  #live (): { db: DatabaseSync, sql: Statements } {
    if (this.#db == null || this.#sql == null) throw new StoreClosedError()
    return { db: this.#db, sql: this.#sql }
  }

  /**
   * Runs `fn` in one transaction (BEGIN IMMEDIATE ... COMMIT; ROLLBACK if it throws). Nested calls use
   * savepoints. `fn` must be synchronous: the store is.
   */
  transaction<T> (fn: () => T): T {
    const { db } = this.#live()
    if (db.isTransaction) {
      const name = `sp${++this.#savepoints}`
      db.exec(`SAVEPOINT ${name}`)
      try {
        const result = fn()
        db.exec(`RELEASE ${name}`)
        return result
      } catch (err) {
        db.exec(`ROLLBACK TO ${name}; RELEASE ${name}`)
        throw err
      } finally {
        this.#savepoints--
      }
    }
    db.exec('BEGIN IMMEDIATE')
    try {
      const result = fn()
      db.exec('COMMIT')
      return result
    } catch (err) {
      if (db.isTransaction) db.exec('ROLLBACK')
      throw err
    }
  }

  /**
   * `fn`'s writes committed without an fsync of their own (synchronous=NORMAL for that commit): a crash
   * may lose them, never corrupt the file; the next durable commit fsyncs the WAL and them with it (WAL
   * frames are written in order). Inside a transaction, the transaction's commit decides.
   */
  #lazy<T> (fn: () => T): T {
    return commitWithoutSync(this.#live().db, fn)
  }

  /**
   * `transaction(fn)` committed without an fsync in the commit: await `durable()` before anything tells
   * another party that its writes are kept (the recipient's row before its ACK and receipt). A crash of
   * the machine before then may lose them; nothing else differs.
   */
  deferredTransaction<T> (fn: () => T): T {
    const { db } = this.#live()
    return this.#wal.commit(db, () => this.transaction(fn))
  }

  /** `transaction(fn)` committed without an fsync of its own, for writes a crash may lose (commitWithoutSync). */
  lazyTransaction<T> (fn: () => T): T {
    return this.#lazy(() => this.transaction(fn))
  }

  /**
   * Resolves once every `addOutgoing`, `markStored` and `deferredTransaction` committed before the call is on disk (an
   * fdatasync of the WAL on the thread pool, shared by the commits made meanwhile; at once when none is
   * waiting). Rejects StoreClosedError, or WalSyncError if the store closed first or a sync failed.
   */
  async durable (): Promise<void> {
    this.#live()
    await this.#wal.durable()
  }

  // ---- messages ----

  /**
   * Stores a new outgoing message in state 'queued'. Throws DuplicateMessageError if the id exists.
   * Committed without an fsync of its own: await `durable()` before the message leaves.
   */
  addOutgoing (init: OutgoingInit, now = Date.now()): StoredMessage {
    const { db, sql } = this.#live()
    const id = hexId(init.id, 'message id', 16)
    checkNick(init.peerNick)
    checkTime(init.timestamp, 'timestamp')
    if (init.expiresAt != null) checkTime(init.expiresAt, 'expiresAt')
    try {
      this.#wal.commit(db, () => sql.insertOutgoing.run(id, init.peerNick, init.peerFingerprint, init.text, init.timestamp, init.expiresAt ?? null, now))
    } catch (err) {
      if (isUniqueViolation(err)) throw new DuplicateMessageError()
      throw err
    }
    return toMessage(sql.getMessage.get(id) as Row)
  }

  /**
   * Records one more send attempt: 'queued' or 'sent' -> 'sent'. False if unknown, delivered or failed.
   * Not fsynced (it is on the way of every send; the message itself was, by addOutgoing): a crash may
   * lose it, leaving the message 'queued' with one attempt fewer, and it is sent again, as it would be.
   */
  markSent (id: string | Uint8Array, attemptAt = Date.now()): boolean {
    const { sql } = this.#live()
    return this.#lazy(() => sql.markSent.run(attemptAt, hexId(id, 'message id', 16)).changes === 1)
  }

  /** A receipt arrived: -> 'delivered' (also from 'failed': the receipt proves delivery). False if unknown or already delivered. */
  markDelivered (id: string | Uint8Array, at = Date.now()): boolean {
    const { sql } = this.#live()
    return sql.markDelivered.run(at, hexId(id, 'message id', 16)).changes === 1
  }

  /**
   * A mailbox of the recipient holds it: 'queued', 'sent' or 'failed' -> 'stored'. False if unknown, stored
   * or delivered. Committed without an fsync of its own: await `durable()` before saying it is stored.
   */
  markStored (id: string | Uint8Array): boolean {
    const { db, sql } = this.#live()
    const key = hexId(id, 'message id', 16)
    return this.#wal.commit(db, () => sql.markStored.run(key).changes === 1)
  }

  /** Outgoing messages a mailbox holds, still waiting for the recipient's receipt; oldest first. */
  awaitingReceipt (): StoredMessage[] {
    const { sql } = this.#live()
    return sql.awaitingReceipt.all().map(toMessage)
  }

  // ---- contacts' records and owed receipts (protocol v2) ----

  /** The latest record kept for a contact (its signed bytes), if any. */
  contactRecord (nick: string): Uint8Array | undefined {
    const { sql } = this.#live()
    checkNick(nick)
    const row = sql.getContactRecord.get(nick)
    return row == null ? undefined : blob(row.record)
  }

  /**
   * Keeps a verified record of a contact; an older sequence does not replace a newer one, and the record
   * on file put again changes nothing (no write, so no fsync: every send puts the record it used).
   */
  putContactRecord (nick: string, record: Uint8Array, sequence: bigint, now = Date.now()): void {
    const { sql } = this.#live()
    checkNick(nick)
    sql.putContactRecord.run(nick, record, sequence, now)
  }

  forgetContactRecord (nick: string): void {
    const { sql } = this.#live()
    sql.deleteContactRecord.run(nick)
  }

  /** A receipt owed for an incoming message, kept until a mailbox of its sender stores it. */
  oweReceipt (messageId: string | Uint8Array, peerNick: string, now = Date.now()): void {
    const { sql } = this.#live()
    checkNick(peerNick)
    sql.addReceipt.run(hexId(messageId, 'message id', 16), peerNick, now)
  }

  owedReceipts (): Array<{ messageId: string, peerNick: string, createdAt: number }> {
    const { sql } = this.#live()
    return sql.receiptsOut.all().map(r => ({ messageId: String(r.message_id), peerNick: String(r.peer_nick), createdAt: num(r.created_at) }))
  }

  receiptStored (messageId: string | Uint8Array): void {
    const { sql } = this.#live()
    sql.doneReceipt.run(hexId(messageId, 'message id', 16))
  }

  /** Gives up receipts owed since before `before` (their message can no longer be waited for). */
  expireReceipts (before: number): number {
    const { sql } = this.#live()
    return Number(sql.expireReceipts.run(before).changes)
  }

  /** 'queued' or 'sent' -> 'failed' with a reason. False if unknown, delivered or already failed. */
  markFailed (id: string | Uint8Array, reason: string): boolean {
    const { sql } = this.#live()
    return sql.markFailed.run(reason, hexId(id, 'message id', 16)).changes === 1
  }

  /** The user retries a failed message: 'failed' -> 'queued' with a new expiry. False if it is not failed. */
  requeue (id: string | Uint8Array, expiresAt: number | null): boolean {
    const { sql } = this.#live()
    if (expiresAt != null) checkTime(expiresAt, 'expiresAt')
    return sql.requeue.run(expiresAt, hexId(id, 'message id', 16)).changes === 1
  }

  /** The user cancels a queued or failed message: 'failed' with reason 'cancelled'. False if not such a message. */
  cancel (id: string | Uint8Array): boolean {
    const { sql } = this.#live()
    return sql.cancel.run(hexId(id, 'message id', 16)).changes === 1
  }

  /** Outgoing messages whose id starts with `prefix` (hex); at most 2 (to tell a unique prefix). */
  outgoingByPrefix (prefix: string): StoredMessage[] {
    const { sql } = this.#live()
    const p = prefix.toLowerCase()
    if (!/^[0-9a-f]{1,32}$/.test(p)) throw new InvalidStoreInputError('prefix must be hex')
    return sql.outgoingByPrefix.all(p.length, p).map(toMessage)
  }

  /** Marks 'failed' (reason 'expired') every outgoing message still pending at `now` past its expiry; returns how many. */
  expireOutgoing (now = Date.now()): number {
    const { sql } = this.#live()
    return Number(sql.expireOutgoing.run(now).changes)
  }

  /** Stores an incoming message; false (and nothing written) if a message with this id is already stored. */
  addIncoming (init: IncomingInit): boolean {
    const { sql } = this.#live()
    const id = hexId(init.id, 'message id', 16)
    checkNick(init.peerNick)
    checkTime(init.timestamp, 'timestamp')
    const result = sql.insertIncoming.run(
      id, init.peerNick, init.peerFingerprint, init.text, init.timestamp,
      init.verified ? 1 : 0, init.verifyReason ?? null, init.storedAt ?? Date.now(), init.request === true ? 1 : 0
    )
    return result.changes === 1
  }

  get (id: string | Uint8Array): StoredMessage | undefined {
    const { sql } = this.#live()
    const row = sql.getMessage.get(hexId(id, 'message id', 16))
    return row == null ? undefined : toMessage(row)
  }

  /** The last `limit` messages with `nick`, both directions, oldest first. */
  history (nick: string, limit = 100): StoredMessage[] {
    const { sql } = this.#live()
    if (!Number.isSafeInteger(limit) || limit < 0) throw new InvalidStoreInputError('limit must be a non-negative integer')
    return sql.history.all(nick, limit).map(toMessage)
  }

  /**
   * Is one of the latest `limit` messages with `nick` an outgoing one it receipted? The same answer as
   * `history(nick, limit).some(m => m.direction === 'out' && m.state === 'delivered')`, without reading
   * the rows (it is asked on every send).
   */
  deliveredAmongLatest (nick: string, limit: number): boolean {
    const { sql } = this.#live()
    if (!Number.isSafeInteger(limit) || limit < 0) throw new InvalidStoreInputError('limit must be a non-negative integer')
    return sql.deliveredAmongLatest.get(nick, limit) != null
  }

  /** Outgoing messages still to deliver at `now`: 'queued' or 'sent', not expired; oldest first. */
  outbox (now = Date.now()): StoredMessage[] {
    const { sql } = this.#live()
    return sql.outbox.all(now).map(toMessage)
  }

  // ---- pins (trust on first use) ----

  /**
   * Trust on first use. 'new': first key for the nick, pinned and accepted. 'same': the pinned key.
   * 'changed': another key; it is kept as the pending key (the pinned key stays in force) and the pin is
   * marked not accepted until the user calls `acceptKey` or `rejectKey`.
   */
  pin (nick: string, identityKey: Uint8Array, now = Date.now()): PinResult {
    const { sql } = this.#live()
    checkNick(nick)
    if (!(identityKey instanceof Uint8Array) || identityKey.length !== 32) throw new InvalidStoreInputError('identity key must be 32 bytes')
    const fp = fingerprint(identityKey)
    return this.transaction(() => {
      const row = sql.getPin.get(nick)
      if (row == null) {
        sql.insertPin.run(nick, identityKey, fp, now)
        return 'new'
      }
      const pin = toPin(row)
      if (sameBytes(pin.identityKey, identityKey)) return 'same'
      // keep the time a pending key was first seen if it is seen again
      if (pin.pending == null || !sameBytes(pin.pending.identityKey, identityKey)) {
        sql.setPending.run(identityKey, fp, now, nick)
      }
      return 'changed'
    })
  }

  /** The user accepts the pending key: it replaces the pinned one. False if there is none. */
  acceptKey (nick: string): boolean {
    const { sql } = this.#live()
    return sql.acceptPending.run(nick).changes === 1
  }

  /** The user rejects the pending key: it is forgotten and the pinned key stays. False if there is none. */
  rejectKey (nick: string): boolean {
    const { sql } = this.#live()
    return sql.rejectPending.run(nick).changes === 1
  }

  getPin (nick: string): Pin | undefined {
    const { sql } = this.#live()
    const row = sql.getPin.get(nick)
    return row == null ? undefined : toPin(row)
  }

  /** Every pinned nick, sorted by nick. */
  contacts (): Pin[] {
    const { sql } = this.#live()
    return sql.contacts.all().map(toPin)
  }

  // ---- SURB secrets awaiting a receipt ----

  putSurb (init: SurbInit): void {
    const { sql } = this.#live()
    const id = hexId(init.id, 'SURB id')
    const messageId = hexId(init.messageId, 'message id', 16)
    if (!(init.secret instanceof Uint8Array) || init.secret.length === 0) throw new InvalidStoreInputError('SURB secret must be bytes')
    checkTime(init.expiresAt, 'expiresAt')
    try {
      sql.insertSurb.run(id, messageId, init.secret, init.expiresAt)
    } catch (err) {
      if (isUniqueViolation(err)) throw new DuplicateSurbError()
      throw err
    }
  }

  /**
   * Removes and returns the SURB (single use: a second call returns undefined). With `now`, an expired
   * SURB is removed and undefined returned.
   */
  takeSurb (id: string | Uint8Array, now?: number): SurbRecord | undefined {
    const { sql } = this.#live()
    const row = sql.takeSurb.get(hexId(id, 'SURB id'))
    if (row == null) return undefined
    const record: SurbRecord = {
      id: String(row.id),
      messageId: String(row.message_id),
      secret: blob(row.secret),
      expiresAt: num(row.expires_at)
    }
    if (now != null && record.expiresAt <= now) return undefined
    return record
  }

  /** Deletes every SURB expired at `now`; returns how many. */
  expireSurbs (now = Date.now()): number {
    const { sql } = this.#live()
    return Number(sql.expireSurbs.run(now).changes)
  }
}

/**
 * Brings the schema to SCHEMA_VERSION, one migration per transaction. The version is read inside the
 * write transaction, so two processes opening a fresh file at once do not both run a migration.
 */
function migrate (db: DatabaseSync): void {
  for (;;) {
    db.exec('BEGIN IMMEDIATE')
    try {
      const version = Number(db.prepare('PRAGMA user_version').get()?.user_version ?? 0)
      if (version > SCHEMA_VERSION) {
        throw new StoreVersionError(`database schema version ${version} is newer than this program's ${SCHEMA_VERSION}`)
      }
      if (version === SCHEMA_VERSION) {
        db.exec('COMMIT')
        return
      }
      db.exec(MIGRATIONS[version])
      db.exec(`PRAGMA user_version = ${version + 1}`)
      db.exec('COMMIT')
    } catch (err) {
      if (db.isTransaction) db.exec('ROLLBACK')
      throw err
    }
  }
}
