/**
 * The package as `npm pack` builds it (npm run build: tsconfig.build.json into dist/ beside
 * package.json, then scripts/bundle.ts), in a temporary directory with this checkout's node_modules
 * linked in: what an installed user runs, its launcher bin/p2pchat.cjs running the bundled dist/cli/bin.js
 * (bench/idle.ts, bench/first-message.ts). Returns the directory; the caller removes it.
 */
import { execFileSync } from 'node:child_process'
import { cpSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { bundleDist } from '../../scripts/bundle.ts'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

export async function buildPackage (prefix = 'p2pchat-bench-pkg-'): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  try {
    cpSync(join(ROOT, 'package.json'), join(dir, 'package.json'))
    cpSync(join(ROOT, 'bin'), join(dir, 'bin'), { recursive: true })
    // linked first: the bundler resolves the dependencies from the package's node_modules
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'))
    execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', join(dir, 'dist')], { stdio: 'inherit' })
    await bundleDist(join(dir, 'dist'))
    return dir
  } catch (err) {
    rmSync(dir, { recursive: true, force: true })
    throw err
  }
}

/** The installed command's program (the launcher) in a package built by buildPackage. */
export function launcherIn (pkg: string): string {
  return join(pkg, 'bin', 'p2pchat.cjs')
}
