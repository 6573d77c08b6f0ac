/**
 * Sizes, operation codes, labels and default limits of the mailbox service (service 0x01).
 * The byte layouts they govern are written down in ./SPEC.md; keep both in step.
 */

// ---- sizes fixed elsewhere (imported from the Sphinx v2 code at integration) ----

/** PROTOCOL-V2.md section 3: application bytes one Sphinx v2 packet (forward or reply) carries. */
export const PAYLOAD_CAPACITY = 2589
/** PROTOCOL-V2.md section 3: a reply block (SURB) = first hop address 32 + header 465 + payload key 32. */
export const SURB_SIZE = 529
/** PROTOCOL-V2.md section 5: the service byte that routes a SERVICE body to this module. */
export const MAILBOX_SERVICE = 0x01
/** PROTOCOL-V2.md section 5: `service u8 ‖ reply block length u16` before the reply block. */
export const SERVICE_HEADER_BYTES = 1 + 2

// ---- field sizes ----

/** SHA-256 output: the mailbox id. */
export const MAILBOX_ID_BYTES = 32
/** Raw Ed25519 public key of a mailbox (RFC 8032). */
export const PUBLIC_KEY_BYTES = 32
/** Raw Ed25519 seed of a mailbox key. */
export const SEED_BYTES = 32
/** Ed25519 signature. */
export const SIGNATURE_BYTES = 64
/** Random item id chosen by the relay: 128 bits, never repeats by chance. */
export const ITEM_ID_BYTES = 16
/** u64 ms since the Unix epoch. */
export const TIMESTAMP_BYTES = 8

// ---- request and answer codes ----

/** Request operation codes (SPEC.md section 3). */
export const OP_DEPOSIT = 0x01
export const OP_REGISTER = 0x02
export const OP_STOCK = 0x03
export const OP_ACK = 0x04
/** Version 2 (SPEC.md section 11): the owner's steady combined stock-and-acknowledge request. */
export const OP_SYNC = 0x05

/** Answer kinds (SPEC.md section 4). */
export const ANSWER_STORED = 0x01
export const ANSWER_FULL = 0x02
export const ANSWER_UNKNOWN = 0x03
export const ANSWER_TOO_LARGE = 0x04
export const ANSWER_REGISTERED = 0x05
export const ANSWER_REFUSED = 0x06
export const ANSWER_STOCKED = 0x07
export const ANSWER_PUSH = 0x08
export const ANSWER_ACKED = 0x09
/** Version 2 (SPEC.md section 11): the answer to a SYNC that carried a reply block (the version probe). */
export const ANSWER_SYNCED = 0x0a
/** Version 2 (SPEC.md section 11): a steady push with nothing to carry; the owner drops it, counted. */
export const ANSWER_PADDING = 0x0b

/** REFUSED reasons (SPEC.md section 4). */
export const REFUSED_RELAY_FULL = 0x01
export const REFUSED_BAD_SIGNATURE = 0x02
export const REFUSED_STALE = 0x03
export const REFUSED_KEY_MISMATCH = 0x04

// ---- labels ----

/** mailbox id = SHA-256(MAILBOX_ID_LABEL ‖ public key). */
export const MAILBOX_ID_LABEL = 'p2pchat-mailbox-v1'
/** Signature labels: Ed25519(label ‖ mailbox id ‖ the fields after it, before the signature). */
export const REGISTER_LABEL = 'p2pchat-mailbox-v1/register'
export const STOCK_LABEL = 'p2pchat-mailbox-v1/stock'
export const ACK_LABEL = 'p2pchat-mailbox-v1/ack'
/** Version 2's SYNC (its own version prefix: no v1 label is a prefix of it, nor it of one). */
export const SYNC_LABEL = 'p2pchat-mailbox-v2/sync'

// ---- derived sizes ----

