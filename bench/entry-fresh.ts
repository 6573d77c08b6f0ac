/**
 * The entry link's hot path (node/entry.ts `link`, read for every packet a user sends): main looked the
 * entry relay up afresh at every read, `pathRelays(directory.list())` over the whole directory (each
 * relay's onion key picked, its /16s parsed, its family declaration verified: an Ed25519 verification
 * per relay that declares one); now it is cached and looked up again only when a descriptor of the entry
 * relay is heard, the link is reopened, or ENTRY_FRESH_MAX_AGE_MS passed. Both are measured in the same
 * run on the same directory: main's lookup as the baseline, then `EntryRelay.link` over a real
 * `/onion-chat/2.0/client` link between two in-process libp2p nodes on loopback.
 *
 * Directory: RELAYS signed relay descriptors (the entry relay's among them), one in FAMILY_EVERY
 * declaring a family. Prints microseconds per read for both and the ratio.
 *
 *   node bench/entry-fresh.ts [relays (50)] [one in N with a family (4; 0: none)]
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { ed25519SignerFromSeed, generateEd25519Seed, generateX25519KeyPair } from '../protocols/crypto/keys.ts'
import { familyExtension } from '../protocols/directory/family.ts'
import { KIND_RELAY, signRecord } from '../protocols/directory/record.ts'
import { ClientLinkServer } from '../protocols/onion/client-link.ts'
import { pathRelays } from '../protocols/onion/paths.ts'
import type { PathRelay } from '../protocols/onion/paths.ts'
import { RelayDirectory } from '../protocols/onion/relay-directory.ts'
import { createP2PNode } from '../node/create.ts'
import { ENTRY_FRESH_MAX_AGE_MS, EntryRelay } from '../node/entry.ts'

const RELAYS = Number(process.argv[2] ?? 50)
/** One relay in this many declares a family (its declaration is verified at every lookup); 0: none. */
const FAMILY_EVERY = Number(process.argv[3] ?? 4)
/** Reads timed: main's lookup is slow, the cached one is not. */
const READS_MAIN = 2_000
const READS_CACHED = 200_000
const LOOPBACK_ALLOW = ['/ip4/127.0.0.1/ipcidr/8']

const now = Date.now()
const directory = new RelayDirectory()
const relayKey = await generateKeyPair('Ed25519')
const family = ed25519SignerFromSeed(generateEd25519Seed())
for (let i = 0; i < RELAYS; i++) {
  const key = i === 0 ? relayKey : await generateKeyPair('Ed25519')
  const signer = ed25519SignerFromSeed(key.raw.subarray(0, 32))
  const rec = signRecord({
    kind: KIND_RELAY,
    nick: '',
    identityKey: key.publicKey.raw,
    onionKeys: [{ epoch: 1, notBefore: now - 1000, notAfter: now + 3600_000, key: generateX25519KeyPair().publicKey }],
    addrs: [`/ip4/10.${(i % 250) + 1}.0.1/tcp/4001`],
    extensions: FAMILY_EVERY > 0 && i % FAMILY_EVERY === 1 ? [familyExtension(family, key.publicKey.raw)] : [],
    sequence: 1n,
    expiry: now + 3600_000
  }, signer)
  if (directory.add(rec.bytes) == null) throw new Error('a bench descriptor did not verify')
}

const relayNode = await createP2PNode({ privateKey: relayKey, listen: ['/ip4/127.0.0.1/tcp/0'], allow: LOOPBACK_ALLOW })
const server = new ClientLinkServer(relayNode, { onSubmit: () => {} })
await server.start()
const user = await createP2PNode({ privateKey: await generateKeyPair('Ed25519'), listen: [], allow: LOOPBACK_ALLOW })
const all = (): PathRelay[] => pathRelays(directory.list(), Date.now())
const entryId = relayNode.peerId.toString()
const entry = new EntryRelay({
  node: user,
  relays: all,
  allRelays: all,
  addrsOf: (peerId) => peerId === entryId ? relayNode.getMultiaddrs().map(a => a.toString()) : [],
  onDeliver: () => {}
})
const relay = all().find(r => r.peerId === entryId)
if (relay == null) throw new Error('the entry relay is not in the directory')
await entry.connect()
if (entry.relay?.peerId !== entryId) throw new Error('connected elsewhere')

function perRead (reads: number, read: () => PathRelay | undefined): number {
  for (let i = 0; i < 100; i++) read() // warm-up
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < reads; i++) if (read() == null) throw new Error('no entry relay')
  return Number(process.hrtime.bigint() - t0) / 1000 / reads
}

// main's fresh(): the whole directory walked at every read
const mainFresh = (): PathRelay | undefined => all().find(r => r.peerId === entryId) ?? relay
const baseline = perRead(READS_MAIN, mainFresh)
const lookupsBefore = entry.stats.freshLookups
const cached = perRead(READS_CACHED, () => entry.link?.relay)
const lookups = entry.stats.freshLookups - lookupsBefore
console.log(`entry link read, ${RELAYS} relays (${FAMILY_EVERY > 0 ? `1 in ${FAMILY_EVERY}` : 'none'} with a family)`)
console.log(`  main (directory walked per read, ${READS_MAIN} reads): ${baseline.toFixed(2)} us/read`)
console.log(`  cached (this branch, ${READS_CACHED} reads):          ${cached.toFixed(3)} us/read (${lookups} directory lookups: one per ${ENTRY_FRESH_MAX_AGE_MS} ms at most)`)
console.log(`  ratio main / cached: ${(baseline / cached).toFixed(0)}x`)

await entry.stop()
await server.stop()
await Promise.all([user.stop(), relayNode.stop()])
