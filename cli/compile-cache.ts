/**
 * Node's compile cache (V8 code caches of p2pchat's modules, checked against each file's contents)
 * takes about a third off every start after the first. It lives in a directory only this user may
 * read or write, since code is loaded from it: `$XDG_CACHE_HOME/p2pchat/compile-cache` (default
 * `~/.cache`), mode 0700. When that cannot be had, the cache is simply not used.
 * Imports only node: modules, so it can run before the rest of the program is loaded.
 */
import { mkdirSync, statSync } from 'node:fs'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'

function privateDir (dir: string): boolean {
  const st = statSync(dir)
  return st.isDirectory() && (process.getuid == null || st.uid === process.getuid()) && (st.mode & 0o077) === 0
}

/** The cache directory, created if needed; undefined if it is not private to this user or cannot be made. */
export function compileCacheDir (env: NodeJS.ProcessEnv): string | undefined {
  const base = env.XDG_CACHE_HOME != null && env.XDG_CACHE_HOME !== '' ? env.XDG_CACHE_HOME : join(homedir(), '.cache')
  const dir = join(base, 'p2pchat', 'compile-cache')
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    return privateDir(dir) && privateDir(dirname(dir)) ? dir : undefined
  } catch {
    return undefined
  }
}
