/**
 * Installing the command as a user would (README, "Installing the command"): `npm pack`, then
 * `npm install -g --prefix <empty dir>` of the tarball, then `p2pchat` run with a PATH holding only
 * the machine's own tools and its own Node (not this checkout's node_modules/.bin). That Node may be
 * older than p2pchat needs (20 here): the launcher must then find the Node the package brings along,
 * or say what to do. Uses npm's cache (--prefer-offline); the registry is only asked for what the
 * cache lacks.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { accessSync, constants, existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, describe, it } from 'node:test'

const REPO = fileURLToPath(new URL('..', import.meta.url))
const { version } = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }

/** The first `node` on PATH outside any node_modules: the machine's own. */
function systemNodeDir (): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '' || dir.includes('node_modules')) continue
    try {
      accessSync(join(dir, 'node'), constants.X_OK)
      return dir
    } catch {}
  }
  return undefined
}

interface Run { code: number | null, stdout: string, stderr: string }

/** Runs a command to completion, killing it after `timeoutMs`. */
async function run (cmd: string, args: string[], opts: { cwd?: string, env: NodeJS.ProcessEnv, timeoutMs: number }): Promise<Run> {
  const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (c: Buffer) => { stdout += c.toString() })
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs)
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      child.on('error', reject)
      child.on('close', resolve)
    })
    return { code, stdout, stderr }
  } finally {
    clearTimeout(timer)
  }
}

function newEnough (v: string): boolean {
  const [major, minor] = v.replace(/^v/, '').split('.').map(Number)
  return major > 22 || (major === 22 && minor >= 18)
}

const nodeDir = systemNodeDir()

describe('installing the command from a packed tarball into an empty prefix', { timeout: 600_000 }, () => {
  const root = mkdtempSync(join(tmpdir(), 'p2pchat-install-'))
  after(() => { rmSync(root, { recursive: true, force: true }) })
  // only the machine's own tools and Node; HOME stays, for npm's cache; and the machine's way to the
  // registry (its CA certificates, proxies, npm settings): without them a machine behind a TLS-inspecting
  // proxy gets SELF_SIGNED_CERT_IN_CHAIN for every package its cache lacks, retried until the timeout
  const network = Object.fromEntries(Object.entries(process.env).filter(([k]) =>
    /^(NODE_EXTRA_CA_CERTS|SSL_CERT_FILE|SSL_CERT_DIR|(HTTPS?|NO|ALL)_PROXY)$/i.test(k) || /^npm_config_(registry|cafile|ca|proxy|https_proxy|noproxy|strict_ssl)$/i.test(k)))
  const env: NodeJS.ProcessEnv = {
    ...network,
    PATH: [...new Set([nodeDir ?? '/usr/bin', '/usr/bin', '/bin'])].join(delimiter),
    HOME: process.env.HOME,
    XDG_CACHE_HOME: join(root, 'cache'),
    npm_config_update_notifier: 'false'
  }

  it('packs, installs with npm -g --prefix, and runs p2pchat on the machine\'s own Node', { skip: nodeDir == null ? 'no node outside node_modules on PATH' : false }, async () => {
    const systemNode = await run('node', ['--version'], { env, timeoutMs: 30_000 })
    assert.equal(systemNode.code, 0, systemNode.stderr)
    const systemVersion = systemNode.stdout.trim()

    const pack = await run('npm', ['pack', '--pack-destination', root], { cwd: REPO, env, timeoutMs: 180_000 })
    assert.equal(pack.code, 0, pack.stderr)
    const tarball = join(root, `p2pchat-${version}.tgz`)
    assert.ok(existsSync(tarball), `npm pack made ${tarball}: ${pack.stdout}`)
    assert.equal(existsSync(join(REPO, 'dist')), false, 'postpack removed the compiled dist/ from the checkout')

    const prefix = join(root, 'prefix')
    const install = await run('npm', ['install', '-g', '--prefix', prefix, tarball, '--prefer-offline', '--no-audit', '--no-fund'],
      { cwd: root, env, timeoutMs: 480_000 })
    assert.equal(install.code, 0, install.stderr)
    const pkgDir = join(prefix, 'lib', 'node_modules', 'p2pchat')
    assert.ok(existsSync(join(pkgDir, 'dist', 'cli', 'bin.js')), 'the compiled program is installed')
    assert.equal(existsSync(join(pkgDir, 'cli')), false, 'no TypeScript sources in the package')
    assert.deepEqual(readdirSync(join(prefix, 'bin')), ['p2pchat'], 'only p2pchat on the user\'s PATH (not the bundled node)')
    const bin = join(prefix, 'bin', 'p2pchat')

    const v = await run(bin, ['--version'], { env, timeoutMs: 60_000 })
    assert.equal(v.code, 0, v.stderr)
    const m = /^p2pchat (\S+) \(Node (v[\d.]+)\)\n$/.exec(v.stdout)
    assert.ok(m != null, v.stdout)
    assert.equal(m[1], version)
    assert.ok(newEnough(m[2]), `ran on Node ${m[2]}`)
    const bundled = JSON.parse(readFileSync(join(pkgDir, 'node_modules', 'node', 'package.json'), 'utf8')) as { version: string }
    assert.equal(m[2], newEnough(systemVersion) ? systemVersion : `v${bundled.version}`, 'the machine\'s Node when new enough, else the bundled one')

    const help = await run(bin, ['--help'], { env, timeoutMs: 60_000 })
    assert.equal(help.code, 0, help.stderr)
    assert.match(help.stdout, /^usage: p2pchat <command> \[options\]/)
    const startHelp = await run(bin, ['help', 'start'], { env, timeoutMs: 60_000 })
    assert.match(startHelp.stdout, /^usage: p2pchat start --nick <nick>/)

    // the whole program loads from the package (main imports every command), keys and all
    const id = await run(bin, ['id', '--json', '--data-dir', join(root, 'data')], { env, timeoutMs: 60_000 })
    assert.equal(id.code, 0, id.stderr)
    assert.match(String(JSON.parse(id.stdout).peerId), /^12D3Koo/)
    const bad = await run(bin, ['start', '--frobnicate'], { env, timeoutMs: 60_000 })
    assert.equal(bad.code, 1)
    assert.equal(bad.stderr, 'p2pchat: unknown option --frobnicate (p2pchat --help lists the options)\n')

    if (!newEnough(systemVersion)) {
      // without the bundled Node, an old Node gets one line saying what to do
      const nodeBin = join(pkgDir, 'node_modules', 'node', 'bin', 'node')
      renameSync(nodeBin, `${nodeBin}.away`)
      const none = await run(bin, ['--version'], { env, timeoutMs: 60_000 })
      assert.equal(none.code, 1)
      assert.match(none.stderr, new RegExp(`^p2pchat: needs Node.js 22.18 or newer, and this is Node ${systemVersion.replaceAll('.', '\\.')} .*Install Node 22.18 or newer .*not --ignore-scripts`))
      assert.equal(none.stderr.split('\n').length, 2, 'one line')
    }
  })
})
