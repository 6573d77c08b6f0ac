/**
 * The relay's mailbox store (SPEC.md section 6): one SQLite file, `<dataDir>/mailbox.db` (node:sqlite).
 *
 * Tables: `mailboxes` (id 32, public key 32, the owner's signed name record, the newest REGISTER
 * timestamp, created, last seen, and running item count / bytes) and `items` (item id 16 random bytes,
 * mailbox id, the opaque sealed bytes, stored at, last pushed at). Created mode 0600; a file that other
 * users can read is refused. WAL journal with `synchronous=FULL`: every commit is fsynced before the call
 * returns (all but `markPushed`, which a crash may lose: every start forgets the pushes anyway, and
 * `ack`, whose loss brings items back that their owner drops as replays), except
 * `deposit`'s: it commits without an fsync and resolves 'stored' once an fdatasync of the WAL on the
 * thread pool covered it (protocols/sqlite.ts), so an item reported as stored survives a crash. `secure_delete` overwrites deleted
 * items. Schema versioned with `PRAGMA user_version`, one migration per transaction.
 *
 * Limits are checked inside the write transaction (BEGIN IMMEDIATE), so two writers cannot both pass a
 * limit. Every method but `deposit` is synchronous; times are ms since the epoch, passed in by the caller.
 */
import { join } from 'node:path'
import type { DatabaseSync, SQLOutputValue, StatementSync } from 'node:sqlite'
import { commitWithoutSync, openDatabase, WalSync, type DataSync } from '../sqlite.ts'
import { ITEM_ID_BYTES, MAILBOX_ID_BYTES, PUBLIC_KEY_BYTES } from './constants.ts'
import {
  InvalidItemIdError, InvalidKeyError, InvalidMailboxIdError, MailboxStoreClosedError, MailboxStorePermissionError,
  MailboxStoreVersionError
} from './errors.ts'

/** The database file inside the relay's data directory. */
export const MAILBOX_STORE_FILE_NAME = 'mailbox.db'
/** How long a write waits for another connection's lock before failing. */
export { DEFAULT_BUSY_TIMEOUT_MS } from '../sqlite.ts'

export interface MailboxRow {
  id: Uint8Array
  publicKey: Uint8Array
  record: Uint8Array
  /** the signed timestamp of the newest REGISTER accepted */
  registeredAt: number
  createdAt: number
  /** the relay's clock at the owner's last authenticated request */
  lastSeen: number
  itemCount: number
  itemBytes: number
}

export interface ItemRow {
  itemId: Uint8Array
  mailboxId: Uint8Array
  bytes: Uint8Array
  storedAt: number
  lastPushedAt: number | null
}

export interface Totals { mailboxes: number, items: number, bytes: number }

/** Limits a write checks (the service passes its configuration). */
export interface StoreLimits {
  maxItemsPerMailbox: number
  maxBytesPerMailbox: number
  maxItemsPerRelay: number
  maxBytesPerRelay: number
  maxMailboxes: number
}

export type RegisterResult = 'created' | 'refreshed' | 'stale' | 'relay-full'
export type DepositResult = 'stored' | 'unknown-mailbox' | 'mailbox-full' | 'relay-full'

