/**
 * What a user sees when `p2pchat` cannot start, as real processes: one line on stderr (no stack
 * trace) that says what is wrong and what to do, exit 1. And the data-directory lock: a second
 * process on one data directory is refused, a lock left by a SIGKILLed process is not.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import type { AddressInfo, Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { parseCli } from '../cli/args.ts'
import { CliProcess, runCli } from './helpers/cli.ts'
import { within } from './helpers/wait.ts'

const LOOPBACK = ['--listen', '/ip4/127.0.0.1/tcp/0']

/** One line on stderr, prefixed `p2pchat: `, and nothing that looks like a stack trace or Node's own wording. */
function assertOneLine (stderr: string, pattern: RegExp): void {
  assert.match(stderr, /^p2pchat: [^\n]+\n$/, `one line on stderr, got: ${stderr}`)
  assert.match(stderr, pattern)
  assert.doesNotMatch(stderr, /\bat .*:\d+:\d+|Error:|ERR_/, 'no stack trace or error class names')
}

async function listening (): Promise<Server> {
  const server = createServer()
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(0, '127.0.0.1', resolve) })
  return server
}

describe('command-line parsing (pure)', () => {
  it('reads flags in either position and form, per command, and refuses the rest in its own words', () => {
    const opts = parseCli(['--json', 'start', '--nick=al', '--listen', '/ip4/127.0.0.1/tcp/0', '--listen=/ip4/127.0.0.1/tcp/0/ws', '--relay'])
    assert.deepEqual({ command: opts.command, nick: opts.nick, json: opts.json, relay: opts.relay, listen: opts.listen },
      { command: 'start', nick: 'al', json: true, relay: true, listen: ['/ip4/127.0.0.1/tcp/0', '/ip4/127.0.0.1/tcp/0/ws'] })
    assert.deepEqual(parseCli(['help', 'start']), { ...parseCli(['help']), topic: 'start' })
    assert.equal(parseCli(['start', '-h']).help, true)
    assert.equal(parseCli(['--version']).version, true)
    assert.equal(parseCli(['id', '--version']).version, true)
    assert.equal(parseCli([]).command, 'help')
    for (const [args, code] of [[['start', '--nick', ''], 'USAGE'], [['start', '--nick='], 'USAGE'], [['demo', '--data-dir', 'x'], 'USAGE'], [['bootstrap', '--nick', 'x'], 'USAGE']] as const) {
      assert.throws(() => parseCli([...args]), (err: Error & { code?: string }) => err.name === 'UserError' && err.code === code && !err.message.includes('\n'), args.join(' '))
    }
  })
})

