/**
 * Contacts: who may reach us, and how far we trust each key (issue 15). The rules:
 *
 * - Nothing is pinned without the user's action: a nick is pinned when the user sends to it (the key
 *   the directory gives at that moment, or the one named by `nick#fingerprint`), or accepts its request.
 *   A retry of a queued message by the outbox pins nothing (a nick nobody held when the user wrote may
 *   be taken by someone else later).
 * - A first message from someone who is not a contact is a request: kept apart, no receipt sent (a
 *   receipt would prove to a stranger that we are online) until the user accepts; denied, it is deleted;
 *   blocked, its key's later items are dropped unread and counted.
 * - Trust has three states, shown everywhere a contact is: `unverified` (signatures check out, the user
 *   has not compared safety numbers), `verified` (the user compared the safety number out of band and
 *   confirmed), `changed` (another key was seen for the nick: nothing is sent to it until accepted).
 */
import { fingerprint, safetyNumber } from '../protocols/chat/index.ts'
import { bytesEqual } from '../protocols/directory/record.ts'
import { ContactsStore } from './contacts-store.ts'
import type { BlockedKey, ContactRequest, Conversation } from './contacts-store.ts'
import { UserError } from './errors.ts'
import type { ChatStore, Pin } from './store.ts'

export type Trust = 'unverified' | 'verified' | 'changed'

/** The trust state of a pin (undefined: not a contact). */
export function trustOf (pin: Pin | undefined): Trust | undefined {
  if (pin == null) return undefined
  if (pin.pending != null) return 'changed'
  return pin.verifiedAt != null ? 'verified' : 'unverified'
}

/** `/verify`, `/accept` or `/block` named a nick that is neither a contact nor a request. */
export class UnknownContactError extends UserError {
  constructor (nick: string) {
    super(`${nick} is not a contact and sent no request`, 'NOT_A_CONTACT')
    this.name = 'UnknownContactError'
  }
}

/** `/verify <nick> confirm` while a changed key waits: the user must accept or refuse it first. */
export class KeyChangedError extends UserError {
  constructor (nick: string) {
    super(`the key of ${nick} changed: compare the new safety number and /accept ${nick} before confirming`, 'KEY_CHANGED')
    this.name = 'KeyChangedError'
  }
}

export interface SafetyNumberView {
  nick: string
  /** 60 digits in 12 groups of 5, the same on both sides */
  safetyNumber: string
  mine: string
  theirs: string
  trust: Trust
  /** a changed key waiting: its fingerprint and the safety number with it */
  pending?: { fingerprint: string, safetyNumber: string }
}

export type AcceptResult = { kind: 'request', messageIds: string[], identityKey: Uint8Array, record: Uint8Array } | { kind: 'key' } | { kind: 'none' }

export class Contacts {
  readonly table: ContactsStore
  private readonly store: ChatStore
  private readonly myKey: Uint8Array
  private readonly myFingerprint: string

  constructor (store: ChatStore, myIdentityKey: Uint8Array) {
    this.store = store
    this.table = new ContactsStore(store)
    this.myKey = myIdentityKey
    this.myFingerprint = fingerprint(myIdentityKey)
  }

  trust (nick: string): Trust | undefined { return trustOf(this.store.getPin(nick)) }

  /** The safety number with a contact (or with a pending request's key). */
  safety (nick: string): SafetyNumberView {
    const pin = this.store.getPin(nick)
    if (pin == null) {
      const req = this.table.request(nick)
      if (req == null) throw new UnknownContactError(nick)
      return { nick, safetyNumber: safetyNumber(this.myKey, req.identityKey), mine: this.myFingerprint, theirs: req.fingerprint, trust: 'unverified' }
    }
    const view: SafetyNumberView = { nick, safetyNumber: safetyNumber(this.myKey, pin.identityKey), mine: this.myFingerprint, theirs: pin.fingerprint, trust: trustOf(pin) ?? 'unverified' }
    if (pin.pending != null) view.pending = { fingerprint: pin.pending.fingerprint, safetyNumber: safetyNumber(this.myKey, pin.pending.identityKey) }
    return view
  }

  /** The user compared the safety number: the pin becomes verified. A request is accepted first by the caller. */
  confirm (nick: string): SafetyNumberView {
    const pin = this.store.getPin(nick)
    if (pin == null) throw new UnknownContactError(nick)
    if (pin.pending != null) throw new KeyChangedError(nick)
    this.table.markVerified(nick, pin.identityKey)
    return this.safety(nick)
  }

  /**
   * A pin on the user's own action (a send, an explicit fingerprint): 'new' pins the key; a request
   * from the same key is accepted with it (returned so its receipts can be sent). 'changed' when
   * another key is pinned (nothing replaced).
   */
  pinByUser (nick: string, key: Uint8Array): { result: 'new' | 'same' | 'changed', accepted?: AcceptResult } {
    // 'same': the pinned key (also while another key waits to be accepted: this one is the pinned person's)
    const result = this.store.pin(nick, key)
    if (result !== 'new') return { result }
    const req = this.table.request(nick)
    if (req != null && bytesEqual(req.identityKey, key)) return { result, accepted: { kind: 'request', messageIds: this.table.acceptRequest(nick), identityKey: req.identityKey, record: req.record } }
    if (req != null) this.table.denyRequest(nick) // a request under another key than the one the user chose
    return { result }
  }

  /** `/accept <nick>`: a pending request becomes a contact (pinned, unverified), or a changed key replaces the pin. */
  accept (nick: string): AcceptResult {
    const req = this.table.request(nick)
    if (req != null && this.store.getPin(nick) == null) {
      return this.store.transaction(() => {
        this.store.pin(nick, req.identityKey)
        return { kind: 'request', messageIds: this.table.acceptRequest(nick), identityKey: req.identityKey, record: req.record } satisfies AcceptResult
      })
    }
    return this.store.acceptKey(nick) ? { kind: 'key' } : { kind: 'none' }
  }

  /** `/deny <nick>`: the request and its messages are deleted; a changed key is refused (the old pin stays). */
  deny (nick: string): boolean {
    return this.table.denyRequest(nick) || this.store.rejectKey(nick)
  }

  /**
   * `/block <nick>`: the request's key (or the pinned key and any changed key seen) is blocked; its
   * later items are dropped unread. A request is deleted. False if the nick is unknown.
   */
  block (nick: string): boolean {
    const keys: Uint8Array[] = []
    const req = this.table.request(nick)
    if (req != null) keys.push(req.identityKey)
    const pin = this.store.getPin(nick)
    if (pin != null) keys.push(pin.identityKey)
    if (pin?.pending != null) keys.push(pin.pending.identityKey)
    if (keys.length === 0) return false
    this.store.transaction(() => {
      for (const k of keys) this.table.block(nick, k)
      this.table.denyRequest(nick)
    })
    return true
  }

  requests (): ContactRequest[] { return this.table.requests() }
  blocked (): BlockedKey[] { return this.table.blocked() }
  conversations (): Conversation[] { return this.table.conversations() }
}
