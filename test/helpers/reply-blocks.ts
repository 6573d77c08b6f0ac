/**
 * Reply blocks of an in-memory stand-in for the onion client (tests of node/mailboxes.ts against real
 * mailbox services): `make` hands out random SURB-sized bytes and remembers where an answer through them
 * goes; `deliver` is a service's `sendThroughReplyBlock`: each block carries one payload, then is gone
 * (as a real reply block is spent). Unknown blocks (forgotten by `clear`, a user that was killed) take
 * nothing.
 */
import { randomBytes } from 'node:crypto'
import { SURB_SIZE } from '../../protocols/mailbox/constants.ts'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

export class StandInReplyBlocks {
  private readonly blocks = new Map<string, (payload: Uint8Array) => void>()

  /** A reply block whose answer reaches `onReply`, in the shape OnionClient.replyBlock returns. */
  make (onReply: (payload: Uint8Array) => void): { surb: Uint8Array, id: Uint8Array, path: string[] } {
    const surb = new Uint8Array(randomBytes(SURB_SIZE))
    this.blocks.set(hex(surb), onReply)
    return { surb, id: new Uint8Array(randomBytes(16)), path: ['mix'] }
  }

  /** Sends `payload` through `block` (once: the block is spent). */
  deliver (block: Uint8Array, payload: Uint8Array): void {
    const to = this.blocks.get(hex(block))
    this.blocks.delete(hex(block))
    to?.(payload)
  }

  /** Forgets every block handed out (they now end at a dead address). */
  clear (): void {
    this.blocks.clear()
  }
}
