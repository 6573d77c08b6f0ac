/**
 * The role a relay plays for users, fixed by its peer id (PROTOCOL-V2.md section 3): an **entry** relay
 * takes users' client links; an **exit** runs their directory requests. The two sets are disjoint, so
 * the exit of a lookup of a user's nick is never that user's entry relay: an entry relay that also ran
 * lookups would see "someone looks up bob" while bob is its client, and link the two by timing.
 * Mixes may be either; users make their mailboxes on exit-role relays (node/mailboxes.ts), the
 * position complementary to the guard's (a nick's mailbox relays are in its public record, so an exit
 * holding one learns nothing new; a mailbox relay is never its owner's guard).
 *
 * The rule is public and needs no field in the descriptor: the first bit of
 * SHA-256("p2pchat/relay-role/v1" ‖ peer id as text). Anyone can compute anyone's role; a relay cannot
 * claim the other role without another peer id. A network with too few relays of one role falls back
 * to the others with a visible warning (node/entry.ts, node/directory-client.ts, node/mailboxes.ts).
 *
 * Limits (SPEC.md "Grinding roles"; issue 12):
 * - The rule stops a relay acting alone. An operator with one relay of each role links a lookup of bob
 *   to bob's address as a single relay of both roles would: against an operator of many relays the
 *   roles protect nothing.
 * - A relay chooses its peer id, so it chooses its role: two key pairs per relay on average make every
 *   relay of an operator an entry relay. Guards are drawn by /16 with each /16's weight split over its
 *   relays' roles (protocols/onion/paths.ts `drawForPosition`); an honest /16 of one relay is of the
 *   entry role one time in two, so an operator that grinds weighs twice what an honest /16 does for the
 *   guard position (measured: about 67 % of first guards for 20 of 40 /16s). It gains nothing by it:
 *   mailboxes, the other end of a message's path, are drawn the same way for the exit role, so what a
 *   /16 puts on one position it takes off the other, and both ends are hostile at most about share² of
 *   the time for any split (0 % when all are ground to the entry role, 25.2 % for 10 /16s of each role
 *   of 40; SPEC.md "Grinding roles"). Grinding to the exit role doubles the operator's share of exits
 *   and mailbox relays (not protected).
 */
import { createHash } from 'node:crypto'

export type RelayRole = 'entry' | 'exit'

const LABEL = 'p2pchat/relay-role/v1'

export function relayRole (peerId: string): RelayRole {
  const digest = createHash('sha256').update(LABEL).update(peerId).digest()
  return (digest[0] & 0x80) === 0 ? 'entry' : 'exit'
}
