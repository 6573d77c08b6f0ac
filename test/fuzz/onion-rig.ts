/**
 * A relay to fuzz, composed as node/relay-node.ts composes one (without the DHT and the disk): one real
 * libp2p node (loopback) running OnionService with an epoch key ring, its client links
 * (ClientLinkServer) and a ServiceDispatcher for SERVICE layers. Forward layers are aimed at itself (a
 * counted loop drop) or at one peer that does not exist (a bounded queue and a fast dial failure);
 * SERVICE layers go to the dispatcher, whose one service (ECHO_SERVICE) answers through the asker's
 * reply block, so reply blocks in fuzzed bodies are used too. Used by the fuzz test and `npm run fuzz`.
 */
import { createP2PNode } from '../../node/create.ts'
import type { P2PNode } from '../../node/create.ts'
import { ephemeralIdentity } from '../../node/identity.ts'
import { ClientLinkServer } from '../../protocols/onion/client-link.ts'
import { OnionKeyRing } from '../../protocols/onion/keyring.ts'
import { OnionService } from '../../protocols/onion/relay.ts'
import { answeringService, ServiceDispatcher } from '../../protocols/onion/relay-services.ts'
import type { FinalResult } from '../../protocols/onion/sphinx.ts'
import { packetFromSurb } from '../../protocols/onion/sphinx.ts'
import { addressFromPeerId } from '../../protocols/onion/address.ts'

/** The rig's one service: answers the first bytes of a request back through the reply block. */
export const ECHO_SERVICE = 0x02

export interface OnionRig {
  node: P2PNode
  service: OnionService
  clients: ClientLinkServer
  services: ServiceDispatcher
  ring: OnionKeyRing
  relayPublic: Uint8Array
  self: Uint8Array
  forwardTo: Uint8Array[]
  delivered: FinalResult[]
  stop: () => Promise<void>
}

export async function startOnionRig (): Promise<OnionRig> {
  const id = await ephemeralIdentity()
  const node = await createP2PNode({ privateKey: id.privateKey, listen: ['/ip4/127.0.0.1/tcp/0'] })
  const ring = new OnionKeyRing({ replayCapacity: 400_000 })
  const delivered: FinalResult[] = []
  const clients = new ClientLinkServer(node, {
    onSubmit: (address, packet) => { service.submit(address, packet, 'client') },
    packetsPerSecond: 1_000_000,
    burst: 1_000_000
  })
  const services = new ServiceDispatcher({
    services: new Map([[ECHO_SERVICE, answeringService(ECHO_SERVICE, async (request) => request.subarray(0, 64), (block, payload) => {
      const { firstHop, packet } = packetFromSurb(block, payload)
      service.send(firstHop, packet)
    })]])
  })
  const service: OnionService = new OnionService(node, {
    keyRing: ring,
    onClient: (next, packet) => { clients.deliver(next, packet) },
    onDeliver: (r) => {
      if (delivered.length < 1000) delivered.push(r)
      if (r.command === 'service') services.handle(r.payload)
    },
    dialTimeoutMs: 1_000,
    queueLength: 64
  })
  await service.start()
  await clients.start()
  const nowhere = addressFromPeerId((await ephemeralIdentity()).peerId)
  const self = addressFromPeerId(node.peerId)
  return {
    node,
    service,
    clients,
    services,
    ring,
    relayPublic: ring.current.publicKey,
    self,
    forwardTo: [self, self, self, nowhere],
    delivered,
    stop: async () => {
      await clients.stop()
      await service.stop()
      await node.stop()
    }
  }
}
