/**
 * The seal keys a user has already opened (table `seen_seals`): the recipient side of issue 10 item 7.
 * Every sealed payload carries a fresh ephemeral X25519 key E (protocols/chat/FORMAT.md, "Seal"); the
 * same payload delivered twice (a mailbox pushing an item again, a relay replaying a packet) carries
 * the same E, so the second copy is recognised here and dropped without an answer. A resend by the
 * sender is a new seal with a new E: it passes here, and the message id deduplicates it further up.
 * Each E is kept until no copy of its payload can still arrive (the item's age limit in a mailbox).
 */
import type { DatabaseSync, StatementSync } from 'node:sqlite'

export const EPHEMERAL_KEY_LENGTH = 32

export class SeenSeals {
  private readonly sql: { insert: StatementSync, expire: StatementSync, count: StatementSync }

  constructor (db: DatabaseSync) {
    this.sql = {
      insert: db.prepare('INSERT INTO seen_seals (ephemeral, expires_at) VALUES (?, ?) ON CONFLICT (ephemeral) DO NOTHING'),
      expire: db.prepare('DELETE FROM seen_seals WHERE expires_at <= ?'),
      count: db.prepare('SELECT count(*) AS n FROM seen_seals')
    }
  }

  /** Records E; true when it was already there (a replay: drop the payload and send nothing). */
  checkAndAdd (ephemeral: Uint8Array, expiresAt: number): boolean {
    if (!(ephemeral instanceof Uint8Array) || ephemeral.length !== EPHEMERAL_KEY_LENGTH) throw new RangeError(`an ephemeral key is ${EPHEMERAL_KEY_LENGTH} bytes`)
    if (!Number.isSafeInteger(expiresAt)) throw new RangeError('expiresAt must be an integer (ms)')
    return Number(this.sql.insert.run(ephemeral, expiresAt).changes) === 0
  }

  /** Forgets the keys whose payloads can no longer arrive. Returns how many. */
  expire (now = Date.now()): number {
    return Number(this.sql.expire.run(now).changes)
  }

  get size (): number {
    return Number((this.sql.count.get() as { n: number }).n)
  }
}