/** op 1 + mailbox id 32: the start of every request. */
export const REQUEST_HEAD_BYTES = 1 + MAILBOX_ID_BYTES
/** kind 1 + mailbox id 32: the start of every answer. */
export const ANSWER_HEAD_BYTES = 1 + MAILBOX_ID_BYTES
/** The largest request that still leaves room for a reply block in the service body: 2589 - 3 - 529 = 2057. */
export const MAX_REQUEST_WITH_REPLY = PAYLOAD_CAPACITY - SERVICE_HEADER_BYTES - SURB_SIZE
/** The largest request in a service body without a reply block: 2586. */
export const MAX_REQUEST = PAYLOAD_CAPACITY - SERVICE_HEADER_BYTES
/** An answer travels after the caller's `service u8` in a reply payload: 2588. */
export const MAX_ANSWER = PAYLOAD_CAPACITY - 1

/** DEPOSIT before the item: op 1 + mailbox id 32 + item length 2 = 35 (PROTOCOL-V2.md section 7). */
export const DEPOSIT_HEAD_BYTES = REQUEST_HEAD_BYTES + 2
/** The largest item: what a DEPOSIT with a `stored` reply block leaves: 2589 - 3 - 529 - 35 = 2022. */
export const MAX_ITEM = MAX_REQUEST_WITH_REPLY - DEPOSIT_HEAD_BYTES

/** REGISTER without the record: op, id, public key 32, timestamp 8, record length 2, signature 64 = 139. */
export const REGISTER_FIXED_BYTES = REQUEST_HEAD_BYTES + PUBLIC_KEY_BYTES + TIMESTAMP_BYTES + 2 + SIGNATURE_BYTES
/** The largest name record a REGISTER carries with its reply block: 2057 - 139 = 1918 (names are ~400). */
export const MAX_RECORD = MAX_REQUEST_WITH_REPLY - REGISTER_FIXED_BYTES

/** STOCK without blocks: op, id, timestamp 8, count 1, signature 64 = 106. */
export const STOCK_FIXED_BYTES = REQUEST_HEAD_BYTES + TIMESTAMP_BYTES + 1 + SIGNATURE_BYTES
/** Reply blocks one STOCK carries without its own reply block: floor((2586 - 106) / 529) = 4. */
export const MAX_STOCK_BLOCKS = Math.floor((MAX_REQUEST - STOCK_FIXED_BYTES) / SURB_SIZE)
/** ... and with a reply block for the `stocked` answer: floor((2057 - 106) / 529) = 3. */
export const MAX_STOCK_BLOCKS_WITH_REPLY = Math.floor((MAX_REQUEST_WITH_REPLY - STOCK_FIXED_BYTES) / SURB_SIZE)

/** ACK without ids: op, id, timestamp 8, count 1, signature 64 = 106. */
export const ACK_FIXED_BYTES = REQUEST_HEAD_BYTES + TIMESTAMP_BYTES + 1 + SIGNATURE_BYTES
/** Item ids one ACK carries, always with room for its reply block: floor((2057 - 106) / 16) = 121. */
export const MAX_ACK_IDS = Math.floor((MAX_REQUEST_WITH_REPLY - ACK_FIXED_BYTES) / ITEM_ID_BYTES)

/**
 * SYNC (version 2) without blocks and ids: op, id, timestamp 8, push period u32, ack count 1, signature 64 = 110.
 */
export const SYNC_FIXED_BYTES = REQUEST_HEAD_BYTES + TIMESTAMP_BYTES + 4 + 1 + SIGNATURE_BYTES
/**
 * Reply blocks in every SYNC: always exactly this many, so every SYNC has one size; 3 is what fits
 * beside the reply block of the first SYNC (the version probe): floor((2057 - 110) / 529) = 3.
 */
