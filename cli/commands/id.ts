import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { resolveDataDir } from '../../node/datadir.ts'
import { loadIdentity, loadTransportKey, TRANSPORT_FILE } from '../../node/identity.ts'
import type { CliOptions } from '../args.ts'
import { emit } from '../output.ts'
import type { CliIO } from '../output.ts'

/**
 * `p2pchat id`: the chat identity of a data directory (its fingerprint and identity key: what people
 * compare), and, for a relay's data directory, its public transport peer id. A user has no stable peer
 * id: its transport key is made fresh for every run.
 */
export async function runId (opts: CliOptions, io: CliIO): Promise<number> {
  const dataDir = resolveDataDir(opts.dataDir, io.env)
  const id = await loadIdentity(dataDir)
  const identityKey = Buffer.from(id.identityKey).toString('base64')
  const relayPeerId = existsSync(join(dataDir, TRANSPORT_FILE)) ? (await loadTransportKey(dataDir)).peerId.toString() : null
  if (id.erasedV1OnionKey) io.stderr.write('p2pchat: erased onion.key of version 1 (no longer used: onion keys now rotate daily in the store)\n')
  if (opts.json) {
    // peerId: identity.key's, which is a bootstrap node's peer id; a user never connects under it
    emit(io, { event: 'id', fingerprint: id.fingerprint, identityKey, peerId: id.peerId.toString(), relayPeerId, dataDir: id.dataDir })
  } else {
    io.stdout.write(`fingerprint:  ${id.fingerprint}\nidentity key: ${identityKey}\npeer id:      ${id.peerId.toString()} (a bootstrap node's; users connect under a fresh one each run)\n` +
      `${relayPeerId != null ? `relay peer id: ${relayPeerId}\n` : ''}data dir:     ${id.dataDir}\n`)
  }
  return 0
}
