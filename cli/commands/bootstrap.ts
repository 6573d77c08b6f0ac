import { startBootstrapNode } from '../../bootstrap/index.ts'
import { lockDataDir, prepareDataDir, resolveDataDir } from '../../node/datadir.ts'
import { loadIdentity } from '../../node/identity.ts'
import { localAllowList } from '../args.ts'
import type { CliOptions } from '../args.ts'
import { emit } from '../output.ts'
import type { CliIO } from '../output.ts'
import { watchSignals } from '../signals.ts'
import { Metrics, parseMetricsAddress } from '../../node/metrics.ts'

export async function runBootstrap (opts: CliOptions, io: CliIO): Promise<number> {
  if (opts.metrics != null) parseMetricsAddress(opts.metrics)
  const signals = watchSignals()
  const dataDir = prepareDataDir(resolveDataDir(opts.dataDir, io.env))
  // two bootstrap nodes with one identity would fight over one peer id
  const lock = lockDataDir(dataDir, 'bootstrap')
  try {
    return await serve(opts, io, dataDir, signals.received)
  } finally {
    lock.release()
  }
}

async function serve (opts: CliOptions, io: CliIO, dataDir: string, stopSignal: Promise<NodeJS.Signals>): Promise<number> {
  const identity = await loadIdentity(dataDir)
  // a bootstrap node on loopback or a private range is dialled by every newcomer from the same few
  // hosts: exempt those from libp2p's inbound rate limit (5 connections per second per host)
  const allow = localAllowList([...(opts.listen ?? []), ...opts.bootstrap])
  const boot = await startBootstrapNode({ identity, listen: opts.listen, bootstrap: opts.bootstrap, allow })
  let metrics
  if (opts.metrics != null) {
    const m = new Metrics()
    m.addNode(boot.node)
    metrics = await m.serve(parseMetricsAddress(opts.metrics)).catch(async (err: unknown) => { await boot.stop(); throw err })
  }
  const addrs = boot.addrs()
  if (opts.json) {
    emit(io, { event: 'ready', peerId: identity.peerId.toString(), addrs, ...(metrics == null ? {} : { metrics: metrics.url }) })
  } else {
    io.stdout.write(`bootstrap node ${identity.peerId.toString()} is up (data dir ${identity.dataDir})\n` +
      'paste one of these into --bootstrap (or P2PCHAT_BOOTSTRAP):\n' +
      addrs.map(a => `  ${a}\n`).join('') + (metrics == null ? '' : `metrics: ${metrics.url}\n`) + 'Ctrl-C stops it.\n')
  }
  const sig = await stopSignal
  io.stderr.write(`p2pchat: ${sig}, stopping\n`)
  await metrics?.close()
  await boot.stop()
  return 0
}
