/**
 * The launcher (bin/p2pchat.cjs) gives a user's node V8's memory flags (USER_FLAGS) at start-up, on its own
 * command line (process.execve: the same process, so a service manager's pid and signals still reach
 * it), and a relay none. Read from /proc/<pid>/cmdline, so Linux only. Real processes on loopback;
 * each is killed once it has printed its first line (it has started p2pchat by then).
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, it } from 'node:test'
import { within } from './helpers/wait.ts'

const LAUNCHER = fileURLToPath(new URL('../bin/p2pchat.cjs', import.meta.url))
/** A bootstrap address nothing listens on: the user keeps trying to join until it is killed. */
const NOWHERE = '/ip4/127.0.0.1/tcp/9/p2p/12D3KooWKnDdG3iXw9eTFijk3EWSunZcFi54Zka4wmtqtt6rPxc8'
const START_MS = 120_000
/** What a user's node runs with: a small heap, no optimizing compilers (bin/p2pchat.cjs says why). */
const USER_FLAGS = ['--optimize-for-size', '--no-turbofan', '--no-maglev']

/** Starts the launcher with `args`, waits for its first output line, and returns its pid's command line then. */
async function commandLineOf (args: string[]): Promise<{ argv: string[], samePid: boolean }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'p2pchat-launcher-'))
  const child = spawn(process.execPath, [LAUNCHER, ...args, '--data-dir', dataDir], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, P2PCHAT_BOOTSTRAP: '' } })
  try {
    let output = ''
    await within(new Promise<void>((resolve, reject) => {
      const got = (chunk: Buffer): void => { output += chunk.toString(); if (output.includes('\n')) resolve() }
      child.stdout.on('data', got)
      child.stderr.on('data', got)
      child.once('exit', (code) => { reject(new Error(`exited (${code}) before printing a line: ${output}`)) })
    }), START_MS, 'the first line of p2pchat')
    const argv = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0').filter(a => a !== '')
    // no second process: the launcher replaced itself
    const children = existsSync(`/proc/${child.pid}/task/${child.pid}/children`) ? readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim() : ''
    return { argv, samePid: children === '' }
  } finally {
    const gone = new Promise(resolve => { if (child.exitCode != null || child.signalCode != null) resolve(undefined); else child.once('exit', resolve) })
    child.kill('SIGKILL')
    await within(gone, 30_000, 'the killed launcher to exit')
    rmSync(dataDir, { recursive: true, force: true })
  }
}

describe('bin/p2pchat.cjs V8 flags', { skip: process.platform !== 'linux' || typeof process.execve !== 'function' ? 'needs /proc and process.execve' : false }, () => {
  it('runs a user (start --nick) with the memory flags, in the launcher\'s own process', async () => {
    const { argv, samePid } = await commandLineOf(['start', '--json', '--nick', 'flagged', '--bootstrap', NOWHERE])
    for (const flag of USER_FLAGS) {
      assert.ok(argv.includes(flag), `${flag} on the command line: ${argv.join(' ')}`)
      assert.ok(argv.indexOf(flag) < argv.indexOf(LAUNCHER), `${flag} is a Node flag, before the script`)
    }
    assert.deepEqual(argv.slice(argv.indexOf(LAUNCHER) + 1, argv.indexOf(LAUNCHER) + 5), ['start', '--json', '--nick', 'flagged'], 'the arguments are passed on unchanged')
    assert.equal(samePid, true, 'no child process')
  })

  it('runs a relay (start --relay) without them', async () => {
    const { argv } = await commandLineOf(['start', '--relay', '--json', '--listen', '/ip4/127.0.0.1/tcp/0'])
    for (const flag of USER_FLAGS) assert.ok(!argv.includes(flag), `no ${flag}: ${argv.join(' ')}`)
    assert.ok(argv.includes('--relay'))
  })
})
