/**
 * `p2pchat start --relay`: run a volunteer relay of protocol version 2 (node/relay-node.ts): a public
 * node with a stable transport key, mixing, mailboxes and a directory exit. A relay has no nick: a user
 * who also relays runs a second, separate `p2pchat start --nick` (so its chat identity is never tied to
 * the relay's public peer id). With `--json`, stdout carries `ready`, `status` and the answers to
 * `{"cmd":"relays"}` / `{"cmd":"status"}`; the relay logs no per-packet event and names no user.
 */
import type { Readable } from 'node:stream'
import { loadFamilyKey, RelayNode } from '../../node/relay-node.ts'
import { lockDataDir, prepareDataDir, resolveDataDir } from '../../node/datadir.ts'
import type { DataDirLock } from '../../node/datadir.ts'
import { UserError } from '../../node/errors.ts'
import { DEFAULT_RELAY_LOOP_COVER, localAllowList, parseTiming } from '../args.ts'
import type { CliOptions } from '../args.ts'
import { DEFAULT_BLOCK_LIFETIME_MS } from '../../protocols/mailbox/constants.ts'
import { MAX_JSON_LINE_BYTES } from '../json-commands.ts'
import { readLines } from '../lines.ts'
import { emit } from '../output.ts'
import type { CliIO } from '../output.ts'
import { watchSignals } from '../signals.ts'
import { Metrics, parseMetricsAddress } from '../../node/metrics.ts'
import { defaultRelaySphinxThreads } from '../../protocols/onion/sphinx-pool.ts'
import type { MetricsServer } from '../../node/metrics.ts'

/** Where a relay listens unless told otherwise: every interface, TCP and WebSockets, a free port. */
export const DEFAULT_RELAY_LISTEN = ['/ip4/0.0.0.0/tcp/0', '/ip4/0.0.0.0/tcp/0/ws']
const STOP_TIMEOUT_MS = 10_000
const CONNECT_TIMEOUT_MS = 30_000