export const SYNC_BLOCKS = Math.floor((MAX_REQUEST_WITH_REPLY - SYNC_FIXED_BYTES) / SURB_SIZE)
/** Item-id slots in every SYNC (unused ones zero): what is left beside 3 blocks and a reply block: floor(360 / 16) = 22. */
export const SYNC_ACK_SLOTS = Math.floor((MAX_REQUEST_WITH_REPLY - SYNC_FIXED_BYTES - SYNC_BLOCKS * SURB_SIZE) / ITEM_ID_BYTES)
/** The whole SYNC: 110 + 3 x 529 + 22 x 16 = 2049 bytes, always. */
export const SYNC_BYTES = SYNC_FIXED_BYTES + SYNC_BLOCKS * SURB_SIZE + SYNC_ACK_SLOTS * ITEM_ID_BYTES
/**
 * The shortest push period a relay takes (a SYNC asking for less is dropped, `period`): pushes only
 * use blocks the owner supplied, so a short period costs the relay nothing an owner did not pay for;
 * this floor only keeps a relay's timer from spinning. Tests use periods of a few hundred ms.
 */
export const MIN_PUSH_PERIOD_MS = 100
/** The longest push period: a day (blocks live 50 min, so longer periods would only waste them). */
export const MAX_PUSH_PERIOD_MS = 24 * 3600_000

/** PUSH around the item: kind, id, item id 16, item length 2, waiting 2 = 53; the largest PUSH is 2075 <= 2588. */
export const PUSH_FIXED_BYTES = ANSWER_HEAD_BYTES + ITEM_ID_BYTES + 2 + 2

/** Largest timestamp a u64 field may carry here (safe integer ms). */
export const MAX_TIMESTAMP = Number.MAX_SAFE_INTEGER

// ---- default limits (SPEC.md section 6 gives the reasons) ----

/** The age limit of an item (issue 10: messages wait up to a week). */
export const DEFAULT_ITEM_AGE_MS = 7 * 24 * 3600_000
/** A mailbox whose owner sent no authenticated request for this long, and that is empty, is removed: a name record's lifetime (8 days). */
export const DEFAULT_IDLE_AGE_MS = 8 * 24 * 3600_000
/** Items per mailbox: a week offline at ~140 messages a day. */
export const DEFAULT_MAX_ITEMS_PER_MAILBOX = 1000
/** Bytes per mailbox: 1000 items of ~2 KiB. */
export const DEFAULT_MAX_BYTES_PER_MAILBOX = 2 * 1024 * 1024
/** Mailboxes per relay: two per user, ~500 users on one volunteer relay. */
export const DEFAULT_MAX_MAILBOXES = 1000
/** Items per relay: one eighth of 1000 full mailboxes (most are near empty: online owners fetch at once). */
export const DEFAULT_MAX_ITEMS_PER_RELAY = 125_000
/** Bytes per relay: 256 MiB of disk for a volunteer, one eighth of 1000 full mailboxes. */
export const DEFAULT_MAX_BYTES_PER_RELAY = 256 * 1024 * 1024
/** Owner timestamps within this distance of the relay's clock are accepted. */
export const DEFAULT_CLOCK_WINDOW_MS = 10 * 60_000
/** Reply blocks held per mailbox: four STOCK requests' worth. */
export const DEFAULT_MAX_BLOCKS_PER_MAILBOX = 16
/** Reply blocks held per relay: 4096 x 529 B = ~2 MiB of memory. */
export const DEFAULT_MAX_BLOCKS_PER_RELAY = 4096
/** A stocked block is dropped after this: shorter than a relay epoch (1 h), since a block dies when any relay on it rotates its key. */
export const DEFAULT_BLOCK_LIFETIME_MS = 50 * 60_000
/** An item pushed and not acknowledged after this may go again through a later block (push, 4 hops, ACK, 3 hops, with mixing delays). */
export const DEFAULT_REPUSH_INTERVAL_MS = 5 * 60_000
/** How often the service sweeps: expiry, dead blocks, re-pushes. */
export const DEFAULT_SWEEP_INTERVAL_MS = 60_000
/** How often held name records are handed to `onRecord` again (DHT values expire after 48 h). */
export const DEFAULT_REPUBLISH_INTERVAL_MS = 6 * 3600_000
