/**
 * The installed package's program, bundled: `npm run build` (and so `npm pack`) compiles the sources
 * with tsc into dist/, then this bundles dist/cli/bin.js and everything it imports, p2pchat's modules
 * and its JavaScript dependencies, into dist/cli/ with esbuild, and removes the rest of dist/:
 *
 *   dist/cli/bin.js            the entry the launcher runs (bin/p2pchat.cjs)
 *   dist/cli/sphinx-worker.js  a relay's Sphinx worker thread (protocols/onion/sphinx-pool.ts finds it
 *                              beside the module that starts it: every chunk is in dist/cli/)
 *   dist/cli/chunk-<hash>.js   code shared by the two, and each command's code, loaded when it runs
 *                              (cli/main.ts imports a command's module only when that command runs)
 *
 * Why: a Node process keeps every module it loaded as source text, module records and bytecode for
 * its whole life. ~800 files of 3.5 MB (most of it comments and code paths p2pchat never calls) held
 * ~10 MiB of an idle user's RSS; bundled with whitespace and syntax minified (identifiers keep their
 * names, so stack traces stay readable) and unused exports dropped, an idle installed user takes
 * ~10 MiB less (bench/idle.ts, "installed" row). Nothing changes for a checkout: the sources run as
 * they are.
 *
 * Left outside the bundle: sodium-native (a native addon found through its package directory) and
 * esbuild (the web app's bundler, a binary of its own), both resolved from node_modules as before.
 * Dependencies written as CommonJS (ws, ...) get a `require` made with createRequire for the Node
 * built-ins they ask for.
 *
 *   node scripts/bundle.ts [dist]      (npm run build runs it after tsc)
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Plugin } from 'esbuild'

/** Modules resolved at run time from node_modules instead of bundled (see the module comment). */
export const EXTERNAL = ['sodium-native', 'esbuild']
/** A `require` for each bundled file: esbuild's ES module output calls it for CommonJS dependencies' require()s. */
const REQUIRE_SHIM = "import { createRequire as __p2pchatRequire } from 'node:module'; const require = __p2pchatRequire(import.meta.url);"

/**
 * Node's `http` module exports WebSocket, CloseEvent and MessageEvent as lazy getters that load Node's
 * copy of undici (its fetch and WebSocket client). An ES module import of node:http reads every export
 * to build the module's namespace, so it loads undici (+9 MiB RSS in a bare Node 24 process, ~3.5 MiB
 * of an idle installed user's), which
 * a p2pchat process never uses (@libp2p/websockets dials with the `ws` package, not the global
 * WebSocket). In the bundle these modules are taken with require() instead, which reads nothing.
 */
const REQUIRED_BUILTINS = /^(node:)?(http|https)$/
const requireBuiltins: Plugin = {
  name: 'require-builtins',
  setup (b) {
    b.onResolve({ filter: REQUIRED_BUILTINS }, (args) => ({ path: args.path.replace(/^node:/, ''), namespace: 'require-builtin' }))
    b.onLoad({ filter: /.*/, namespace: 'require-builtin' }, (args) => ({ contents: `module.exports = require(${JSON.stringify(`node:${args.path}`)})`, loader: 'js' }))
  }
}

/**
 * @chainsafe/libp2p-noise's noise.js imports crypto/index.js for its default crypto, and that module
 * compiles two WebAssembly modules (as-chacha20poly1305, as-sha256) as it loads. p2pchat never uses them
 * (node/create.ts always passes its own crypto, node/noise-crypto.ts), but compiling them maps V8's
 * optimizing-compiler and WebAssembly code in the Node binary even under --no-turbofan: 6.4 MiB of an idle
 * installed user's RSS (80.3 -> 73.9 MiB, median of 3 runs of bench/idle.ts's setting; /proc/<pid>/smaps
 * and pagemap of the binary). In the bundle that import is crypto/js.js's pure JavaScript instead (the
 * default a caller without its own crypto would get; none here has one).
 */
const noiseWithoutWasm = (matched: { count: number }): Plugin => ({
  name: 'noise-without-wasm',
  setup (b) {
    b.onResolve({ filter: /^\.\/crypto\/index\.js$/ }, (args) => {
      if (!/[\\/]@chainsafe[\\/]libp2p-noise[\\/]/.test(args.importer)) return undefined
      matched.count++
      return { path: join(dirname(args.importer), 'crypto', 'js.js'), namespace: 'noise-crypto' }
    })
    b.onLoad({ filter: /.*/, namespace: 'noise-crypto' }, (args) => ({
      contents: `import { pureJsCrypto } from ${JSON.stringify(args.path)}\nexport { pureJsCrypto }\nexport const defaultCrypto = pureJsCrypto\n`,
      loader: 'js',
      resolveDir: dirname(args.path)
    }))
  }
})