export async function runRelay (opts: CliOptions, io: CliIO): Promise<number> {
  if (opts.nick != null && opts.nick !== '') {
    throw new UserError('a relay has no nick: run the relay with `p2pchat start --relay`, and chat from a separate `p2pchat start --nick <nick>` with its own --data-dir', 'USAGE')
  }
  if (opts.bootstrap.length === 0) throw new UserError('no bootstrap peer: pass --bootstrap <multiaddr> or set P2PCHAT_BOOTSTRAP (p2pchat bootstrap prints its addresses)', 'NO_BOOTSTRAP')
  const timing = parseTiming(io.env)
  const metricsAddr = opts.metrics == null ? undefined : parseMetricsAddress(opts.metrics)
  // Sphinx on worker threads unless told otherwise (--sphinx-threads 0: on the main thread)
  const sphinxThreads = opts.sphinxThreads ?? defaultRelaySphinxThreads()
  const signals = watchSignals()
  const input: Readable = io.stdin ?? process.stdin
  let relay: RelayNode
  let lock: DataDirLock | undefined
  let metrics: MetricsServer | undefined
  try {
    const dataDir = prepareDataDir(resolveDataDir(opts.dataDir, io.env))
    lock = lockDataDir(dataDir, 'start --relay')
    // --family: the operator's key, declared in the descriptor (protocols/directory/FAMILY.md)
    const family = opts.family == null ? undefined : loadFamilyKey(opts.family)
    if (family?.created === true) {
      if (opts.json) emit(io, { event: 'status', stage: 'family', detail: `created a new family key in ${opts.family}: copy it (mode 0600) to each relay you run` })
      else io.stdout.write(`… family: created a new family key in ${opts.family}: copy it (mode 0600) to each relay you run\n`)
    }
    relay = await RelayNode.create({
      family: family?.signer,
      dataDir,
      listen: opts.listen ?? DEFAULT_RELAY_LISTEN,
      bootstrap: opts.bootstrap,
      allow: localAllowList([...opts.bootstrap, ...(opts.listen ?? []), ...(opts.announce ?? [])]),
      announce: opts.announce,
      checkReachability: true,
      limits: { sphinxThreads },
      announceIntervalMs: timing.announceIntervalMs,
      loopCoverPerMinute: opts.loopCover ?? DEFAULT_RELAY_LOOP_COVER,
      keyRing: { epochMs: timing.relayEpochMs, graceMs: timing.relayGraceMs },
      // a stocked reply block dies when a relay on it rotates its key: with shortened epochs, held blocks
      // must not outlive one (the default lifetime is made for hourly epochs)
      mailbox: {
        ...(timing.relayEpochMs == null ? {} : { blockLifetimeMs: Math.min(timing.relayEpochMs, DEFAULT_BLOCK_LIFETIME_MS) }),
        ...(timing.repushIntervalMs == null ? {} : { repushIntervalMs: timing.repushIntervalMs })
      }
    })
    if (metricsAddr != null) {
      const m = new Metrics()
      m.addNode(relay.node)
      m.addRelay(relay)
      metrics = await m.serve(metricsAddr).catch(async (err: unknown) => { await relay.stop(); throw err })
    }
  } catch (err) {
    lock?.release()
    if (err instanceof UserError && opts.json) emit(io, { event: 'error', code: err.code, message: err.message })
    throw err
  }
  const detach = relay.on(e => {
    if (e.type !== 'status') return
    if (opts.json) emit(io, { event: 'status', stage: e.stage, detail: e.detail })
    else io.stdout.write(`… ${e.stage}: ${e.detail}\n`)
  })
  const ac = new AbortController()
  const signal = signals.received.then(sig => { ac.abort(); return sig })
  try {
    const starting = relay.start({ signal: ac.signal, connectTimeoutMs: timing.connectTimeoutMs ?? CONNECT_TIMEOUT_MS })
    starting.catch(() => {})
    const started = await Promise.race([starting.then(() => true), signal.then(() => false)])
    if (!started) {
      io.stderr.write('p2pchat: interrupted while joining the network, stopping\n')
      return 0
    }
    // announced: the addresses its descriptor carries (those peers confirmed by dialling them back)
    if (opts.json) emit(io, { event: 'ready', relay: true, peerId: relay.peerId, addrs: relay.addrs(), loopCoverPerMinute: relay.loopCover.perMinute, announced: relay.reachability?.verified ?? relay.addrs(), relays: relay.relays.size, sphinxThreads, ...(metrics == null ? {} : { metrics: metrics.url }) })
    else io.stdout.write(`p2pchat: relaying as ${relay.peerId}\n  ${relay.addrs().join('\n  ')}\n${sphinxThreads === 0 ? 'onion packets unwrapped on the main thread' : `onion packets unwrapped on ${sphinxThreads} worker thread${sphinxThreads === 1 ? '' : 's'}`}\n${metrics == null ? '' : `metrics: ${metrics.url}\n`}loop cover: ${relay.loopCover.perMinute > 0 ? `${relay.loopCover.perMinute} a minute` : 'off (--loop-cover)'}\nCtrl-C stops it.\n`)
    await Promise.race([serve(relay, input, io, opts.json), signal])
    return 0
  } catch (err) {
    if (err instanceof UserError && opts.json) emit(io, { event: 'error', code: err.code, message: err.message })
    throw err
  } finally {
    detach()
    input.pause()
    await metrics?.close()
    let timer: ReturnType<typeof setTimeout> | undefined
    await Promise.race([relay.stop(), new Promise<void>(resolve => { timer = setTimeout(resolve, STOP_TIMEOUT_MS) })])
    clearTimeout(timer)
    lock.release()
  }
}

/** Reads commands (JSON lines with --json; `status`, `relays`, `quit` typed otherwise) until quit or end of input. */
async function serve (relay: RelayNode, input: Readable, io: CliIO, json: boolean): Promise<void> {
  await new Promise<void>(resolve => {
    let stop: () => void = () => {}
    const finish = (): void => { stop(); resolve() }
    stop = readLines(input, MAX_JSON_LINE_BYTES, item => {
      if ('oversize' in item) return
      const line = item.line.trim()
      if (line === '') return
      let cmd = line.replace(/^\//, '')
      let tag: unknown
      if (json) {
        try {
          const parsed = JSON.parse(line) as { cmd?: unknown, tag?: unknown }
          cmd = typeof parsed.cmd === 'string' ? parsed.cmd : ''
          tag = parsed.tag
        } catch {
          emit(io, { event: 'error', code: 'BAD_JSON', message: 'not JSON' })
          return
        }
      }
      const out = (event: Record<string, unknown>): void => {
        if (json) emit(io, tag == null ? event : { ...event, tag })
        else io.stdout.write(`${JSON.stringify(event, null, 2)}\n`)
      }
      switch (cmd) {
        case 'quit': finish(); return
        case 'relays': {
          const relays = relay.relays.list().map(r => ({ peerId: r.record.peerId, lastSeen: r.lastSeen, expiry: r.record.expiry }))
          out({ event: 'relays', count: relays.length, relays })
          return
        }
        // epoch: the relay's current onion key epoch (scripts and tests watch keys rotate)
        case 'status': out({ event: 'status', epoch: relay.keyRing.current.epoch, ...relay.stats() }); return
        default:
          out({ event: 'error', code: 'UNKNOWN_CMD', message: 'a relay answers relays, status and quit' })
      }
    }, finish)
  })
}
