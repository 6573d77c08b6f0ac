/**
 * The receiving side of a user (PROTOCOL-V2.md; issue 15 for requests): items our mailboxes push, the
 * receipts for our messages, and the receipts we owe.
 *
 * An item is opened with the onion key of the epoch it names; a seal key seen before is a replay and is
 * dropped without a word; an item from a blocked key is dropped unread (counted per key). A message's
 * signature must cover our identity key (else it was addressed to someone else); the sender is checked
 * against the name record a first message carries and against our pins, never by a lookup the message
 * triggers.
 *
 * - From a contact (pinned, same key): shown in the conversation; a receipt is owed until a mailbox of
 *   the sender stores it.
 * - From a contact under another key: shown flagged, the new key kept pending (`key-changed`), no receipt.
 * - From someone not a contact: a request (node/contacts.ts): kept apart, no receipt until accepted. With
 *   `acceptAnyone` (a bot, `start --accept-anyone`) the key is pinned at once, as unverified.
 *   A message from a non-contact that does not verify (bad signature, no or foreign record) is dropped
 *   and counted: it cannot be answered nor attributed.
 *
 * A contact first met through its own message is cross-checked in the directory later, at a random delay.
 *
 * Receipts (issue 11): at a mixing level a receipt leaves after an exponential delay of the level's
 * `receiptDelayMs` mean (all receipts owed then go together), and then waits for a cover tick like any
 * packet, so the sender's ✓✓ does not tell the instant its message arrived. A stranger's message gets
 * no answer at all until the user accepts it (then its receipt is delayed the same way).
 *
 * A receipt's STORED that comes after the deposit timed out (MailboxClient.deposit's `onLate`) marks it
 * stored as an answer in time would: on a network slower than the request timeout the receipt is not
 * deposited again every retry round.
 */
import { randomInt } from 'node:crypto'
import { logger } from '@libp2p/logger'
import { createReceipt, fingerprint, MAX_RECEIPT_IDS, openSealed, sealReceipt, verifyReceipt } from '../protocols/chat/index.ts'
import { bytesEqual, nameKey, verifyRecord } from '../protocols/directory/record.ts'
import type { SignedRecord } from '../protocols/directory/record.ts'
import { onionKeyFor } from '../protocols/onion/relay-directory.ts'
import type { ChatEvent } from './chat-node.ts'
import type { Contacts } from './contacts.ts'
import type { DirectoryClient } from './directory-client.ts'
import type { Identity } from './identity.ts'
import type { MailboxClient } from './mailboxes.ts'
import { MESSAGE_TTL_MS } from './onion-keys.ts'
import type { UserOnionKeys } from './onion-keys.ts'
import type { SeenSeals } from './seen-seals.ts'
import type { ChatStore, StoredMessage } from './store.ts'

export interface ReceiveStats {
  itemsReceived: number
  replaysDropped: number
  unopenable: number
  receiptsDeposited: number
  /** receipts known stored only from a mailbox's answer after the request timed out */
  lateReceiptAnswers: number
  receiptsReceived: number
  /** items from a blocked key, dropped unread */
  blockedDropped: number
  /** messages from non-contacts that did not verify, or that a full request list could not keep */
  requestsDropped: number
}

export interface ReceiverInit {
  store: ChatStore
  contacts: Contacts
  onionKeys: UserOnionKeys
  seenSeals: SeenSeals
  identity: Identity
  /** Deposits a receipt (node/chat-node.ts wraps it so its packet expects its STORED: answer cover). */
  mailboxes: Pick<MailboxClient, 'deposit'>
  directory: DirectoryClient
  timing: { messageTtlMs: number, crossCheckMaxDelayMs: number }
  /** Mean of the exponential delay before owed receipts leave, ms (0: at once; node/privacy.ts). */
  receiptDelayMs?: number
  /** Uniform draws for that delay (tests seed them). */
  uniform?: () => number
  /** Strangers become contacts at their first message (no requests). */
  acceptAnyone: boolean
  emit: (e: ChatEvent) => void
  /** The verified record on file for a contact. */
  keptRecord: (nick: string) => SignedRecord | undefined
  /** The order to try a contact's mailboxes in. */
  depositOrder: (record: SignedRecord) => SignedRecord['mailboxes']
  /** Started and not stopping. */
  running: () => boolean
}

