/**
 * The role a relay plays for users, fixed by its peer id (PROTOCOL-V2.md section 3): an **entry** relay
 * takes users' client links; an **exit** runs their directory requests. The two sets are disjoint, so
 * the exit of a lookup of a user's nick is never that user's entry relay: an entry relay that also ran
 * lookups would see "someone looks up bob" while bob is its client, and link the two by timing.
 * Mixes and mailboxes may be either.
 *
 * The rule is public and needs no field in the descriptor: the first bit of
 * SHA-256("p2pchat/relay-role/v1" ‖ peer id as text). Anyone can compute anyone's role; a relay cannot
 * claim the other role without another peer id. A network with too few relays of one role falls back
 * to the others with a visible warning (node/entry.ts, node/directory-client.ts).
 */
import { createHash } from 'node:crypto'

export type RelayRole = 'entry' | 'exit'

const LABEL = 'p2pchat/relay-role/v1'

export function relayRole (peerId: string): RelayRole {
  const digest = createHash('sha256').update(LABEL).update(peerId).digest()
  return (digest[0] & 0x80) === 0 ? 'entry' : 'exit'
}
