/**
 * What the two SQLite stores (node/store.ts, a user's; protocols/mailbox/store.ts, a relay's mailboxes)
 * share: how their file is opened, and a commit that does not fsync.
 *
 * A store file is created mode 0600 and refused when it is not a regular file or other users can read it
 * (it holds message text, SURB secrets, mailbox items). It runs in WAL mode with `synchronous = FULL`
 * (every commit fsyncs the WAL before it returns), `secure_delete = ON` (deleted rows are overwritten) and
 * `foreign_keys = ON`.
 */
import { chmodSync, closeSync, lstatSync, openSync } from 'node:fs'
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
