/**
 * Record bytes the codec under test cannot make: a version 1 record (the layout of main before
 * version 2, README history), signed under the v1 context, to show that v2 readers refuse it.
 * v1: version 1 | kind | nickLen u8 | nick | identityKey 32 | onionCount u8 | (epoch u32 | notBefore u64 |
 * notAfter u64 | key 32)* | addrCount u8 | (u16 len | multiaddr)* | sequence u64 | expiry u64 | signature 64.
 */
import { KIND_NAME, nameKey, relayKey } from '../../protocols/directory/record.ts'
import type { Signer } from '../../protocols/crypto/keys.ts'

const u16 = (n: number): number[] => [n >> 8, n & 0xff]
const u64 = (n: bigint | number): number[] => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(n)); return [...b] }

export function v1Record (id: { identityKey: Uint8Array, onionPublic: Uint8Array, signer: Signer, peerId: { toString: () => string } }, kind: number, nick: string, expiry = Date.now() + 3600_000): Uint8Array {
  const n = Buffer.from(nick)
  const unsigned = Buffer.from([1, kind, n.length, ...n, ...id.identityKey, 1, ...u64(0).slice(4), ...u64(0), ...u64(0), ...id.onionPublic, 0,
    ...u64(10), ...u64(expiry)])
  const dhtKey = kind === KIND_NAME ? nameKey(nick) : relayKey(id.peerId.toString())
  const signature = id.signer.sign(Buffer.concat([Buffer.from('p2pchat-record-v1'), Buffer.from(u16(dhtKey.length)), dhtKey, unsigned]))
  return new Uint8Array(Buffer.concat([unsigned, signature]))
}
