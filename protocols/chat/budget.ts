/**
 * The byte budget of one message (FORMAT.md "Byte budget", PROTOCOL-V2.md section 7): how big a sealed
 * message envelope is for given field sizes, whether a sender's name record may ride along (at most
 * MAX_NAME_RECORD_BYTES = 784, which leaves 1024 bytes of text with a 32-character nick), and whether the
 * optional 529-byte receipt reply block still fits a mailbox item (MAX_ITEM = 2022 bytes, what one
 * 3072-byte packet's DEPOSIT carries).
 */
import {
  ENVELOPE_HEADER_BYTES,
  MAX_ITEM,
  MAX_NAME_RECORD_BYTES,
  MAX_TEXT_BYTES,
  MESSAGE_FIXED_BYTES,
  NICK_MAX_LENGTH,
  NICK_MIN_LENGTH,
  REPLY_BLOCK_BYTES,
  SEALED_OVERHEAD
} from './constants.ts'

export interface MessageSizes {
  /** UTF-8 bytes of the text, 0..1024 */
  textBytes: number
  /** bytes of the carried name record, 0..784 (0 = omitted) */
  recordBytes: number
  /** nick length, 1..32; default 32 (the worst case) */
  nickBytes?: number
  /** reply block bytes: 0 or 529; default 0 */
  replyBlockBytes?: number
}

function inRange (n: number, min: number, max: number): boolean {
  return Number.isInteger(n) && n >= min && n <= max
}

/** Bytes of the sealed message envelope (the mailbox item) for these field sizes; NaN for sizes the format does not allow. */
export function sealedMessageBytes (sizes: MessageSizes): number {
  const nick = sizes.nickBytes ?? NICK_MAX_LENGTH
  const reply = sizes.replyBlockBytes ?? 0
  if (!inRange(sizes.textBytes, 0, MAX_TEXT_BYTES) || !inRange(sizes.recordBytes, 0, MAX_NAME_RECORD_BYTES) ||
    !inRange(nick, NICK_MIN_LENGTH, NICK_MAX_LENGTH) || (reply !== 0 && reply !== REPLY_BLOCK_BYTES)) return Number.NaN
  return SEALED_OVERHEAD + ENVELOPE_HEADER_BYTES + MESSAGE_FIXED_BYTES + nick + sizes.textBytes + sizes.recordBytes + reply
}

/**
 * Whether a name record of `recordBytes` may ride along in a message (first contact): at most
 * MAX_NAME_RECORD_BYTES = 784, the most that leaves a full 1024 bytes of text in one item. A sender
 * whose record is larger sends the message without it (FORMAT.md "Record size").
 */
export function nameRecordFits (recordBytes: number): boolean {
  return inRange(recordBytes, 0, MAX_NAME_RECORD_BYTES)
}

/**
 * Whether a message with `textBytes` of text and a `recordBytes` name record (and a nick of `nickBytes`,
 * default the worst case 32) still fits one mailbox item with the 529-byte receipt reply block:
 * 53 + 1 + 128 + nick + text + record + 529 <= 2022, i.e. text + record <= 1279 with a 32-byte nick
 * (with the largest record, 784 bytes, up to 495 bytes of text). False for sizes the format does not allow.
 */
export function receiptBlockFits (textBytes: number, recordBytes: number, nickBytes = NICK_MAX_LENGTH): boolean {
  const size = sealedMessageBytes({ textBytes, recordBytes, nickBytes, replyBlockBytes: REPLY_BLOCK_BYTES })
  return size <= MAX_ITEM
}
