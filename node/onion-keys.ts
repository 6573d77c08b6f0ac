/**
 * A user's onion keys by epoch (PROTOCOL-V2.md section 1): the X25519 keys that messages are sealed to.
 * Table `onion_keys` of the ChatStore.
 *
 * Schedule: epoch e covers [e * epochMs, (e + 1) * epochMs) of the wall clock, so every run of the user
 * agrees on the epoch without remembering when it started. The name record lists the current epoch's
 * key and the next one (published a whole epoch ahead, so a sender holding a day-old record still seals
 * to a key the user has).
 *
 * Erasure: a key is kept while a message sealed to it may still be waiting. A sender may seal with a
 * record up to RECORD_LIFETIME after it was signed (mailbox relays keep republishing it while the owner
 * is away), and the item then waits up to MESSAGE_TTL in the mailbox: so a key is erased
 * RECORD_LIFETIME + MESSAGE_TTL after its epoch ended, and never earlier. Erased rows are overwritten on
 * disk (the store runs with secure_delete). Whoever seizes the data directory later can open only what
 * was sealed to the keys still held.
 */
import type { DatabaseSync, StatementSync } from 'node:sqlite'
import { generateX25519KeyPair } from '../protocols/crypto/keys.ts'

export const DEFAULT_ONION_EPOCH_MS = 24 * 3600_000
/** A name record lives at most this long (PROTOCOL-V2.md section 4: a week of waiting plus a day). */
export const RECORD_LIFETIME_MS = 8 * 24 * 3600_000
/** A message waits in a mailbox at most this long. */
export const MESSAGE_TTL_MS = 7 * 24 * 3600_000
export const DEFAULT_ONION_KEY_RETENTION_MS = RECORD_LIFETIME_MS + MESSAGE_TTL_MS

export interface UserOnionKey {
  epoch: number
  publicKey: Uint8Array
  privateKey: Uint8Array
  notBefore: number
  notAfter: number
}

export interface UserOnionKeysInit {
  epochMs?: number
  retentionMs?: number
  now?: () => number
}

function copy (value: unknown): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError('expected a BLOB column')
  return Uint8Array.from(value)
}

export class UserOnionKeys {
  readonly epochMs: number
  readonly retentionMs: number
  private readonly now: () => number
  private readonly sql: { insert: StatementSync, get: StatementSync, all: StatementSync, erase: StatementSync }

  constructor (db: DatabaseSync, init: UserOnionKeysInit = {}) {
    this.epochMs = init.epochMs ?? DEFAULT_ONION_EPOCH_MS
    this.retentionMs = init.retentionMs ?? DEFAULT_ONION_KEY_RETENTION_MS
    if (!Number.isSafeInteger(this.epochMs) || this.epochMs < 1) throw new RangeError('epochMs must be a positive integer')
    this.now = init.now ?? Date.now
    this.sql = {
      insert: db.prepare(`INSERT INTO onion_keys (epoch, public_key, private_key, not_before, not_after)
        VALUES (?, ?, ?, ?, ?) ON CONFLICT (epoch) DO NOTHING`),
      get: db.prepare('SELECT * FROM onion_keys WHERE epoch = ?'),
      all: db.prepare('SELECT * FROM onion_keys ORDER BY epoch'),
      erase: db.prepare('DELETE FROM onion_keys WHERE not_after + ? <= ?')
    }
  }

  /** The epoch the wall clock is in now. */
  epochAt (time = this.now()): number {
    return Math.floor(time / this.epochMs)
  }

  private row (value: Record<string, unknown> | undefined): UserOnionKey | undefined {
    if (value == null) return undefined
    return {
      epoch: Number(value.epoch),
      publicKey: copy(value.public_key),
      privateKey: copy(value.private_key),
      notBefore: Number(value.not_before),
      notAfter: Number(value.not_after)
    }
  }

  /**
   * Makes sure the current and the next epoch have a key and erases the keys past their retention.
   * Returns the keys to publish: current, then next.
   */
  rotate (): UserOnionKey[] {
    const now = this.now()
    const current = this.epochAt(now)
    for (const epoch of [current, current + 1]) {
      const { publicKey, privateKey } = generateX25519KeyPair()
      this.sql.insert.run(epoch, publicKey, privateKey, epoch * this.epochMs, (epoch + 1) * this.epochMs)
    }
    this.sql.erase.run(this.retentionMs, now)
    return [current, current + 1].map(e => this.key(e) as UserOnionKey)
  }

  /** The key of one epoch, if it is still held. */
  key (epoch: number): UserOnionKey | undefined {
    if (!Number.isSafeInteger(epoch) || epoch < 0) return undefined
    return this.row(this.sql.get.get(epoch) as Record<string, unknown> | undefined)
  }

  /** Every key held, oldest first. */
  all (): UserOnionKey[] {
    return (this.sql.all.all() as Array<Record<string, unknown>>).map(r => this.row(r) as UserOnionKey)
  }
}
