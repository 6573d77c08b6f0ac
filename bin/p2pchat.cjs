#!/usr/bin/env node
/*
 * The `p2pchat` command's launcher. Plain CommonJS with nothing newer than Node 12 needs, so that
 * whatever `node` a machine has can run it; p2pchat itself needs Node 22.18 or newer (libp2p 3 uses
 * ES2024, and the sources are TypeScript run by Node's type stripping).
 *
 * - This Node is new enough: load the program in this process.
 * - Else the Node that the package brings along (the `node` npm package, a dependency, puts a Node 24
 *   binary in node_modules/node/bin): run the program with it as a child process, with the same
 *   stdin, stdout and stderr, and exit as it exits.
 * - Else: one line saying what to do, exit 1.
 *
 * The program: in a checkout, cli/bin.ts; in an installed package, dist/cli/bin.js (compiled when the
 * package is packed: Node does not strip types from files under node_modules).
 *
 * V8 flags: a user's node (`p2pchat start` without --relay) is idle most of its life, so it trades
 * JavaScript speed for memory (idle user RSS, bench/idle.ts; measured on the installed package):
 * - --optimize-for-size: V8 keeps its heap small instead of reserving room for throughput;
 * - --no-turbofan --no-maglev: no optimizing compilers, only the interpreter and the Sparkplug baseline
 *   compiler. Their code, compiled code and working memory cost ~9 MiB of an idle user's ~102 MiB.
 *   The CPU a user spends is mostly in libsodium and OpenSSL, which this does not touch: building a
 *   4-hop packet and sealing a message cost the same within noise, opening a reply ~0.14 ms more
 *   (bench/sphinx.ts run with and without these flags). Relays forward packets all day and keep them.
 * A V8 flag is only reliable when given at start-up, so this launcher
 * passes it on the command line: to the bundled Node it spawns, or, when it runs the program in this
 * process, by replacing this process with the same Node and the flag (process.execve: same pid, same
 * stdio and signals; Node 22.15+ on POSIX). Where execve is missing (Windows) the user runs without it.
 */
'use strict'
const fs = require('fs')
const path = require('path')
const { pathToFileURL } = require('url')

const MIN_NODE = [22, 18]
const ROOT = path.join(__dirname, '..')

function fail (message) {
  process.stderr.write('p2pchat: ' + message + '\n')
  process.exit(1)
}

function newEnough (version) {
  const parts = String(version).replace(/^v/, '').split('.').map(Number)
  return parts[0] > MIN_NODE[0] || (parts[0] === MIN_NODE[0] && parts[1] >= MIN_NODE[1])
}

function program () {
  const sources = path.join(ROOT, 'cli', 'bin.ts')
  if (fs.existsSync(sources) && ROOT.split(path.sep).indexOf('node_modules') === -1) return sources
  const compiled = path.join(ROOT, 'dist', 'cli', 'bin.js')
  if (fs.existsSync(compiled)) return compiled
  return fail('this installation is incomplete (no dist/cli/bin.js): install p2pchat from a tarball made by npm pack')
}

/** The Node binary of the `node` npm package, if it was installed with p2pchat. */
function bundledNode () {
  let dir
  try {
    dir = path.dirname(require.resolve('node/package.json', { paths: [ROOT] }))
  } catch (err) {
    return undefined
  }
  try {
    if (!newEnough(JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).version)) return undefined
  } catch (err) {
    return undefined
  }
  const names = process.platform === 'win32' ? ['node.exe', 'node'] : ['node']
  for (const name of names) {
    const bin = path.join(dir, 'bin', name)
    if (fs.existsSync(bin)) return bin
  }
  return undefined
}

/** The V8 flags the command in `args` runs with (see the module comment). */
function v8Flags (args) {
  return args[0] === 'start' && args.indexOf('--relay') === -1 ? ['--optimize-for-size', '--no-turbofan', '--no-maglev'] : []
}

function runHere (entry) {
  const args = process.argv.slice(2)
  const missing = v8Flags(args).filter(function (f) { return process.execArgv.indexOf(f) === -1 })
  if (missing.length > 0 && typeof process.execve === 'function') {
    // does not return on success; the new process has the flags, so it comes back here with none missing
    try {
      process.execve(process.execPath, [process.execPath].concat(process.execArgv, missing, [__filename], args), process.env)
    } catch (err) {
      // could not replace the process (a seccomp sandbox, say): run without the flags
    }
  }
  import(pathToFileURL(entry).href).catch(function (err) {
    process.stderr.write('p2pchat: ' + (err && err.stack ? err.stack : String(err)) + '\n')
    process.exit(1)
  })
}

function runWith (node, entry) {
  // required here: a program run in this process (runHere) does not keep child_process loaded
  const { spawn } = require('child_process')
  const args = process.argv.slice(2)
  const child = spawn(node, v8Flags(args).concat([entry], args), { stdio: 'inherit' })
  // Ctrl-C at a terminal reaches the child directly (it is in the same process group); forwarding it
  // too would be a second SIGINT, which the program treats as "exit now". SIGTERM and SIGHUP are sent
  // to one process (kill, a service manager, a closed terminal): pass them on.
  process.on('SIGINT', function () {})
  for (const sig of ['SIGTERM', 'SIGHUP']) {
    process.on(sig, function () { child.kill(sig) })
  }
  child.on('error', function (err) {
    fail('could not run ' + node + ': ' + err.message)
  })
  child.on('exit', function (code, signal) {
    if (signal != null) {
      process.removeAllListeners(signal)
      process.kill(process.pid, signal)
      return
    }
    process.exit(code == null ? 1 : code)
  })
}

const entry = program()
if (newEnough(process.version)) {
  runHere(entry)
} else {
  const node = bundledNode()
  if (node == null) {
    fail('needs Node.js ' + MIN_NODE.join('.') + ' or newer, and this is Node ' + process.version + ' (' + process.execPath + '), ' +
      'and the Node that p2pchat brings along (the "node" package) is not installed. Install Node ' + MIN_NODE.join('.') + ' or newer ' +
      '(https://nodejs.org/ or your package manager), or reinstall p2pchat with install scripts enabled ' +
      '(not --ignore-scripts): the "node" package downloads its Node when it is installed')
  } else {
    runWith(node, entry)
  }
}
