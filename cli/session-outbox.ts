/**
 * The messages one session (--json or interactive) has sent, until each reaches a state the session
 * can report: stored (a mailbox of the recipient holds it), delivered, failed, or queued (the recipient unreachable now; the message stays in the
 * outbox for the next start). At end of piped input a session waits for them, bounded, before it
 * stops the node, so a script never exits 0 with its message still on the way.
 */
import type { ChatEvent, ChatNode } from '../node/chat-node.ts'

/** Extra time beyond the node's own give-up time (a deposit at each of two mailboxes, and a lookup) before end of input stops waiting. */
export const END_OF_INPUT_SLACK_MS = 10_000

/** How long end of input waits at most: the node's own give-up time plus a margin. */
export function endOfInputWaitMs (chat: ChatNode): number {
  return chat.timing.requestTimeoutMs * 4 + END_OF_INPUT_SLACK_MS
}

export class SessionOutbox {
  /** id -> recipient nick */
  private readonly unsettled = new Map<string, string>()
  private readonly waiters = new Set<() => void>()

  /**
   * Call with the id that ChatNode.send() returned: send() returns before any event about the message
   * can be emitted (delivery starts asynchronously), so none is missed.
   */
  track (id: string, to: string): void { this.unsettled.set(id, to) }

  /** Feed every ChatNode event. */
  onEvent (e: ChatEvent): void {
    // stored: a mailbox of the recipient holds it durably; the receipt reaches our mailbox whenever it comes
    if ((e.type === 'stored' || e.type === 'delivered' || e.type === 'failed' || e.type === 'queued' || e.type === 'cancelled') && this.unsettled.delete(e.id)) this.wake()
  }

  /** Wakes every `until` waiter to check its condition again (e.g. a command finished). */
  wake (): void { for (const w of this.waiters) w() }

  get pending (): number { return this.unsettled.size }

  /**
   * Resolves when every tracked message is settled, or at `deadline`; returns (and forgets) the ones
   * still unsettled then.
   */
  async settle (deadline: number): Promise<Array<{ id: string, to: string }>> {
    await this.until(() => this.unsettled.size === 0, deadline)
    const left = [...this.unsettled].map(([id, to]) => ({ id, to }))
    this.unsettled.clear()
    return left
  }

  /** Resolves when `done()` holds (checked at each wake()) or at `deadline`, whichever comes first. */
  async until (done: () => boolean, deadline: number): Promise<void> {
    if (done()) return
    await new Promise<void>(resolve => {
      const check = (): void => { if (done()) finish() }
      const timer = setTimeout(() => { finish() }, Math.max(0, deadline - Date.now()))
      timer.unref() // a session stopped by a signal meanwhile must not be held open by this wait
      const finish = (): void => { clearTimeout(timer); this.waiters.delete(check); resolve() }
      this.waiters.add(check)
    })
  }
}

/** What a session says about a message still unconfirmed when end of input stops waiting. */
export const UNCONFIRMED_AT_END = 'no receipt yet at end of input; it stays in the outbox and is sent again at the next start'
