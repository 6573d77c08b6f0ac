/**
 * The body a SERVICE layer delivers to a relay (PROTOCOL-V2.md section 5):
 *
 *   service u8 | reply block length u16 (0 or SURB_SIZE) | reply block | request
 *
 * and the answer a relay sends back through that reply block: `service u8 | answer`. The service byte
 * routes the request to one of the relay's services; the reply block is the asker's, opaque to the
 * relay except for its first hop (a relay it forwards to).
 */
import { PAYLOAD_CAPACITY, SURB_SIZE } from './constants.ts'

export const SERVICE_MAILBOX = 0x01
export const SERVICE_DIRECTORY = 0x02
/** Drop cover (the mixing issue): the relay discards it and counts it. */
export const SERVICE_DROP = 0x03
export type ServiceId = typeof SERVICE_MAILBOX | typeof SERVICE_DIRECTORY | typeof SERVICE_DROP

/** service | reply block length */
export const SERVICE_HEADER_LENGTH = 3
/** The most request bytes a service body with a reply block carries. */
export const MAX_REQUEST_WITH_REPLY = PAYLOAD_CAPACITY - SERVICE_HEADER_LENGTH - SURB_SIZE
/** The most answer bytes one reply carries (after the service byte). */
export const MAX_ANSWER = PAYLOAD_CAPACITY - 1

export interface ServiceBody {
  service: number
  /** The asker's reply block, or undefined when it wants no answer. */
  replyBlock: Uint8Array | undefined
  request: Uint8Array
}

export class ServiceBodyTooLargeError extends Error {
  constructor (message = `a service body holds at most ${PAYLOAD_CAPACITY} bytes`) {
    super(message)
    this.name = 'ServiceBodyTooLargeError'
  }
}

export function encodeServiceBody (body: ServiceBody): Uint8Array {
  const block = body.replyBlock ?? new Uint8Array(0)
  if (block.length !== 0 && block.length !== SURB_SIZE) throw new RangeError(`a reply block is ${SURB_SIZE} bytes`)
  if (!Number.isInteger(body.service) || body.service < 0 || body.service > 0xff) throw new RangeError('service is a byte')
  const out = new Uint8Array(SERVICE_HEADER_LENGTH + block.length + body.request.length)
  if (out.length > PAYLOAD_CAPACITY) throw new ServiceBodyTooLargeError()
  out[0] = body.service
  out[1] = block.length >>> 8
  out[2] = block.length & 0xff
  out.set(block, SERVICE_HEADER_LENGTH)
  out.set(body.request, SERVICE_HEADER_LENGTH + block.length)
  return out
}

export type DecodedServiceBody = { ok: true, body: ServiceBody } | { ok: false, reason: 'short' | 'reply-block' }

/** Splits a service body; never throws. The parts are copies. */
export function decodeServiceBody (bytes: Uint8Array): DecodedServiceBody {
  if (bytes.length < SERVICE_HEADER_LENGTH) return { ok: false, reason: 'short' }
  const blockLength = (bytes[1] << 8) | bytes[2]
  if (blockLength !== 0 && blockLength !== SURB_SIZE) return { ok: false, reason: 'reply-block' }
  if (bytes.length < SERVICE_HEADER_LENGTH + blockLength) return { ok: false, reason: 'short' }
  return {
    ok: true,
    body: {
      service: bytes[0],
      replyBlock: blockLength === 0 ? undefined : bytes.slice(SERVICE_HEADER_LENGTH, SERVICE_HEADER_LENGTH + blockLength),
      request: bytes.slice(SERVICE_HEADER_LENGTH + blockLength)
    }
  }
}

/** An answer as it goes through the reply block: the service byte, then the service's answer. */
export function encodeAnswer (service: number, answer: Uint8Array): Uint8Array {
  if (answer.length > MAX_ANSWER) throw new ServiceBodyTooLargeError(`an answer holds at most ${MAX_ANSWER} bytes`)
  const out = new Uint8Array(1 + answer.length)
  out[0] = service
  out.set(answer, 1)
  return out
}

export function decodeAnswer (bytes: Uint8Array): { service: number, answer: Uint8Array } | undefined {
  if (bytes.length < 1) return undefined
  return { service: bytes[0], answer: bytes.slice(1) }
}
