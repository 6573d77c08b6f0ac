/**
 * What the two SQLite stores (node/store.ts, a user's; protocols/mailbox/store.ts, a relay's mailboxes)
 * share: how their file is opened, a commit that does not fsync, and a durable commit whose fsync runs
 * off the event loop.
 *
 * A store file is created mode 0600 and refused when it is not a regular file or other users can read it
 * (it holds message text, SURB secrets, mailbox items). It runs in WAL mode with `synchronous = FULL`
 * (every commit fsyncs the WAL before it returns), `secure_delete = ON` (deleted rows are overwritten) and
 * `foreign_keys = ON`.
 *
 * Durable without blocking (`WalSync`). A commit with `synchronous = FULL` calls fsync on the WAL inside
 * the commit, on the event loop (~1.5 ms here, and everything else waits). The three commits a message
 * waits for (the sender's outbox row before 'stored' is said, the relay's mailbox item before it answers
 * STORED, the recipient's row before its ACK and receipt) instead commit with `synchronous = NORMAL` and
 * then await `WalSync.durable()`, an fdatasync of the `-wal` file on libuv's thread pool; the caller says
 * nothing (no packet, no STORED, no ACK) before it resolves. Why this is as durable as FULL
 * (https://sqlite.org/pragma.html#pragma_synchronous, https://sqlite.org/wal.html):
 * - In WAL mode a commit only appends frames to the `-wal` file (the database file is written only by a
 *   checkpoint). FULL differs from NORMAL in one thing: "the WAL file is synchronized before each
 *   transaction is committed"; with NORMAL "the WAL file is synchronized before each checkpoint", and a
 *   NORMAL commit "might roll back following a power loss or system crash" until the WAL is synced. So
 *   once an fsync/fdatasync of the WAL file that started after the commit returned has completed, the
 *   commit's frames (and its commit frame) are on disk, exactly what FULL's in-commit sync gives.
 * - A checkpoint syncs the WAL before copying it into the database and syncs the database after, in
 *   NORMAL as in FULL; the WAL header, written when the WAL is created or restarts from its start, is
 *   synced at once in both modes (that sync also syncs the directory of a new WAL). So a checkpoint
 *   between the commit and our sync loses nothing, and a WAL restarted afterwards only holds later
 *   commits (ours are in the database file by then).
 * - fdatasync flushes the data and the file size (what is needed to read it back); SQLite itself may use
 *   fdatasync for the WAL. The file descriptor is one we open on the `-wal` file at open time: the WAL
 *   file is deleted only when the last connection closes, and ours stays open until the store closes.
 * - Visibility differs, not durability: other reads see a NORMAL commit before it is synced. Nothing we
 *   report depends on such a read without awaiting `durable()` first (a relay may push an item a crash
 *   then loses before STORED went out: the sender, never told STORED, sends it again and the recipient
 *   drops the copy by its message id).
 * - Group commit: commits made while a sync runs share the next one; one fdatasync covers every commit
 *   before it (the WAL is one file written in order).
 * - A failed sync (EIO) fails every later `durable()` too: after a failed fsync the kernel may have
 *   dropped the dirty pages and a later fsync would succeed without them (reopen the store).
 */
import { chmodSync, closeSync, fdatasync, lstatSync, openSync } from 'node:fs'
import { DatabaseSync } from 'node:sqlite'

/** How long a write waits for another connection's lock before failing. */
export const DEFAULT_BUSY_TIMEOUT_MS = 5000

export interface OpenOptions {
  /** default DEFAULT_BUSY_TIMEOUT_MS */
  busyTimeoutMs?: number
  /** the error thrown for a file that is not a regular file or is open to other users (each store has its own class) */
  permissionError: (message: string) => Error
}

/** Creates the file mode 0600 if missing, and refuses one that is not a regular file or is open to others. */
function prepareFile (path: string, permissionError: (message: string) => Error): void {
  try {
    closeSync(openSync(path, 'wx', 0o600))
    chmodSync(path, 0o600) // whatever the umask
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
  }
  const st = lstatSync(path)
  if (!st.isFile()) throw permissionError(`${path} is not a regular file; move it away and run again`)
  if ((st.mode & 0o077) !== 0) {
    throw permissionError(`${path} is readable by other users (mode ${(st.mode & 0o777).toString(8)}); run: chmod 600 ${path}`)
  }
}

/**
 * Opens (creating if missing, mode 0600) a store's database file in WAL mode with the shared pragmas, then
 * runs `setUp` on it (the store's migrations); the database is closed again if either throws.
 */
