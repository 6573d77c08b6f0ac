/**
 * The data directory: `--data-dir`, else P2PCHAT_HOME, else ~/.p2pchat. It holds the identity key,
 * the onion key and the database. It is created mode 0700; one owned by another user, or open to
 * group or others, is refused: whoever can read it can read the keys.
 */
import { chmodSync, closeSync, fsyncSync, lstatSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs'
import { homedir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { UserError } from './errors.ts'

export function resolveDataDir (flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (flag != null && flag !== '') return resolve(flag)
  if (env.P2PCHAT_HOME != null && env.P2PCHAT_HOME !== '') return resolve(env.P2PCHAT_HOME)
  return join(homedir(), '.p2pchat')
}

/** Creates the directory (0700) if missing; refuses one that is not ours or that others can read. */
export function prepareDataDir (dir: string): string {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 })
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    const why = code === 'EEXIST' || code === 'ENOTDIR'
      ? 'a file of that name (or one on its path) is not a directory'
      : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : `${code ?? (err as Error).message}`
    throw new UserError(`cannot create data directory ${dir}: ${why}; choose another --data-dir`, 'DATA_DIR')
  }
  const st = lstatSync(dir)
  if (!st.isDirectory()) throw new UserError(`data directory ${dir} is not a directory`, 'DATA_DIR')
  if (process.getuid != null && st.uid !== process.getuid()) {
    throw new UserError(`data directory ${dir} belongs to another user (uid ${st.uid}); use your own --data-dir`, 'DATA_DIR')
  }
  if ((st.mode & 0o077) !== 0) {
    throw new UserError(`data directory ${dir} is open to other users (mode ${(st.mode & 0o777).toString(8)}); run: chmod 700 ${dir}`, 'DATA_DIR')
  }
  return dir
}

/**
 * Refuses a secret file that another user could read or that is not a regular file; the message says
 * what to do. Never changes or replaces the file.
 */
export function checkSecretFile (path: string): void {
  const st = lstatSync(path)
  if (!st.isFile()) throw new UserError(`${path} is not a regular file; move it away and run again`, 'KEY_FILE')
  if ((st.mode & 0o077) !== 0) {
    throw new UserError(`${path} is readable by other users (mode ${(st.mode & 0o777).toString(8)}); ` +
      `if nobody else has read it, run: chmod 600 ${path}; otherwise move it away to create a new key`, 'KEY_PERMISSIONS')
  }
  if (process.getuid != null && st.uid !== process.getuid()) {
    throw new UserError(`${path} belongs to another user (uid ${st.uid})`, 'KEY_PERMISSIONS')
  }
}

/**
 * Writes a new secret file atomically with mode 0600: a temporary file created exclusively, fsynced,
 * then renamed into place only if `path` still does not exist. Never overwrites.
 */
export function writeNewSecretFile (path: string, contents: string): void {
  const tmp = `${path}.${process.pid}.tmp`
  const fd = openSync(tmp, 'wx', 0o600)
  try {
    try {
      writeSync(fd, contents)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    chmodSync(tmp, 0o600)
    if (exists(path)) throw new UserError(`${path} appeared while it was being created; run again`, 'KEY_FILE')
    renameSync(tmp, path)
  } catch (err) {
    // never leave a half-written secret behind
    try { unlinkSync(tmp) } catch {}
    throw err
  }
  const dfd = openSync(dirname(path), 'r')
  try { fsyncSync(dfd) } finally { closeSync(dfd) }
}

export function exists (path: string): boolean {
  try {
    statSync(path)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw err
  }
}

/** The lock's file in the data directory: an empty SQLite database, held under an exclusive lock. */
export const LOCK_FILE = 'lock.db'
/** Who holds the lock, for the refusal message only: `{"pid":...,"command":...,"since":...}`. */
export const LOCK_OWNER_FILE = 'lock.owner'
/** SQLite's result code for a database locked by another connection. */
const SQLITE_BUSY = 5

export interface DataDirLock {
  readonly dir: string
  /** Releases the lock (closing its file); harmless to call twice. The lock also ends with the process. */
  release: () => void
}

interface LockOwner { pid: number, command: string, since: number }

/**
 * One process per data directory: two processes on one directory would share keys, outbox and
 * history and each receive half of the messages. The lock is SQLite's exclusive lock on `lock.db`
 * (fcntl on Unix, LockFileEx on Windows), which the kernel releases when the process ends in any way,
 * SIGKILL and crashes included: a lock left by a dead process never blocks the next start, and no pid
 * is ever guessed to be alive or dead. A second process is refused at once with the holder's pid
 * (from `lock.owner`, written after the lock is taken). `dir` must exist (prepareDataDir).
 *
 * `command` is the command's name ("start", "bootstrap"), shown in that message; no nick or other
 * flag is written to the owner file.
 */
export function lockDataDir (dir: string, command: string): DataDirLock {
  const path = join(dir, LOCK_FILE)
  let db: DatabaseSync | undefined
  try {
    writeFileSync(path, '', { flag: 'a', mode: 0o600 })
    db = new DatabaseSync(path, { timeout: 0 })
    // nothing is ever written: no journal file beside the lock
    db.exec('PRAGMA journal_mode = MEMORY')
    db.exec('BEGIN EXCLUSIVE')
  } catch (err) {
    try { db?.close() } catch {}
    if ((err as { errcode?: number }).errcode === SQLITE_BUSY) {
      const owner = readLockOwner(dir)
      const who = owner == null ? 'another process' : `process ${owner.pid} (p2pchat ${owner.command}, since ${new Date(owner.since).toISOString().slice(0, 19).replace('T', ' ')} UTC)`
      throw new UserError(`data directory ${dir} is in use by ${who}; stop that process first, or use another --data-dir`, 'DATA_DIR_LOCKED')
    }
    throw new UserError(`cannot lock data directory ${dir} (${path}): ${(err as Error).message}`, 'DATA_DIR')
  }
  const held = db
  const ownerPath = join(dir, LOCK_OWNER_FILE)
  const owner: LockOwner = { pid: process.pid, command, since: Date.now() }
  try {
    const tmp = `${ownerPath}.${process.pid}.tmp`
    writeFileSync(tmp, JSON.stringify(owner) + '\n', { mode: 0o600 })
    renameSync(tmp, ownerPath)
  } catch {
    // the owner file only improves the message a second process prints; the lock holds without it
  }
  let released = false
  return {
    dir,
    release: () => {
      if (released) return
      released = true
      try { if (readLockOwner(dir)?.pid === process.pid) unlinkSync(ownerPath) } catch {}
      try { held.close() } catch {}
    }
  }
}

function readLockOwner (dir: string): LockOwner | undefined {
  try {
    const v = JSON.parse(readFileSync(join(dir, LOCK_OWNER_FILE), 'utf8')) as Partial<LockOwner>
    if (typeof v.pid !== 'number' || typeof v.command !== 'string' || typeof v.since !== 'number') return undefined
    return { pid: v.pid, command: v.command.slice(0, 40), since: v.since }
  } catch {
    return undefined
  }
}
