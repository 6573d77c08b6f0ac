/**
 * What a relay does with a SERVICE layer (PROTOCOL-V2.md section 5): split the body into service,
 * reply block and request, and hand the request to the service it names (mailbox, directory exit),
 * which answers through the reply block when there is one. Drop cover is discarded here. Every refusal
 * is a counted drop; nothing a sender puts in a body can make this throw.
 */
import { logger } from '@libp2p/logger'
import { decodeServiceBody, encodeAnswer, SERVICE_DROP } from './service-body.ts'

/**
 * A service a relay offers: takes one request and the asker's reply block (if any), and answers through
 * it with `sendThroughReplyBlock(block, service byte | answer)` (a mailbox also pushes through blocks
 * stocked earlier). Must not throw.
 */
export interface RelayService {
  handle: (request: Uint8Array, replyBlock: Uint8Array | undefined) => void
}

/** Wraps an asynchronous request -> answer service (the directory exit) as a RelayService. */
export function answeringService (service: number, answer: (request: Uint8Array) => Promise<Uint8Array | undefined>,
  sendThroughReplyBlock: (block: Uint8Array, payload: Uint8Array) => void, onError?: (err: Error) => void): RelayService {
  return {
    handle (request, replyBlock) {
      answer(request).then(result => {
        if (result != null && replyBlock != null) sendThroughReplyBlock(replyBlock, encodeAnswer(service, result))
      }).catch((err: Error) => { onError?.(err) })
    }
  }
}

export type ServiceDropReason = 'short' | 'reply-block' | 'unknown-service' | 'handler'

export interface ServiceStats {
  requests: Partial<Record<number, number>>
  /** Drop-cover bodies discarded. */
  dropCover: number
  dropped: Partial<Record<ServiceDropReason, number>>
}

export interface ServiceDispatcherInit {
  services: ReadonlyMap<number, RelayService>
}

export class ServiceDispatcher {
  private readonly init: ServiceDispatcherInit
  private readonly log = logger('p2pchat:relay:services')
  readonly stats: ServiceStats = { requests: {}, dropCover: 0, dropped: {} }

  constructor (init: ServiceDispatcherInit) {
    this.init = init
  }

  private drop (reason: ServiceDropReason): void {
    this.stats.dropped[reason] = (this.stats.dropped[reason] ?? 0) + 1
  }

  /** One SERVICE payload (integrity already checked by Sphinx). Never throws. */
  handle (payload: Uint8Array): void {
    const decoded = decodeServiceBody(payload)
    if (!decoded.ok) { this.drop(decoded.reason); return }
    const { service, replyBlock, request } = decoded.body
    if (service === SERVICE_DROP) { this.stats.dropCover++; return }
    const handler = this.init.services.get(service)
    if (handler == null) { this.drop('unknown-service'); return }
    this.stats.requests[service] = (this.stats.requests[service] ?? 0) + 1
    try {
      handler.handle(request, replyBlock)
    } catch (err) {
      this.drop('handler')
      this.log.error('service %d threw: %s', service, (err as Error).message)
    }
  }
}