export function openDatabase (path: string, options: OpenOptions, setUp: (db: DatabaseSync) => void = () => {}): DatabaseSync {
  prepareFile(path, options.permissionError)
  const db = new DatabaseSync(path, { timeout: options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS })
  try {
    const mode = db.prepare('PRAGMA journal_mode = WAL').get()
    if (mode?.journal_mode !== 'wal') throw new Error(`could not switch ${path} to WAL (got ${String(mode?.journal_mode)})`)
    db.exec('PRAGMA synchronous = FULL; PRAGMA secure_delete = ON; PRAGMA foreign_keys = ON')
    setUp(db)
    return db
  } catch (err) {
    db.close()
    throw err
  }
}

/**
 * Runs `fn` (its writes autocommit, or it runs its own BEGIN ... COMMIT) with `synchronous = NORMAL`: the
 * commit writes the WAL without an fsync of its own. A crash of the machine may lose it, never corrupt the
 * file; the next fsynced commit syncs the WAL and it with it (WAL frames are written in order). Inside a
 * transaction the transaction's commit decides, so `fn` just runs.
 */
export function commitWithoutSync<T> (db: DatabaseSync, fn: () => T): T {
  if (db.isTransaction) return fn()
  db.exec('PRAGMA synchronous = NORMAL')
  try {
    return fn()
  } finally {
    db.exec('PRAGMA synchronous = FULL')
  }
}

/** fdatasync on libuv's thread pool (the event loop goes on meanwhile). */
export type DataSync = (fd: number) => Promise<void>

const fdatasyncOffLoop: DataSync = async (fd) => {
  await new Promise<void>((resolve, reject) => { fdatasync(fd, err => { if (err == null) resolve(); else reject(err) }) })
}

/** The store was closed before its commits were known to be on disk, or an earlier sync failed. */
export class WalSyncError extends Error {
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'WalSyncError'
  }
}

/**
 * Durable commits whose fsync runs off the event loop (module comment): `commit(fn)` commits without an
 * fsync, `durable()` resolves once every commit made before the call is on disk. Open it after the
 * database (its `-wal` file must exist: opening a WAL database creates it); close it after the database.
 */
export class WalSync {
  readonly #fd: number
  readonly #datasync: DataSync
  /** commits made by `commit`; the first `#synced` of them are known on disk */
  #written = 0
  #synced = 0
  #running: Promise<void> | undefined
  #queued: Promise<void> | undefined
  #failed: Error | undefined
  #closed = false

  /** `datasync`: for tests (a sync that never ends, one that fails); default fdatasync on the thread pool. */
  constructor (databasePath: string, options: { datasync?: DataSync } = {}) {
    this.#fd = openSync(`${databasePath}-wal`, 'r+')
    this.#datasync = options.datasync ?? fdatasyncOffLoop
  }

  /** Runs `fn` (autocommitted writes, or its own transaction) committed without an fsync; await `durable()` before saying so. */
  commit<T> (db: DatabaseSync, fn: () => T): T {
    const result = commitWithoutSync(db, fn)
    this.#written++
    return result
  }

  /** Resolves once every `commit` made before this call is on disk (at once if they are). Rejects WalSyncError. */
  async durable (): Promise<void> {
    if (this.#failed != null) throw new WalSyncError('an earlier sync of the WAL failed: reopen the store', { cause: this.#failed })
    const target = this.#written
    if (this.#synced >= target) return
    if (this.#closed) throw new WalSyncError('the store was closed before its last commits were synced')
    await this.#sync()
    if (this.#synced < target) throw new WalSyncError('the WAL sync did not cover this commit')
  }

  /** A sync that starts after this call: the running one may have started before the caller's commit. */
  #sync (): Promise<void> {
    if (this.#running == null) return this.#start()
    this.#queued ??= this.#running.catch(() => {}).then(async () => {
      this.#queued = undefined
      await this.#start()
    })
    return this.#queued
  }

  #start (): Promise<void> {
    const upTo = this.#written
    const run: Promise<void> = this.#datasync(this.#fd).then(() => {
      if (this.#failed == null && upTo > this.#synced) this.#synced = upTo
    }, (err: Error) => {
      this.#failed ??= err
      throw new WalSyncError('could not sync the WAL', { cause: err })
    }).finally(() => {
      if (this.#running === run) this.#running = undefined
    })
    this.#running = run
    return run
  }

  /**
   * No new syncs; the file descriptor is closed once the syncs under way end (they finish: a caller
   * awaiting one is told the truth). A second call does nothing.
   */
  close (): void {
    if (this.#closed) return
    this.#closed = true
    const last = this.#queued ?? this.#running
    const closeFd = (): void => { try { closeSync(this.#fd) } catch {} }
    if (last == null) closeFd()
    else last.catch(() => {}).finally(closeFd).catch(() => {})
  }
}
