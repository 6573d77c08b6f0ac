#!/usr/bin/env node
import { enableCompileCache } from 'node:module'
import { compileCacheDir } from './compile-cache.ts'

// before the rest of the program is imported, so that its modules load from the cache
const cacheDir = compileCacheDir(process.env)
if (cacheDir != null) enableCompileCache(cacheDir)
const { main } = await import('./main.ts')

const code = await main(process.argv.slice(2), { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env })
process.exitCode = code
// Everything was stopped; a handle some library forgot to release must not keep the process alive.
setTimeout(() => { process.exit(code) }, 3000).unref()