function hex (b: Uint8Array): string { return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex') }

export class Receiver {
  readonly stats: ReceiveStats = { itemsReceived: 0, replaysDropped: 0, unopenable: 0, receiptsDeposited: 0, lateReceiptAnswers: 0, receiptsReceived: 0, blockedDropped: 0, requestsDropped: 0 }
  private readonly init: ReceiverInit
  private readonly log = logger('p2pchat:receive')
  private timers: Array<ReturnType<typeof setTimeout>> = []
  private receiptsRunning = false
  /** The drawn delay before owed receipts go is running. */
  private receiptTimer: ReturnType<typeof setTimeout> | undefined

  constructor (init: ReceiverInit) { this.init = init }

  stop (): void {
    for (const t of this.timers) clearTimeout(t)
    this.timers = []
    clearTimeout(this.receiptTimer)
    this.receiptTimer = undefined
  }

  /**
   * Owed receipts go after an exponential delay of `receiptDelayMs` mean (at once without one); one
   * delay runs at a time and every receipt owed when it ends goes then.
   */
  receiptsLater (): void {
    const mean = this.init.receiptDelayMs ?? 0
    if (mean <= 0) { this.sendReceipts().catch(() => {}); return }
    if (this.receiptTimer != null) return
    const u = (this.init.uniform ?? Math.random)()
    this.receiptTimer = setTimeout(() => {
      this.receiptTimer = undefined
      this.sendReceipts().catch(() => {})
    }, -mean * Math.log1p(-u))
    this.receiptTimer.unref()
  }

  /** An item a mailbox of ours pushed. Resolves true once handled for good (then the mailbox may delete it). */
  async onItem (item: Uint8Array): Promise<boolean> {
    const { store, contacts, seenSeals, identity, emit } = this.init
    this.stats.itemsReceived++
    const opened = openSealed(item, (epoch) => this.init.onionKeys.key(epoch)?.privateKey, identity.identityKey)
    if (!opened.ok) {
      this.stats.unopenable++
      this.log('dropped an item that did not open: %s', opened.reason)
      return true
    }
    const keepUntil = Date.now() + MESSAGE_TTL_MS + 24 * 3600_000
    if (opened.type === 'receipt') {
      // the seal key and the messages it marks delivered in one transaction, committed without an fsync
      // on the event loop: 'delivered' is said, and the receipt acknowledged (the mailbox deletes it),
      // once it is on disk
      let replay = false
      let delivered: StoredMessage[] = []
      store.deferredTransaction(() => {
        replay = seenSeals.checkAndAdd(opened.ephemeralKey, keepUntil)
        if (!replay) delivered = this.onReceipt(opened.receipt)
      })
      if (replay) { this.stats.replaysDropped++; return true }
      this.stats.receiptsReceived++
      await store.durable()
      for (const msg of delivered) emit({ type: 'delivered', id: msg.id, to: msg.peerNick })
      return true
    }
    const m = opened.message
    if (contacts.table.isBlocked(m.senderIdentityKey)) {
      store.transaction(() => { seenSeals.checkAndAdd(opened.ephemeralKey, keepUntil); contacts.table.countDropped(m.senderIdentityKey) })
      this.stats.blockedDropped++
      return true
    }
    const id = hex(m.id)
    const fp = fingerprint(m.senderIdentityKey)
    let verified = opened.signatureValid
    let reason: string | null = verified ? null : 'not signed for you: it was addressed to someone else, or forged'
    let senderRecord: SignedRecord | undefined
    if (verified && m.nameRecord.length > 0) {
      try {
        senderRecord = verifyRecord(nameKey(m.senderNick), m.nameRecord)
        if (!bytesEqual(senderRecord.identityKey, m.senderIdentityKey)) {
          verified = false
          reason = 'the record it carries is of another key'
          senderRecord = undefined
        }
      } catch (err) {
        verified = false
        reason = `the record it carries does not verify (${(err as Error).message})`
      }
    }
    senderRecord ??= this.init.keptRecord(m.senderNick)
    if (verified && senderRecord != null && !bytesEqual(senderRecord.identityKey, m.senderIdentityKey)) {
      verified = false
      reason = `${m.senderNick}'s record on file is of another key`
    }
    const pin = store.getPin(m.senderNick)
    if (pin == null && !this.init.acceptAnyone) return this.onRequest(m, id, fp, verified && senderRecord != null ? senderRecord : undefined, opened.ephemeralKey, keepUntil)
    let pinned: 'new' | 'same' | 'changed' | undefined
    if (verified) {
      pinned = store.pin(m.senderNick, m.senderIdentityKey)
      if (pinned === 'same' && pin?.pending != null && !bytesEqual(pin.identityKey, m.senderIdentityKey)) pinned = 'changed'
      if (pinned === 'changed') {
        const now = store.getPin(m.senderNick)
        emit({ type: 'key-changed', nick: m.senderNick, pinned: now?.fingerprint ?? '', seen: fp })
        verified = false
        reason = `key changed: ${m.senderNick} was pinned to ${now?.fingerprint ?? '?'}`
      }
    }
    // the replay check and the message are written in one transaction: a crash between them must not
    // leave a seal key marked seen whose message was never stored. Its commit does not fsync on the
    // event loop: it is on disk (awaited below) before the item is acknowledged or a receipt goes
    let replay = false
    let fresh = false
    store.deferredTransaction(() => {
      replay = seenSeals.checkAndAdd(opened.ephemeralKey, keepUntil)
      if (replay) return
      fresh = store.addIncoming({ id, peerNick: m.senderNick, peerFingerprint: fp, text: m.text, timestamp: m.timestamp, verified, verifyReason: reason })
      if (verified && senderRecord != null) {
        store.putContactRecord(m.senderNick, senderRecord.bytes, senderRecord.sequence)
        store.oweReceipt(id, m.senderNick)
      }
    })
    if (replay) { this.stats.replaysDropped++; this.log('dropped a replayed item'); return true }
    const trust = pinned === 'changed' ? 'changed' : contacts.trust(m.senderNick) ?? 'unverified'
    if (fresh) emit({ type: 'message', id, from: m.senderNick, fingerprint: fp, verified, trust, request: false, reason, text: m.text, ts: m.timestamp })
    // shown at once; acknowledged (the mailbox deletes it) and receipted only once on disk. A crash before
    // then loses the row, not the message: the mailbox still holds it and pushes it again
    await store.durable()
    if (verified && senderRecord != null) {
      if (pinned === 'new') this.crossCheckLater(m.senderNick, m.senderIdentityKey)
      this.receiptsLater()
    }
    return true
  }

  /** A message from someone who is not a contact: kept as a request, no receipt. */
  private onRequest (m: { senderNick: string, senderIdentityKey: Uint8Array, text: string, timestamp: number }, id: string, fp: string,
    record: SignedRecord | undefined, ephemeralKey: Uint8Array, keepUntil: number): boolean {
    const { store, contacts, seenSeals, emit } = this.init
    const held = contacts.table.request(m.senderNick)
    let replay = false
    let kept = false
    let first = false
    store.transaction(() => {
      replay = seenSeals.checkAndAdd(ephemeralKey, keepUntil)
      if (replay) return
      // unverifiable, or a second key claiming a nick already asking: nothing to attribute it to
      if (record == null || (held != null && !bytesEqual(held.identityKey, m.senderIdentityKey))) return
      if (!contacts.table.noteRequest(m.senderNick, m.senderIdentityKey, record.bytes)) return
      first = held == null
      kept = store.addIncoming({ id, peerNick: m.senderNick, peerFingerprint: fp, text: m.text, timestamp: m.timestamp, verified: true, verifyReason: null, request: true })
    })
    if (replay) { this.stats.replaysDropped++; return true }
    if (!kept) { this.stats.requestsDropped++; this.log('dropped a message from a non-contact that could not be kept as a request'); return true }
    if (first) emit({ type: 'request', nick: m.senderNick, fingerprint: fp, ts: m.timestamp })
    emit({ type: 'message', id, from: m.senderNick, fingerprint: fp, verified: true, trust: 'unverified', request: true, reason: null, text: m.text, ts: m.timestamp })
    return true
  }

  /** A request was accepted: its messages are owed receipts now, its record kept; the directory is cross-checked later. */
  accepted (nick: string, identityKey: Uint8Array, recordBytes: Uint8Array, messageIds: string[]): void {
    const { store } = this.init
    let record: SignedRecord | undefined
    try { record = verifyRecord(nameKey(nick), recordBytes) } catch { record = undefined }
    store.transaction(() => {
      if (record != null) store.putContactRecord(nick, record.bytes, record.sequence)
      for (const id of messageIds) store.oweReceipt(id, nick)
    })
    this.crossCheckLater(nick, identityKey)
    this.receiptsLater()
  }

  /** A contact first met through its own message is checked against the directory later, at a random delay. */
  private crossCheckLater (nick: string, key: Uint8Array): void {
    const t = setTimeout(() => {
      if (!this.init.running()) return
      this.init.directory.lookup(nick).then(record => {
        if (!bytesEqual(record.identityKey, key)) {
          this.init.emit({ type: 'warning', message: `the directory's key for ${nick} is ${fingerprint(record.identityKey)}, not the one its messages carry (${fingerprint(key)}): compare fingerprints out of band` })
        }
      }).catch(err => { this.log('cross-check of a new contact: %s', (err as Error).name) })
    }, randomInt(Math.max(1, this.init.timing.crossCheckMaxDelayMs)))
    t.unref()
    this.timers.push(t)
  }

  /**
   * A receipt: its ids are our messages to one contact; the signature is checked once per contact they
   * went to (with that contact's pin), and each id it covers is marked delivered. Returns the messages
   * it marked (the caller says 'delivered' once that is on disk).
   */
  private onReceipt (receipt: { messageIds: Uint8Array[], signature: Uint8Array }): StoredMessage[] {
    const { store, identity } = this.init
    const delivered: StoredMessage[] = []
    const byNick = new Map<string, StoredMessage[]>()
    for (const messageId of receipt.messageIds) {
      const msg = store.get(messageId)
      if (msg == null || msg.direction !== 'out') continue
      byNick.set(msg.peerNick, [...(byNick.get(msg.peerNick) ?? []), msg])
    }
    for (const [nick, msgs] of byNick) {
      const pin = store.getPin(nick)
      if (pin == null || !verifyReceipt(receipt, pin.identityKey, identity.identityKey)) { this.log('dropped a receipt that does not verify'); continue }
      for (const msg of msgs) if (store.markDelivered(msg.id)) delivered.push(msg)
    }
    return delivered
  }

  /** Deposits the receipts we owe, batched per contact, at one of each contact's mailboxes. */
  async sendReceipts (): Promise<void> {
    const { store, identity } = this.init
    if (this.receiptsRunning || !this.init.running()) return
    this.receiptsRunning = true
    try {
      store.expireReceipts(Date.now() - this.init.timing.messageTtlMs)
      const byNick = new Map<string, string[]>()
      for (const r of store.owedReceipts()) byNick.set(r.peerNick, [...(byNick.get(r.peerNick) ?? []), r.messageId])
      // a receipt says the message is kept: the rows it covers (deferredTransaction in onItem) on disk first
      await store.durable()
      for (const [nick, ids] of byNick) {
        const record = this.init.keptRecord(nick)
        const pin = store.getPin(nick)
        if (record == null || pin == null || !bytesEqual(pin.identityKey, record.identityKey)) continue
        const key = onionKeyFor(record, Date.now())
        if (key == null || record.mailboxes.length === 0) continue
        for (let i = 0; i < ids.length; i += MAX_RECEIPT_IDS) {
          const batch = ids.slice(i, i + MAX_RECEIPT_IDS)
          const receipt = createReceipt(batch.map(h => Buffer.from(h, 'hex')), identity.signer, record.identityKey)
          const sealed = sealReceipt(receipt, { onionKey: key.key, epoch: key.epoch })
          // a STORED after the request timed out (a slow network, not a failing one) still counts: the
          // receipt is in that mailbox, so it is owed no more and not deposited again
          let stored = false
          const done = (): void => {
            if (stored) return
            stored = true
            this.stats.receiptsDeposited++
            // not fsynced of its own (the next durable commit syncs it): a crash may lose it, and the
            // receipt is deposited again; the sender finds its messages delivered already
            store.lazyTransaction(() => { for (const h of batch) store.receiptStored(h) })
          }
          const late = (kind: string): void => {
            // a stopped node's store is closed: the receipt is owed still and goes again at the next start
            if (kind !== 'stored' || stored || !this.init.running()) return
            this.stats.lateReceiptAnswers++
            done()
          }
          for (const box of this.init.depositOrder(record)) {
            if (stored || !this.init.running()) break
            const kind = await this.init.mailboxes.deposit({ relay: box.relay, mailboxId: box.id }, sealed, late).catch(() => 'failed')
            if (kind === 'stored') { done(); break }
          }
        }
      }
    } finally {
      this.receiptsRunning = false
    }
  }
}
