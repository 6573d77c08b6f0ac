/**
 * `p2pchat start --nick <nick>`: join the network and chat, interactively or (--json) driven by a
 * script. Stops cleanly on /quit, {"cmd":"quit"}, end of input, SIGINT or SIGTERM (exit 0).
 */
import type { Readable } from 'node:stream'
import { ChatNode } from '../../node/chat-node.ts'
import { resolveDataDir } from '../../node/datadir.ts'
import { UserError } from '../../node/errors.ts'
import { localAllowList, parseTiming } from '../args.ts'
import type { CliOptions } from '../args.ts'
import { InteractiveSession } from '../interactive.ts'
import { JsonSession } from '../json-session.ts'
import { emit } from '../output.ts'
import type { CliIO } from '../output.ts'
import { watchSignals } from '../signals.ts'

/** Where a user or relay listens unless told otherwise: every interface, TCP and WebSockets. */
export const DEFAULT_START_LISTEN = ['/ip4/0.0.0.0/tcp/0', '/ip4/0.0.0.0/tcp/0/ws']
const STOP_TIMEOUT_MS = 10_000

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

export async function runStart (opts: CliOptions, io: CliIO): Promise<number> {
  if (opts.nick == null || opts.nick === '') throw new UserError('start needs --nick <nick>', 'USAGE')
  if (opts.bootstrap.length === 0) throw new UserError('no bootstrap peer: pass --bootstrap <multiaddr> or set P2PCHAT_BOOTSTRAP (p2pchat bootstrap prints its addresses)', 'NO_BOOTSTRAP')
  const timing = parseTiming(io.env)
  const signals = watchSignals()
  const input: Readable = io.stdin ?? process.stdin
  let chat: ChatNode
  try {
    chat = await ChatNode.create({
      dataDir: resolveDataDir(opts.dataDir, io.env),
      nick: opts.nick,
      relay: opts.relay,
      listen: opts.listen ?? DEFAULT_START_LISTEN,
      bootstrap: opts.bootstrap,
      allow: localAllowList(opts.bootstrap),
      timing
    })
  } catch (err) {
    if (err instanceof UserError && opts.json) emit(io, { event: 'error', code: err.code, message: err.message })
    throw err
  }
  const json = opts.json ? new JsonSession(chat, io) : undefined
  const tty = json == null ? new InteractiveSession(chat, io.stdout) : undefined
  const detach = json?.attach() ?? tty?.attach() ?? (() => {})
  const ac = new AbortController()
  const signal = signals.received.then(sig => { ac.abort(); return sig })
  try {
    const starting = chat.start({ signal: ac.signal })
    starting.catch(() => {}) // a start interrupted by a signal rejects after the race is decided
    const started = await Promise.race([starting.then(() => true), signal.then(() => false)])
    if (!started) {
      tty?.abandon()
      io.stderr.write('p2pchat: interrupted while joining the network, stopping\n')
      return 0
    }
    if (json != null) {
      json.ready()
      await Promise.race([json.run(input), signal])
    } else if (tty != null) {
      await Promise.race([tty.run(input), signal])
    }
    if (tty != null) io.stdout.write('\nbye\n')
    return 0
  } catch (err) {
    tty?.abandon()
    const shown = asUserError(err)
    if (shown instanceof UserError && json != null) json.error(shown.code, shown.message)
    throw shown
  } finally {
    detach()
    tty?.close()
    input.pause()
    await stopWithin(chat, io)
  }
}
