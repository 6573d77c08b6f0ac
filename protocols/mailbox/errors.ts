/**
 * Build-time and store errors of the mailbox service: thrown when a caller asks to encode something the
 * format cannot carry, or when the store cannot be opened. Bytes from the network never throw; decoders
 * reject them with a `DecodeReason` (./codec.ts). Tests assert on `name`.
 */

/** A malformed raw key: one class for the project, defined with the raw-key code. */
export { InvalidKeyError } from '../crypto/keys.ts'

export class InvalidMailboxIdError extends Error {
  static readonly code = 'ERR_INVALID_MAILBOX_ID'
  constructor (message = 'a mailbox id is 32 bytes') {
    super(message)
    this.name = 'InvalidMailboxIdError'
  }
}

export class InvalidItemIdError extends Error {
  static readonly code = 'ERR_INVALID_ITEM_ID'
  constructor (message = 'an item id is 16 bytes') {
    super(message)
    this.name = 'InvalidItemIdError'
  }
}

export class ItemTooLargeError extends Error {
  static readonly code = 'ERR_ITEM_TOO_LARGE'
  constructor (message = 'an item is 1..MAX_ITEM (2022) bytes') {
    super(message)
    this.name = 'ItemTooLargeError'
  }
}

export class RecordTooLargeError extends Error {
  static readonly code = 'ERR_RECORD_TOO_LARGE'
  constructor (message = 'a name record in a REGISTER is 1..MAX_RECORD (1918) bytes') {
    super(message)
    this.name = 'RecordTooLargeError'
  }
}

export class InvalidReplyBlockError extends Error {
  static readonly code = 'ERR_INVALID_REPLY_BLOCK'
  constructor (message = 'a reply block is SURB_SIZE (529) bytes') {
    super(message)
    this.name = 'InvalidReplyBlockError'
  }
}

export class TooManyBlocksError extends Error {
  static readonly code = 'ERR_TOO_MANY_BLOCKS'
  constructor (message = 'a STOCK carries 1..MAX_STOCK_BLOCKS (4) reply blocks') {
    super(message)
    this.name = 'TooManyBlocksError'
  }
}

export class TooManyItemIdsError extends Error {
  static readonly code = 'ERR_TOO_MANY_ITEM_IDS'
  constructor (message = 'an ACK carries 1..MAX_ACK_IDS (121) item ids') {
    super(message)
    this.name = 'TooManyItemIdsError'
  }
}

export class InvalidTimestampError extends Error {
  static readonly code = 'ERR_INVALID_TIMESTAMP'
  constructor (message = 'timestamp must be a non-negative safe integer (ms since the epoch)') {
    super(message)
    this.name = 'InvalidTimestampError'
  }
}

/** A count or limit in an answer is outside what its field holds. */
export class InvalidAnswerFieldError extends Error {
  static readonly code = 'ERR_INVALID_ANSWER_FIELD'
  constructor (message: string) {
    super(message)
    this.name = 'InvalidAnswerFieldError'
  }
}

/** A request built with a reply block would not fit the payload (e.g. 4 blocks in a STOCK with its own reply block). */
export class RequestTooLargeError extends Error {
  static readonly code = 'ERR_REQUEST_TOO_LARGE'
  constructor (message = 'the request does not fit the service body') {
    super(message)
    this.name = 'RequestTooLargeError'
  }
}

export class MailboxStoreClosedError extends Error {
  static readonly code = 'ERR_MAILBOX_STORE_CLOSED'
  constructor (message = 'the mailbox store is closed') {
    super(message)
    this.name = 'MailboxStoreClosedError'
  }
}

/** The file was written by a newer p2pchat. */
export class MailboxStoreVersionError extends Error {
  static readonly code = 'ERR_MAILBOX_STORE_VERSION'
  constructor (message = 'the mailbox database schema is newer than this program') {
    super(message)
    this.name = 'MailboxStoreVersionError'
  }
}

/** The database file is not a regular file or other users can read it. */
export class MailboxStorePermissionError extends Error {
  static readonly code = 'ERR_MAILBOX_STORE_PERMISSIONS'
  constructor (message: string) {
    super(message)
    this.name = 'MailboxStorePermissionError'
  }
}

/** A caller passed a limit or option that is not a positive integer. */
export class InvalidMailboxOptionError extends Error {
  static readonly code = 'ERR_INVALID_MAILBOX_OPTION'
  constructor (message: string) {
    super(message)
    this.name = 'InvalidMailboxOptionError'
  }
}

/** A SYNC's push period outside MIN_PUSH_PERIOD_MS..MAX_PUSH_PERIOD_MS (SPEC.md section 11). */
export class InvalidPushPeriodError extends Error {
  static readonly code = 'ERR_INVALID_PUSH_PERIOD'
  constructor (message = 'a push period is an integer number of ms in 100..86,400,000') {
    super(message)
    this.name = 'InvalidPushPeriodError'
  }
}

/** A SYNC carries exactly SYNC_BLOCKS reply blocks (SPEC.md section 11). */
export class SyncBlocksError extends Error {
  static readonly code = 'ERR_SYNC_BLOCKS'
  constructor (message = 'a SYNC carries exactly 3 reply blocks') {
    super(message)
    this.name = 'SyncBlocksError'
  }
}