/**
 * String.prototype.localeCompare builds an ICU collator, whose data (inside the Node binary) then stays
 * mapped: +2.8 MiB of RSS for one call in a bare Node, 3.0 MiB of an idle installed user's. libp2p's peer
 * store and peer records call it in sorts that only need some fixed total order (a stable encoding, a
 * set comparison), on every peer saved. In the bundle those calls compare UTF-16 code units instead.
 * Each replacement must match exactly: a dependency update that changes one fails the build.
 */
const CODE_UNIT_COMPARE = "const __p2pchatCompare = (a, b) => (a < b ? -1 : a > b ? 1 : 0);\n"
const LOCALE_COMPARES: ReadonlyArray<[RegExp, string, string]> = [
  [/[\\/]@libp2p[\\/]peer-store[\\/]dist[\\/]src[\\/]utils[\\/]dedupe-addresses\.js$/, 'a.multiaddr.toString().localeCompare(b.multiaddr.toString())', '__p2pchatCompare(a.multiaddr.toString(), b.multiaddr.toString())'],
  [/[\\/]@libp2p[\\/]peer-store[\\/]dist[\\/]src[\\/]utils[\\/]to-peer-pb\.js$/, 'a.localeCompare(b)', '__p2pchatCompare(a, b)'],
  [/[\\/]@libp2p[\\/]peer-record[\\/]dist[\\/]src[\\/]peer-record[\\/]utils\.js$/, 'a.toString().localeCompare(b.toString())', '__p2pchatCompare(a.toString(), b.toString())']
]
const withoutLocaleCompare = (patched: Set<string>): Plugin => ({
  name: 'without-locale-compare',
  setup (b) {
    b.onLoad({ filter: /[\\/]@libp2p[\\/]peer-(store|record)[\\/].*\.js$/ }, (args) => {
      const rule = LOCALE_COMPARES.find(([file]) => file.test(args.path))
      if (rule == null) return undefined
      const source = readFileSync(args.path, 'utf8')
      const contents = CODE_UNIT_COMPARE + source.split(rule[1]).join(rule[2])
      if (contents.includes('.localeCompare(') || !source.includes(rule[1])) throw new BundleError(`${args.path}: its localeCompare call is not the one scripts/bundle.ts replaces`)
      patched.add(rule[1])
      return { contents, loader: 'js', resolveDir: dirname(args.path) }
    })
  }
})

export class BundleError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'BundleError'
  }
}

/** Replaces tsc's output in `dist` with the bundle in dist/cli/ (the module comment's layout). */
export async function bundleDist (dist: string): Promise<void> {
  const entries = [join(dist, 'cli', 'bin.js'), join(dist, 'protocols', 'onion', 'sphinx-worker.js')]
  for (const e of entries) if (!existsSync(e)) throw new BundleError(`${e} is missing: run tsc -p tsconfig.build.json first`)
  const { build } = await import('esbuild')
  const out = mkdtempSync(join(resolve(dist, '..'), '.bundle-'))
  const noise = { count: 0 }
  const patched = new Set<string>()
  try {
    await build({
      entryPoints: entries,
      outdir: out,
      entryNames: '[name]',
      chunkNames: 'chunk-[hash]',
      bundle: true,
      splitting: true,
      platform: 'node',
      format: 'esm',
      target: 'node22',
      minifyWhitespace: true,
      minifySyntax: true,
      // the dependencies' licence texts ship in their own packages, installed beside p2pchat's
      legalComments: 'none',
      external: EXTERNAL,
      banner: { js: REQUIRE_SHIM },
      plugins: [requireBuiltins, noiseWithoutWasm(noise), withoutLocaleCompare(patched)],
      logLevel: 'warning'
    })
    // a dependency that moved its code elsewhere would otherwise bring the memory back silently
    if (noise.count === 0) throw new BundleError('@chainsafe/libp2p-noise no longer imports ./crypto/index.js: see noiseWithoutWasm')
    if (patched.size !== LOCALE_COMPARES.length) throw new BundleError(`localeCompare replaced in ${patched.size} of ${LOCALE_COMPARES.length} files: see LOCALE_COMPARES`)
    rmSync(dist, { recursive: true, force: true })
    mkdirSync(dist)
    renameSync(out, join(dist, 'cli'))
  } finally {
    rmSync(out, { recursive: true, force: true })
  }
}

if (import.meta.main) {
  const dist = resolve(process.argv[2] ?? fileURLToPath(new URL('../dist', import.meta.url)))
  await bundleDist(dist)
}
