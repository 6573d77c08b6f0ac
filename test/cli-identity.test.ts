import assert from 'node:assert/strict'
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { CliProcess, runCli } from './helpers/cli.ts'

const LOOPBACK = ['--listen', '/ip4/127.0.0.1/tcp/0', '--listen', '/ip4/127.0.0.1/tcp/0/ws']

describe('p2pchat bootstrap and id as real processes', { timeout: 120_000 }, () => {
  const root = mkdtempSync(join(tmpdir(), 'p2pchat-cli-'))
  after(() => { rmSync(root, { recursive: true, force: true }) })

  it('keeps the same peer id across restarts on one data dir, and prints full multiaddrs', async () => {
    const dir = join(root, 'boot')
    const ids: string[] = []
    for (let i = 0; i < 2; i++) {
      const p = new CliProcess(['bootstrap', '--json', '--data-dir', dir, ...LOOPBACK])
      const ready = await p.waitForJson(o => o.event === 'ready')
      assert.equal(p.lines.length, 1, 'stdout holds only the ready line')
      const addrs = ready.addrs as string[]
      assert.ok(addrs.some(a => a.includes('/tcp/') && !a.includes('/ws')), 'a TCP address')
      assert.ok(addrs.some(a => a.includes('/ws/')), 'a WebSockets address')
      for (const a of addrs) assert.ok(a.startsWith('/ip4/127.0.0.1/') && a.endsWith(`/p2p/${String(ready.peerId)}`), a)
      ids.push(String(ready.peerId))
      assert.equal(await p.stop(), 0)
    }
    assert.equal(ids[0], ids[1])
    assert.equal(statSync(join(dir, 'identity.key')).mode & 0o777, 0o600)
    assert.equal(existsSync(join(dir, 'onion.key')), false, 'version 2 keeps no long-term onion key')
    assert.equal(statSync(dir).mode & 0o777, 0o700)
    const id = await runCli(['id', '--json', '--data-dir', dir])
    assert.equal(id.code, 0)
    const printed = JSON.parse(id.stdout)
    assert.equal(printed.peerId, ids[0])
    assert.match(printed.fingerprint, /^[a-z2-7]{4}(-[a-z2-7]{4}){3}$/)
    assert.equal(Buffer.from(printed.identityKey, 'base64').length, 32)
  })

  it('erases a version 1 onion.key (overwritten, removed) and says so', async () => {
    const dir = join(root, 'v1')
    assert.equal((await runCli(['id', '--data-dir', dir])).code, 0)
    writeFileSync(join(dir, 'onion.key'), '{"v":1,"type":"X25519","privateKey":"secret","publicKey":"x"}', { mode: 0o600 })
    const res = await runCli(['id', '--data-dir', dir])
    assert.equal(res.code, 0)
    assert.match(res.stderr, /erased onion\.key of version 1/)
    assert.equal(existsSync(join(dir, 'onion.key')), false)
  })

  it('refuses a key file readable by others, and leaves it untouched', async () => {
    const dir = join(root, 'perm')
    assert.equal((await runCli(['id', '--data-dir', dir])).code, 0)
    const key = join(dir, 'identity.key')
    const before = readFileSync(key)
    chmodSync(key, 0o644)
    const res = await runCli(['id', '--data-dir', dir])
    assert.equal(res.code, 1)
    assert.match(res.stderr, /identity\.key is readable by other users.*chmod 600/)
    assert.doesNotMatch(res.stderr, /\n\s+at /, 'no stack trace')
    assert.deepEqual(readFileSync(key), before)
  })

  it('refuses a corrupt key file with a clear message and never overwrites it', async () => {
    const dir = join(root, 'corrupt')
    assert.equal((await runCli(['id', '--data-dir', dir])).code, 0)
    for (const [file, junk] of [['identity.key', 'not json'], ['transport.key', '{"v":1,"type":"Ed25519","privateKey":"AAAA","publicKey":"AAAA"}']] as const) {
      const path = join(dir, file)
      const good = existsSync(path) ? readFileSync(path) : undefined
      writeFileSync(path, junk, { mode: 0o600 })
      const res = await runCli(['id', '--data-dir', dir])
      assert.equal(res.code, 1)
      assert.match(res.stderr, new RegExp(`${file.replace('.', '\\.')} is corrupt .*left untouched`))
      assert.equal(readFileSync(path, 'utf8'), junk)
      if (good != null) writeFileSync(path, good, { mode: 0o600 })
      else rmSync(path)
    }
  })

  it('refuses a data directory open to other users', async () => {
    const dir = join(root, 'open')
    assert.equal((await runCli(['id', '--data-dir', dir])).code, 0)
    chmodSync(dir, 0o755)
    const res = await runCli(['id', '--data-dir', dir])
    assert.equal(res.code, 1)
    assert.match(res.stderr, /open to other users.*chmod 700/)
  })

  it('gives one-line errors for bad flags and bad multiaddrs', async () => {
    const bad = await runCli(['bootstrap', '--data-dir', join(root, 'bad'), '--listen', 'not-a-multiaddr'])
    assert.equal(bad.code, 1)
    assert.match(bad.stderr, /^p2pchat: bad listen multiaddr: not-a-multiaddr\n$/)
    const flag = await runCli(['id', '--frobnicate'])
    assert.equal(flag.code, 1)
    assert.match(flag.stderr, /^p2pchat: .*frobnicate/)
  })
})
