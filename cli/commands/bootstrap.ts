import { startBootstrapNode } from '../../bootstrap/index.ts'
import { lockDataDir, prepareDataDir, resolveDataDir } from '../../node/datadir.ts'
import { loadIdentity } from '../../node/identity.ts'
import { localAllowList } from '../args.ts'
import type { CliOptions } from '../args.ts'
import { emit } from '../output.ts'
import type { CliIO } from '../output.ts'
import { watchSignals } from '../signals.ts'

export async function runBootstrap (opts: CliOptions, io: CliIO): Promise<number> {
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
  const addrs = boot.addrs()
  if (opts.json) {
    emit(io, { event: 'ready', peerId: identity.peerId.toString(), addrs })
  } else {
    io.stdout.write(`bootstrap node ${identity.peerId.toString()} is up (data dir ${identity.dataDir})\n` +
      'paste one of these into --bootstrap (or P2PCHAT_BOOTSTRAP):\n' +
      addrs.map(a => `  ${a}\n`).join('') + 'Ctrl-C stops it.\n')
  }
  const sig = await stopSignal
  io.stderr.write(`p2pchat: ${sig}, stopping\n`)
  await boot.stop()
  return 0
}
