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
 *
 * Limits (SPEC.md "Grinding roles"; issue 12):
 * - The rule stops a relay acting alone. An operator with one relay of each role links a lookup of bob
 *   to bob's address as a single relay of both roles would: against an operator of many relays the
 *   roles protect nothing.
 * - A relay chooses its peer id, so it chooses its role: two key pairs per relay on average make every
 *   relay of an operator an entry relay. Guards are drawn by /16 with each /16's weight split over its
 *   relays' roles (protocols/onion/paths.ts `drawForPosition`); an honest /16 of one relay is of the
 *   entry role one time in two and an exit cannot be a guard, so whatever the weights an operator that
 *   grinds weighs twice what an honest /16 does for the guard position: measured, 67 % of first guards
 *   and 33 % of paths with both ends hostile for 20 of 40 /16s, against the bound of 25 % (a MISS,
 *   not protected). No value both agreed by every client and unknown to an operator when it makes its
 *   key exists without a consensus or an outside beacon, so the role cannot be taken out of its hands
 *   here; guards from any relay (measured 26 %, no gain from grinding) would give up the rule above.
 */
import { createHash } from 'node:crypto'

export type RelayRole = 'entry' | 'exit'

const LABEL = 'p2pchat/relay-role/v1'

export function relayRole (peerId: string): RelayRole {
  const digest = createHash('sha256').update(LABEL).update(peerId).digest()
  return (digest[0] & 0x80) === 0 ? 'entry' : 'exit'
}
