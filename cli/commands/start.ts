/**
 * `p2pchat start --nick <nick>`: join the network and chat, interactively or (--json) driven by a
 * script. Stops cleanly on /quit, {"cmd":"quit"}, end of input, SIGINT or SIGTERM (exit 0).
 */
import type { Readable } from 'node:stream'
import { ChatNode } from '../../node/chat-node.ts'
import { listenError } from '../../node/create.ts'
import { lockDataDir, prepareDataDir, resolveDataDir } from '../../node/datadir.ts'
import type { DataDirLock } from '../../node/datadir.ts'
import { UserError } from '../../node/errors.ts'
import { DEFAULT_PRIVACY, privacyLevel, withOverrides } from '../../node/privacy.ts'
import { localAllowList, parseTiming } from '../args.ts'
import type { CliOptions } from '../args.ts'
import { InteractiveSession } from '../interactive.ts'
import { JsonSession } from '../json-session.ts'
import { emit } from '../output.ts'
import type { CliIO } from '../output.ts'
import { watchSignals } from '../signals.ts'
import type { WebServer } from '../web-server.ts'

const STOP_TIMEOUT_MS = 10_000
/** How long joining may take before start gives up on the bootstrap peers (P2PCHAT_TIMING connectTimeoutMs). */
const CONNECT_TIMEOUT_MS = 30_000

/** Errors from joining the network that the user can act on, by name: shown as one line. */
const USER_FACING: Record<string, string> = {
  NickTakenError: 'NICK_TAKEN',
  PublishError: 'PUBLISH_FAILED',
  InvalidNickError: 'BAD_NICK'
}

function asUserError (err: unknown): unknown {
  if (err instanceof UserError) return err
  const code = USER_FACING[(err as Error)?.name]
  return code == null ? err : new UserError((err as Error).message, code)
}

async function stopWithin (chat: ChatNode, io: CliIO): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined
  await Promise.race([
    chat.stop(),
    new Promise<void>(resolve => { timer = setTimeout(() => { io.stderr.write('p2pchat: the node did not stop in time\n'); resolve() }, STOP_TIMEOUT_MS) })
  ])
  clearTimeout(timer)
}

/** ChatNode's "no DHT peer answered", with the addresses tried and what to check. */
function noPeers (err: unknown, bootstrap: string[], timeoutMs: number): unknown {
  if (!(err instanceof UserError) || err.code !== 'NO_PEERS') return err
  const tried = bootstrap.length === 1 ? bootstrap[0] : `${bootstrap.length} addresses, first ${bootstrap[0]}`
  return new UserError(`could not join the network: no bootstrap peer answered within ${Math.round(timeoutMs / 1000)} s (tried ${tried}); ` +
    'check that the bootstrap node is running and that --bootstrap is one of the addresses it printed', 'NO_PEERS')
}

