import { resolveDataDir } from '../../node/datadir.ts'
import { loadIdentity } from '../../node/identity.ts'
import type { CliOptions } from '../args.ts'
import { emit } from '../output.ts'
import type { CliIO } from '../output.ts'

export async function runId (opts: CliOptions, io: CliIO): Promise<number> {
  const id = await loadIdentity(resolveDataDir(opts.dataDir, io.env))
  const onionKey = Buffer.from(id.onionPublic).toString('base64')
  if (opts.json) {
    emit(io, { event: 'id', peerId: id.peerId.toString(), onionKey, fingerprint: id.fingerprint, dataDir: id.dataDir })
  } else {
    io.stdout.write(`peer id:     ${id.peerId.toString()}\nonion key:   ${onionKey}\nfingerprint: ${id.fingerprint}\ndata dir:    ${id.dataDir}\n`)
  }
  return 0
}
