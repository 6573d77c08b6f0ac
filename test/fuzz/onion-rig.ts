/**
 * A relay to fuzz: one real libp2p node (loopback) running OnionService with an epoch key ring, its
 * forward layers aimed at itself (a counted loop drop) or at one peer that does not exist (a bounded
 * queue and a fast dial failure). Used by the fuzz test and `npm run fuzz`.
 */
import { createP2PNode } from '../../node/create.ts'
import type { P2PNode } from '../../node/create.ts'
import { ephemeralIdentity } from '../../node/identity.ts'
import { OnionKeyRing } from '../../protocols/onion/keyring.ts'
import { OnionService } from '../../protocols/onion/relay.ts'
import type { FinalResult } from '../../protocols/onion/sphinx.ts'
import { addressFromPeerId, generateOnionKey, onionPrivateKeyFromRaw } from '../../protocols/onion/sphinx.ts'

export interface OnionRig {
  node: P2PNode
  service: OnionService
  ring: OnionKeyRing
  relayPublic: Uint8Array
  userPublic: Uint8Array
  userPrivate: Uint8Array
  self: Uint8Array
  forwardTo: Uint8Array[]
  delivered: FinalResult[]
  stop: () => Promise<void>
}

export async function startOnionRig (): Promise<OnionRig> {
  const id = await ephemeralIdentity()
  const node = await createP2PNode({ privateKey: id.privateKey, listen: ['/ip4/127.0.0.1/tcp/0'] })
  const ring = new OnionKeyRing({ replayCapacity: 200_000 })
  const user = generateOnionKey()
  const delivered: FinalResult[] = []
  const service = new OnionService(node, {
    userKey: onionPrivateKeyFromRaw(user.privateKey),
    keyRing: ring,
    onDeliver: (r) => { if (delivered.length < 1000) delivered.push(r) },
    dialTimeoutMs: 1_000,
    queueLength: 64
  })
  await service.start()
  const nowhere = addressFromPeerId((await ephemeralIdentity()).peerId)
  const self = addressFromPeerId(node.peerId)
  return {
    node,
    service,
    ring,
    relayPublic: ring.current.publicKey,
    userPublic: user.publicKey,
    userPrivate: user.privateKey,
    self,
    forwardTo: [self, self, self, nowhere],
    delivered,
    stop: async () => {
      await service.stop()
      await node.stop()
    }
  }
}
