/**
 * A user's mailbox keys (table `mailbox_keys`): one Ed25519 key per mailbox it holds at a relay
 * (PROTOCOL-V2.md section 1). The key authenticates REGISTER, STOCK and ACK at that relay; the mailbox
 * id is a hash of its public key (protocols/mailbox), so nobody else can take over an id that lapses.
 * It is not the identity key: the relay cannot link two mailboxes of one user by their keys.
 * A retired mailbox (its relay gone, or replaced) is kept until nothing can be waiting in it: it is
 * still fetched (node/mailboxes.ts, "draining") but no longer named in the user's record.
 */
import type { DatabaseSync, StatementSync } from 'node:sqlite'

export interface MailboxKey {
  /** The mailbox id (32 bytes). */
  id: Uint8Array
  /** The relay's transport key (32 bytes). */
  relay: Uint8Array
  /** Ed25519 seed (secret) and public key. */
  seed: Uint8Array
  publicKey: Uint8Array
  createdAt: number
  registeredAt: number | null
  retiredAt: number | null
}

function blob (value: unknown): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError('expected a BLOB column')
  return Uint8Array.from(value)
}

function toKey (row: Record<string, unknown>): MailboxKey {
  return {
    id: blob(row.id),
    relay: blob(row.relay),
    seed: blob(row.seed),
    publicKey: blob(row.public_key),
    createdAt: Number(row.created_at),
    registeredAt: row.registered_at == null ? null : Number(row.registered_at),
    retiredAt: row.retired_at == null ? null : Number(row.retired_at)
  }
}

export class MailboxKeys {
  private readonly sql: Record<'insert' | 'active' | 'all' | 'get' | 'registered' | 'retire' | 'erase' | 'remove', StatementSync>

  constructor (db: DatabaseSync) {
    this.sql = {
      insert: db.prepare(`INSERT INTO mailbox_keys (id, relay, seed, public_key, created_at) VALUES (?, ?, ?, ?, ?)`),
      active: db.prepare('SELECT * FROM mailbox_keys WHERE retired_at IS NULL ORDER BY created_at, id'),
      all: db.prepare('SELECT * FROM mailbox_keys ORDER BY created_at, id'),
      get: db.prepare('SELECT * FROM mailbox_keys WHERE id = ?'),
      registered: db.prepare('UPDATE mailbox_keys SET registered_at = ? WHERE id = ?'),
      retire: db.prepare('UPDATE mailbox_keys SET retired_at = ? WHERE id = ? AND retired_at IS NULL'),
      erase: db.prepare('DELETE FROM mailbox_keys WHERE retired_at IS NOT NULL AND retired_at <= ?'),
      remove: db.prepare('DELETE FROM mailbox_keys WHERE id = ? AND retired_at IS NOT NULL')
    }
  }

  add (key: Pick<MailboxKey, 'id' | 'relay' | 'seed' | 'publicKey'>, now = Date.now()): MailboxKey {
    for (const [name, value] of Object.entries({ id: key.id, relay: key.relay, seed: key.seed, publicKey: key.publicKey })) {
      if (!(value instanceof Uint8Array) || value.length !== 32) throw new RangeError(`mailbox ${name} must be 32 bytes`)
    }
    this.sql.insert.run(key.id, key.relay, key.seed, key.publicKey, now)
    return this.get(key.id) as MailboxKey
  }

  get (id: Uint8Array): MailboxKey | undefined {
    const row = this.sql.get.get(id) as Record<string, unknown> | undefined
    return row == null ? undefined : toKey(row)
  }

  /** The mailboxes in use, oldest first. */
  active (): MailboxKey[] {
    return (this.sql.active.all() as Array<Record<string, unknown>>).map(toKey)
  }

  all (): MailboxKey[] {
    return (this.sql.all.all() as Array<Record<string, unknown>>).map(toKey)
  }

  markRegistered (id: Uint8Array, at = Date.now()): void {
    this.sql.registered.run(at, id)
  }

  /** Stops using a mailbox (it is kept, to fetch what may still wait there, until `erase`). */
  retire (id: Uint8Array, at = Date.now()): boolean {
    return Number(this.sql.retire.run(at, id).changes) === 1
  }

  /** Erases the keys of mailboxes retired at or before `before` (nothing can wait in them any more). */
  erase (before: number): number {
    return Number(this.sql.erase.run(before).changes)
  }

  /** Erases one retired mailbox's key (drained: found empty after no record can name it any more). */
  remove (id: Uint8Array): boolean {
    return Number(this.sql.remove.run(id).changes) === 1
  }
}
