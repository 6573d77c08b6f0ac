#!/usr/bin/env node
import { main } from './main.ts'

const code = await main(process.argv.slice(2), { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env })
process.exitCode = code
// Everything was stopped; a handle some library forgot to release must not keep the process alive.
setTimeout(() => { process.exit(code) }, 3000).unref()
