/**
 * An in-memory table of a user's mailbox keys, shaped as node/store.ts makes it: what a MailboxClient
 * (node/mailbox-keys.ts) needs when a test runs one without a whole ChatStore.
 */
import { DatabaseSync } from 'node:sqlite'

export function mailboxKeysDb (): DatabaseSync {
  const db = new DatabaseSync(':memory:')
  db.exec(`CREATE TABLE mailbox_keys (id BLOB PRIMARY KEY NOT NULL, relay BLOB NOT NULL, seed BLOB NOT NULL,
    public_key BLOB NOT NULL, created_at INTEGER NOT NULL, registered_at INTEGER, retired_at INTEGER) STRICT`)
  return db
}