export async function runStart (opts: CliOptions, io: CliIO): Promise<number> {
  // the web server (and ws) and the relay's modules are imported only by the processes that run them:
  // a user's process keeps every module it loaded in memory for its whole life (bench/idle.ts)
  if (opts.web || opts.webPort != null || opts.webHost != null) (await import('../web-server.ts')).checkWebFlags(opts)
  if (opts.relay) return await (await import('./relay.ts')).runRelay(opts, io)
  if (opts.nick == null || opts.nick === '') throw new UserError('start needs --nick <nick> (p2pchat start --help)', 'USAGE')
  if (opts.metrics != null) throw new UserError('--metrics is for relays and bootstrap nodes (start --relay, bootstrap): a user serves nothing', 'USAGE')
  if (opts.sphinxThreads != null) throw new UserError('--sphinx-threads is for relays (start --relay): a user unwraps no one else\'s packets', 'USAGE')
  if (opts.announce != null) throw new UserError('--announce is for relays (start --relay): a user listens nowhere and announces no address', 'USAGE')
  if (opts.loopCover != null) throw new UserError('--loop-cover is for relays (start --relay): a user\'s cover traffic is set by --privacy', 'USAGE')
  // A user's process runs with V8's --optimize-for-size, given at start-up by the launcher
  // (bin/p2pchat.cjs): set here, after start-up, it was fragile. Relays keep the defaults.
  if (opts.bootstrap.length === 0) throw new UserError('no bootstrap peer: pass --bootstrap <multiaddr> or set P2PCHAT_BOOTSTRAP (p2pchat bootstrap prints its addresses)', 'NO_BOOTSTRAP')
  const { connectTimeoutMs = CONNECT_TIMEOUT_MS, hopDelayMs, loopCoverGapMs, dropCoverGapMs, receiptDelayMs, mailboxPushPeriodMs, mailboxSyncGapMs, ...timing } = parseTiming(io.env)
  const level = privacyLevel(opts.privacy ?? DEFAULT_PRIVACY)
  // `fast` stays without cover whatever the timers say: it is labelled as having none
  const privacy = withOverrides(level, level.loopPerMinute + level.dropPerMinute === 0
    ? { meanDelayMs: hopDelayMs }
    : { meanDelayMs: hopDelayMs, loopGapMs: loopCoverGapMs, dropGapMs: dropCoverGapMs, receiptDelayMs, mailboxPushPeriodMs, mailboxSyncGapMs })
  const signals = watchSignals()
  const input: Readable = io.stdin ?? process.stdin
  let chat: ChatNode
  let lock: DataDirLock | undefined
  try {
    const dataDir = prepareDataDir(resolveDataDir(opts.dataDir, io.env))
    lock = lockDataDir(dataDir, 'start')
    chat = await ChatNode.create({
      dataDir,
      nick: opts.nick,
      // a user listens nowhere unless told to: it only dials out (its entry relay, a bootstrap node once)
      listen: opts.listen ?? [],
      bootstrap: opts.bootstrap,
      allow: localAllowList(opts.bootstrap),
      acceptAnyone: opts.acceptAnyone,
      timing,
      privacy
    })
  } catch (caught) {
    lock?.release()
    // a user's client node (node/create.ts createClientNode) does not word a failed --listen itself
    const err = listenError(caught) ?? caught
    if (err instanceof UserError && opts.json) emit(io, { event: 'error', code: err.code, message: err.message })
    throw err
  }
  const json = opts.json ? new JsonSession(chat, io) : undefined
  // --web without --json: the web app instead of the terminal chat, until Ctrl-C
  const tty = json == null && !opts.web ? new InteractiveSession(chat, io.stdout) : undefined
  const detach = json?.attach() ?? tty?.attach() ?? (() => {})
  const ac = new AbortController()
  const signal = signals.received.then(sig => { ac.abort(); return sig })
  let web: WebServer | undefined
  try {
    const starting = chat.start({ signal: ac.signal, connectTimeoutMs })
    starting.catch(() => {}) // a start interrupted by a signal rejects after the race is decided
    const started = await Promise.race([starting.then(() => true), signal.then(() => false)])
    if (!started) {
      tty?.abandon()
      io.stderr.write('p2pchat: interrupted while joining the network, stopping\n')
      return 0
    }
    if (opts.web) web = await (await import('../web-server.ts')).serveWebApp(chat, opts, io)
    if (json != null) {
      json.ready()
      await Promise.race([json.run(input), signal])
    } else if (tty != null) {
      await Promise.race([tty.run(input), signal])
    } else {
      await signal
    }
    if (tty != null) io.stdout.write('\nbye\n')
    return 0
  } catch (err) {
    tty?.abandon()
    const shown = asUserError(noPeers(err, opts.bootstrap, connectTimeoutMs))
    if (shown instanceof UserError && json != null) json.error(shown.code, shown.message)
    throw shown
  } finally {
    await web?.stop()
    detach()
    tty?.close()
    input.pause()
    await stopWithin(chat, io)
    lock.release()
  }
}