/** Migration i takes the database from user_version i to i + 1. Append only. */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE mailboxes (
    id BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 32),
    public_key BLOB NOT NULL CHECK (length(public_key) = 32),
    record BLOB NOT NULL,
    registered_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    item_count INTEGER NOT NULL DEFAULT 0 CHECK (item_count >= 0),
    item_bytes INTEGER NOT NULL DEFAULT 0 CHECK (item_bytes >= 0)
  ) STRICT;

  CREATE TABLE items (
    item_id BLOB PRIMARY KEY NOT NULL CHECK (length(item_id) = 16),
    mailbox_id BLOB NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    bytes BLOB NOT NULL,
    stored_at INTEGER NOT NULL,
    last_pushed_at INTEGER
  ) STRICT;
  CREATE INDEX items_by_mailbox ON items (mailbox_id, stored_at);
  CREATE INDEX items_by_age ON items (stored_at);
  `
]

/** The schema version this code writes. */
export const MAILBOX_SCHEMA_VERSION = MIGRATIONS.length

type Row = Record<string, SQLOutputValue>

function blob (value: SQLOutputValue): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError('expected a BLOB column')
  return new Uint8Array(value)
}

function toMailbox (row: Row): MailboxRow {
  return {
    id: blob(row.id),
    publicKey: blob(row.public_key),
    record: blob(row.record),
    registeredAt: Number(row.registered_at),
    createdAt: Number(row.created_at),
    lastSeen: Number(row.last_seen),
    itemCount: Number(row.item_count),
    itemBytes: Number(row.item_bytes)
  }
}

function toItem (row: Row): ItemRow {
  return {
    itemId: blob(row.item_id),
    mailboxId: blob(row.mailbox_id),
    bytes: blob(row.bytes),
    storedAt: Number(row.stored_at),
    lastPushedAt: row.last_pushed_at == null ? null : Number(row.last_pushed_at)
  }
}

function checkId (id: Uint8Array): void {
  if (!(id instanceof Uint8Array) || id.length !== MAILBOX_ID_BYTES) throw new InvalidMailboxIdError()
}

function checkItemId (id: Uint8Array): void {
  if (!(id instanceof Uint8Array) || id.length !== ITEM_ID_BYTES) throw new InvalidItemIdError()
}

function prepareStatements (db: DatabaseSync) {
  return {
    getMailbox: db.prepare('SELECT * FROM mailboxes WHERE id = ?'),
    insertMailbox: db.prepare(`INSERT INTO mailboxes (id, public_key, record, registered_at, created_at, last_seen)
      VALUES (?, ?, ?, ?, ?, ?)`),
    refreshMailbox: db.prepare('UPDATE mailboxes SET record = ?, registered_at = ?, last_seen = ? WHERE id = ?'),
    touchMailbox: db.prepare('UPDATE mailboxes SET last_seen = max(last_seen, ?) WHERE id = ?'),
    countMailboxes: db.prepare('SELECT count(*) AS n FROM mailboxes'),
    totals: db.prepare('SELECT count(*) AS mailboxes, coalesce(sum(item_count), 0) AS items, coalesce(sum(item_bytes), 0) AS bytes FROM mailboxes'),
    allMailboxes: db.prepare('SELECT * FROM mailboxes ORDER BY created_at, id'),
    insertItem: db.prepare('INSERT INTO items (item_id, mailbox_id, bytes, stored_at) VALUES (?, ?, ?, ?)'),
    addToMailbox: db.prepare('UPDATE mailboxes SET item_count = item_count + ?, item_bytes = item_bytes + ? WHERE id = ?'),
    getItem: db.prepare('SELECT * FROM items WHERE item_id = ?'),
    items: db.prepare('SELECT * FROM items WHERE mailbox_id = ? ORDER BY stored_at, rowid'),
    due: db.prepare(`SELECT * FROM items WHERE mailbox_id = ? AND (last_pushed_at IS NULL OR last_pushed_at <= ?)
      ORDER BY stored_at, rowid LIMIT ?`),
    markPushed: db.prepare('UPDATE items SET last_pushed_at = ? WHERE item_id = ?'),
    unmarkPushed: db.prepare('UPDATE items SET last_pushed_at = NULL WHERE mailbox_id = ?'),
    unmarkAllPushed: db.prepare('UPDATE items SET last_pushed_at = NULL'),
    deleteItem: db.prepare('DELETE FROM items WHERE item_id = ? AND mailbox_id = ? RETURNING length(bytes) AS size'),
    expiredItems: db.prepare('DELETE FROM items WHERE stored_at <= ? RETURNING mailbox_id, length(bytes) AS size'),
    idleMailboxes: db.prepare('DELETE FROM mailboxes WHERE item_count = 0 AND last_seen <= ? RETURNING id')
  } satisfies Record<string, StatementSync>
}

type Statements = ReturnType<typeof prepareStatements>

export class MailboxStore {
  readonly path: string
  #db: DatabaseSync | undefined
  #sql: Statements | undefined
  readonly #wal: WalSync

  private constructor (path: string, db: DatabaseSync, sql: Statements, wal: WalSync) {
    this.path = path
    this.#db = db
    this.#sql = sql
    this.#wal = wal
  }

  /** `<dataDir>/mailbox.db` */
  static pathIn (dataDir: string): string {
    return join(dataDir, MAILBOX_STORE_FILE_NAME)
  }

  /**
   * Opens (creating if missing) the database file and brings its schema up to date. Throws
   * MailboxStorePermissionError for a file others can read, MailboxStoreVersionError for a newer schema.
   */
  static open (path: string, options: { busyTimeoutMs?: number, datasync?: DataSync } = {}): MailboxStore {
    const db = openDatabase(path, { busyTimeoutMs: options.busyTimeoutMs, permissionError: message => new MailboxStorePermissionError(message) }, migrate)
    try {
      return new MailboxStore(path, db, prepareStatements(db), new WalSync(path, { datasync: options.datasync }))
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

  #live (): { db: DatabaseSync, sql: Statements } {
    if (this.#db == null || this.#sql == null) throw new MailboxStoreClosedError()
    return { db: this.#db, sql: this.#sql }
  }

  /**
   * Runs `fn` in one write transaction (BEGIN IMMEDIATE ... COMMIT, fsynced; ROLLBACK if it throws).
   * `'lazy'` (a write a crash may lose: `markPushed`, which every start clears anyway): committed with
   * synchronous=NORMAL, no fsync of its own; the next durable commit fsyncs the WAL and so it too (WAL
   * frames are written in order). `'deferred'`: the same commit, and the caller awaits `#wal.durable()`
   * before it says the write is kept.
   */
  #write<T> (fn: (sql: Statements) => T, mode: 'sync' | 'lazy' | 'deferred' = 'sync'): T {
    const { db, sql } = this.#live()
    const run = (): T => {
      db.exec('BEGIN IMMEDIATE')
      try {
        const result = fn(sql)
        db.exec('COMMIT')
        return result
      } catch (err) {
        if (db.isTransaction) db.exec('ROLLBACK')
        throw err
      }
    }
    if (mode === 'sync') return run()
    return mode === 'lazy' ? commitWithoutSync(db, run) : this.#wal.commit(db, run)
  }

  getMailbox (id: Uint8Array): MailboxRow | undefined {
    checkId(id)
    const row = this.#live().sql.getMailbox.get(id)
    return row == null ? undefined : toMailbox(row)
  }

  /** Every mailbox held, oldest first (bounded by maxMailboxes). */
  mailboxes (): MailboxRow[] {
    return this.#live().sql.allMailboxes.all().map(toMailbox)
  }

  totals (): Totals {
    const row = this.#live().sql.totals.get()
    return { mailboxes: Number(row?.mailboxes ?? 0), items: Number(row?.items ?? 0), bytes: Number(row?.bytes ?? 0) }
  }

  /**
   * Creates a mailbox or refreshes its record. `timestamp` is the REGISTER's signed timestamp: one older
   * than the newest accepted is 'stale' (an old record cannot replace a newer one). A new mailbox on a
   * relay holding `maxMailboxes` is 'relay-full'. The caller checked the id and the signature.
   */
  register (init: { id: Uint8Array, publicKey: Uint8Array, record: Uint8Array, timestamp: number }, now: number, limits: Pick<StoreLimits, 'maxMailboxes'>): RegisterResult {
    checkId(init.id)
    if (!(init.publicKey instanceof Uint8Array) || init.publicKey.length !== PUBLIC_KEY_BYTES) throw new InvalidKeyError('a mailbox public key is 32 raw bytes')
    return this.#write(sql => {
      const row = sql.getMailbox.get(init.id)
      if (row != null) {
        if (init.timestamp < Number(row.registered_at)) return 'stale'
        sql.refreshMailbox.run(init.record, init.timestamp, now, init.id)
        return 'refreshed'
      }
      if (Number(sql.countMailboxes.get()?.n ?? 0) >= limits.maxMailboxes) return 'relay-full'
      sql.insertMailbox.run(init.id, init.publicKey, init.record, init.timestamp, now, now)
      return 'created'
    })
  }

  /** Records an authenticated owner request (STOCK, ACK): the mailbox is not idle. */
  touch (id: Uint8Array, now: number): void {
    checkId(id)
    this.#write(sql => sql.touchMailbox.run(now, id))
  }

  /**
   * Stores an item; resolves 'stored' once it is committed and on disk (the fdatasync runs on the thread
   * pool, shared with the deposits committed meanwhile). Checks, in this order: the mailbox exists, the
   * mailbox's item and byte limits, the relay's item and byte limits; a refusal resolves at once. Bad ids
   * and store errors throw before it returns; a failed sync rejects (WalSyncError).
   */
  async deposit (mailboxId: Uint8Array, itemId: Uint8Array, bytes: Uint8Array, now: number, limits: StoreLimits): Promise<DepositResult> {
    const { result, durable } = this.commitDeposit(mailboxId, itemId, bytes, now, limits)
    await durable
    return result
  }

  /**
   * `deposit` in two steps: `result` once committed (other reads see the item), `durable` once that
   * commit is on disk (resolved at once for a refusal; rejects with WalSyncError). What tells the sender
   * the item is kept (STORED) waits for `durable`; a push to the owner need not (MailboxService#deposit).
   */
  commitDeposit (mailboxId: Uint8Array, itemId: Uint8Array, bytes: Uint8Array, now: number, limits: StoreLimits): { result: DepositResult, durable: Promise<void> } {
    checkId(mailboxId)
    checkItemId(itemId)
    const result = this.#write((sql): DepositResult => {
      const row = sql.getMailbox.get(mailboxId)
      if (row == null) return 'unknown-mailbox'
      if (Number(row.item_count) + 1 > limits.maxItemsPerMailbox || Number(row.item_bytes) + bytes.length > limits.maxBytesPerMailbox) return 'mailbox-full'
      const t = sql.totals.get()
      if (Number(t?.items ?? 0) + 1 > limits.maxItemsPerRelay || Number(t?.bytes ?? 0) + bytes.length > limits.maxBytesPerRelay) return 'relay-full'
      sql.insertItem.run(itemId, mailboxId, bytes, now)
      sql.addToMailbox.run(1, bytes.length, mailboxId)
      return 'stored'
    }, 'deferred')
    return { result, durable: result === 'stored' ? this.#wal.durable() : Promise.resolve() }
  }

  getItem (itemId: Uint8Array): ItemRow | undefined {
    checkItemId(itemId)
    const row = this.#live().sql.getItem.get(itemId)
    return row == null ? undefined : toItem(row)
  }

  /** Every item of a mailbox, oldest first (bounded by maxItemsPerMailbox). */
  items (mailboxId: Uint8Array): ItemRow[] {
    checkId(mailboxId)
    return this.#live().sql.items.all(mailboxId).map(toItem)
  }

  /** Up to `limit` items to push: never pushed, or last pushed at or before `pushedBefore`; oldest first. */
  due (mailboxId: Uint8Array, pushedBefore: number, limit: number): ItemRow[] {
    checkId(mailboxId)
    return this.#live().sql.due.all(mailboxId, pushedBefore, limit).map(toItem)
  }

  /**
   * Marks items pushed at `now`, in one transaction, not fsynced (on the way of every push: a deposit's
   * own commit was just fsynced): a crash may lose it, and every start clears it anyway (unmarkAllPushed).
   */
  markPushed (itemIds: Uint8Array[], now: number): void {
    itemIds.forEach(checkItemId)
    this.#write(sql => { for (const id of itemIds) sql.markPushed.run(now, id) }, 'lazy')
  }
  /** Clears `last pushed at` of every item of this mailbox (a REGISTER: the blocks they went through may be dead), so all are due again. */
  unmarkPushed (mailboxId: Uint8Array): void {
    this.#write(sql => { sql.unmarkPushed.run(mailboxId) })
  }
  /** Forgets every push (a relay starting: the blocks of its previous run are gone). */
  unmarkAllPushed (): void {
    this.#write(sql => { sql.unmarkAllPushed.run() })
  }


  /**
   * Deletes the listed items of this mailbox (an authenticated ACK); returns how many were held and
   * deleted. Not fsynced of its own (on the way of every message; the next durable commit syncs it): a
   * crash of the machine may lose it, and the items come back and are pushed again, which their owner
   * drops as replays (seen seal keys) and acknowledges again.
   */
  ack (mailboxId: Uint8Array, itemIds: Uint8Array[], now: number): number {
    checkId(mailboxId)
    itemIds.forEach(checkItemId)
    return this.#write(sql => {
      let deleted = 0
      let size = 0
      for (const id of itemIds) {
        const row = sql.deleteItem.get(id, mailboxId)
        if (row != null) {
          deleted++
          size += Number(row.size)
        }
      }
      if (deleted > 0) sql.addToMailbox.run(-deleted, -size, mailboxId)
      sql.touchMailbox.run(now, mailboxId)
      return deleted
    }, 'lazy')
  }

  /**
   * Deletes items stored at or before `now - itemAgeMs`, then removes empty mailboxes whose owner was
   * last seen at or before `now - idleAgeMs`. Returns what went, the removed mailbox ids included.
   */
  expire (now: number, itemAgeMs: number, idleAgeMs: number): { items: number, bytes: number, mailboxes: Uint8Array[] } {
    return this.#write(sql => {
      const perMailbox = new Map<string, { id: Uint8Array, count: number, size: number }>()
      let items = 0
      let bytes = 0
      for (const row of sql.expiredItems.all(now - itemAgeMs)) {
        const id = blob(row.mailbox_id)
        const key = Buffer.from(id).toString('hex')
        const entry = perMailbox.get(key) ?? { id, count: 0, size: 0 }
        entry.count++
        entry.size += Number(row.size)
        perMailbox.set(key, entry)
        items++
        bytes += Number(row.size)
      }
      for (const e of perMailbox.values()) sql.addToMailbox.run(-e.count, -e.size, e.id)
      const mailboxes = sql.idleMailboxes.all(now - idleAgeMs).map(r => blob(r.id))
      return { items, bytes, mailboxes }
    })
  }
}

/**
 * Brings the schema to MAILBOX_SCHEMA_VERSION, one migration per transaction; the version is read inside
 * the write transaction, so two processes opening a fresh file do not both migrate.
 */
function migrate (db: DatabaseSync): void {
  for (;;) {
    db.exec('BEGIN IMMEDIATE')
    try {
      const version = Number(db.prepare('PRAGMA user_version').get()?.user_version ?? 0)
      if (version > MAILBOX_SCHEMA_VERSION) {
        throw new MailboxStoreVersionError(`mailbox database schema version ${version} is newer than this program's ${MAILBOX_SCHEMA_VERSION}`)
      }
      if (version === MAILBOX_SCHEMA_VERSION) {
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