describe('p2pchat startup failures and the data-directory lock, as real processes', { timeout: 180_000 }, () => {
  const root = mkdtempSync(join(tmpdir(), 'p2pchat-startup-'))
  const procs: CliProcess[] = []
  const servers: Server[] = []
  after(async () => {
    await Promise.all(procs.map(async p => await p.stop()))
    await Promise.all(servers.map(async s => { await new Promise(resolve => s.close(resolve)) }))
    rmSync(root, { recursive: true, force: true })
  })
  const spawn = (args: string[], env: NodeJS.ProcessEnv = {}): CliProcess => {
    const p = new CliProcess(args, env)
    procs.push(p)
    return p
  }

  it('refuses a second process on one data directory, naming the holder; a SIGKILLed holder does not block the next start', async () => {
    const dir = join(root, 'locked')
    const first = spawn(['bootstrap', '--json', ...LOOPBACK, '--data-dir', dir])
    const ready = await first.waitForJson(o => o.event === 'ready')
    const addr = (ready.addrs as string[])[0]

    const second = await runCli(['bootstrap', ...LOOPBACK, '--data-dir', dir])
    assert.equal(second.code, 1)
    assertOneLine(second.stderr, new RegExp(`data directory ${dir} is in use by process ${first.child.pid} \\(p2pchat bootstrap, since .* UTC\\); stop that process first, or use another --data-dir`))

    // start on the same directory (a user who points at the bootstrap node's own dir) is refused
    // before it touches the network or the store; --json also says so on stdout
    const start = await runCli(['start', '--json', '--nick', 'lockeduser', '--bootstrap', addr, '--data-dir', dir])
    assert.equal(start.code, 1)
    assertOneLine(start.stderr, new RegExp(`is in use by process ${first.child.pid} `))
    assert.equal(JSON.parse(start.stdout).code, 'DATA_DIR_LOCKED')

    first.child.kill('SIGKILL')
    await within(first.exited, 10_000, 'the holder dying')
    const again = spawn(['bootstrap', '--json', ...LOOPBACK, '--data-dir', dir])
    const readyAgain = await again.waitForJson(o => o.event === 'ready')
    assert.equal(readyAgain.peerId, ready.peerId, 'the same identity, not a fresh directory')
    // and the new holder is the one named now
    const third = await runCli(['bootstrap', ...LOOPBACK, '--data-dir', dir])
    assert.equal(third.code, 1)
    assert.match(third.stderr, new RegExp(`is in use by process ${again.child.pid} `))
    assert.equal(await again.stop(), 0)
    // a clean stop releases it too
    const afterStop = spawn(['bootstrap', '--json', ...LOOPBACK, '--data-dir', dir])
    await afterStop.waitForJson(o => o.event === 'ready')
    assert.equal(await afterStop.stop(), 0)
  })

  it('says in one line which address is in use, for bootstrap and start', async () => {
    const server = await listening()
    servers.push(server)
    const busy = `/ip4/127.0.0.1/tcp/${(server.address() as AddressInfo).port}`
    const boot = await runCli(['bootstrap', '--listen', busy, '--data-dir', join(root, 'busy-boot')])
    assert.equal(boot.code, 1)
    assertOneLine(boot.stderr, new RegExp(`^p2pchat: cannot listen on ${busy}: it is already in use .*choose another port with --listen`))

    const fakeBoot = '/ip4/127.0.0.1/tcp/1/p2p/12D3KooWS8ZuRfCXLU9bbVzEumGMmbCpiWPBr5b5h6w152Rdjpo1'
    const start = await runCli(['start', '--json', '--nick', 'busy', '--listen', busy, '--bootstrap', fakeBoot, '--data-dir', join(root, 'busy-start')])
    assert.equal(start.code, 1)
    assertOneLine(start.stderr, new RegExp(`^p2pchat: cannot listen on ${busy}: it is already in use`))
    assert.equal(JSON.parse(start.stdout).code, 'ADDRESS_IN_USE')
  })

  it('says in one line when the data directory cannot be made', async () => {
    const file = join(root, 'a-file')
    writeFileSync(file, '')
    for (const args of [['id', '--data-dir', file], ['bootstrap', ...LOOPBACK, '--data-dir', join(file, 'sub')]]) {
      const res = await runCli(args)
      assert.equal(res.code, 1, args.join(' '))
      assertOneLine(res.stderr, /^p2pchat: cannot create data directory .*a-file.*: a file of that name \(or one on its path\) is not a directory; choose another --data-dir/)
    }
  })

  it('says in one line that no bootstrap peer answered, with the address tried', async () => {
    // a loopback port that nothing listens on: take a free one and close it
    const server = await listening()
    const port = (server.address() as AddressInfo).port
    await new Promise(resolve => server.close(resolve))
    const id = await runCli(['id', '--json', '--data-dir', join(root, 'nobody')])
    const nobody = `/ip4/127.0.0.1/tcp/${port}/p2p/${String(JSON.parse(id.stdout).peerId)}`
    const res = await runCli(['start', '--nick', 'lonely', '--bootstrap', nobody, '--data-dir', join(root, 'lonely')],
      { P2PCHAT_TIMING: JSON.stringify({ connectTimeoutMs: 3_000 }) }, 60_000)
    assert.equal(res.code, 1)
    // the interactive status line may precede it on stdout; stderr holds the one line
    assertOneLine(res.stderr, new RegExp(`^p2pchat: could not join the network: no bootstrap peer answered within 3 s \\(tried ${nobody.replaceAll('/', '\\/')}\\); check that the bootstrap node is running`))
  })

  it('words every bad flag itself, and never in Node\'s parseArgs wording', async () => {
    const cases: Array<[string[], string]> = [
      [['id', '--frobnicate'], 'p2pchat: unknown option --frobnicate (p2pchat --help lists the options)'],
      [['start', '--nick'], 'p2pchat: --nick needs a value: --nick <nick>'],
      [['start', '--nick', '--relay'], 'p2pchat: --nick needs a value: --nick <nick>'],
      [['id', '--relay'], 'p2pchat: id does not take --relay (p2pchat id --help lists its options)'],
      [['id', '--json=yes'], 'p2pchat: --json is a switch and takes no value (got "yes")'],
      [['start', '--nick', 'a', '--nick', 'b'], 'p2pchat: --nick given twice; give it once'],
      [['id', 'extra'], 'p2pchat: unexpected argument "extra": id takes only options (p2pchat id --help)'],
      [['-x'], 'p2pchat: unknown option -x (p2pchat --help lists the options)'],
      [['chat'], 'p2pchat: unknown command "chat"; the commands are start, demo, bootstrap, relay, id, help (p2pchat --help)'],
      [['help', 'chat'], 'p2pchat: unknown command "chat"; the commands are start, demo, bootstrap, relay, id, help (p2pchat --help)']
    ]
    const results = await Promise.all(cases.map(async ([args]) => await runCli(args)))
    for (const [i, [args, want]] of cases.entries()) {
      assert.equal(results[i].code, 1, args.join(' '))
      assert.equal(results[i].stderr, want + '\n', args.join(' '))
      assert.doesNotMatch(results[i].stderr, /To specify a positional argument|ERR_PARSE_ARGS|Unknown option '/)
    }
  })

  it('prints the version from package.json, and help per command', async () => {
    const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
    const [v, startHelp, helpStart, idHelp, global] = await Promise.all([
      runCli(['--version']), runCli(['start', '--help']), runCli(['help', 'start']), runCli(['id', '-h']), runCli(['--help'])
    ])
    assert.equal(v.code, 0)
    assert.equal(v.stdout, `p2pchat ${version} (Node ${process.version})`)
    assert.equal(startHelp.code, 0)
    assert.match(startHelp.stdout, /^usage: p2pchat start --nick <nick>/)
    assert.match(startHelp.stdout, /^ {7}p2pchat start --relay \[/m)
    assert.match(startHelp.stdout, /--relay {2,}run a relay \(no nick\)/)
    assert.match(startHelp.stdout, /A user listens nowhere/)
    assert.match(startHelp.stdout, /stored in a mailbox, delivered, failed or queued/)
    assert.match(startHelp.stdout, /at most 1024 bytes of UTF-8 text/)
    assert.match(startHelp.stdout, /--accept-anyone +a stranger's first message makes it a contact/)
    assert.doesNotMatch(startHelp.stdout, /^commands:/m, 'not the global help')
    assert.equal(helpStart.stdout, startHelp.stdout)
    assert.equal(helpStart.code, 0)
    assert.match(idHelp.stdout, /^usage: p2pchat id \[--data-dir <dir>\] \[--json\]/)
    assert.doesNotMatch(idHelp.stdout, /--nick/)
    assert.match(global.stdout, /^usage: p2pchat <command> \[options\]/)
    assert.match(global.stdout, /--version/)
  })
})
