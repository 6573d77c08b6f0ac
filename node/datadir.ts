/**
 * The data directory: `--data-dir`, else P2PCHAT_HOME, else ~/.p2pchat. It holds the identity key,
 * the onion key and the database. It is created mode 0700; one owned by another user, or open to
 * group or others, is refused: whoever can read it can read the keys.
 */
import { chmodSync, closeSync, fsyncSync, lstatSync, mkdirSync, openSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs'
import { homedir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { UserError } from './errors.ts'

export function resolveDataDir (flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (flag != null && flag !== '') return resolve(flag)
  if (env.P2PCHAT_HOME != null && env.P2PCHAT_HOME !== '') return resolve(env.P2PCHAT_HOME)
  return join(homedir(), '.p2pchat')
}

/** Creates the directory (0700) if missing; refuses one that is not ours or that others can read. */
export function prepareDataDir (dir: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 })
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
