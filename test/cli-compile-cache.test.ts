/** The compile cache directory (cli/compile-cache.ts) and its use by the real `p2pchat` command. */
import assert from 'node:assert/strict'
import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { compileCacheDir } from '../cli/compile-cache.ts'
import { runCli } from './helpers/cli.ts'

describe('compile cache directory', () => {
  const root = mkdtempSync(join(tmpdir(), 'p2pchat-cache-'))
  after(() => { rmSync(root, { recursive: true, force: true }) })

  it('is made under XDG_CACHE_HOME, private to this user', () => {
    const base = join(root, 'fresh')
    const dir = compileCacheDir({ XDG_CACHE_HOME: base })
    assert.equal(dir, join(base, 'p2pchat', 'compile-cache'))
    assert.equal(statSync(dir).mode & 0o777, 0o700)
    assert.equal(statSync(join(base, 'p2pchat')).mode & 0o777, 0o700)
  })

  it('is not used when others may write to it, or when it cannot be made', () => {
    const open = join(root, 'open')
    const dir = compileCacheDir({ XDG_CACHE_HOME: open })
    assert.ok(dir != null)
    chmodSync(dir, 0o777)
    assert.equal(compileCacheDir({ XDG_CACHE_HOME: open }), undefined)
    chmodSync(dir, 0o700)
    chmodSync(join(open, 'p2pchat'), 0o775)
    assert.equal(compileCacheDir({ XDG_CACHE_HOME: open }), undefined)
    const file = join(root, 'a-file')
    writeFileSync(file, '')
    assert.equal(compileCacheDir({ XDG_CACHE_HOME: file }), undefined)
  })

  it('p2pchat fills it and runs from it', async () => {
    const base = join(root, 'cli')
    for (let i = 0; i < 2; i++) {
      const r = await runCli(['--help'], { XDG_CACHE_HOME: base })
      assert.equal(r.code, 0, r.stderr)
      assert.match(r.stdout, /p2pchat/)
    }
    const dir = join(base, 'p2pchat', 'compile-cache')
    assert.ok(readdirSync(dir, { recursive: true }).length > 0, 'no cache entries written')
  })
})
