/**
 * The mailbox service (service 0x01 of PROTOCOL-V2.md): public types and entry points. SPEC.md has the
 * bytes, the limits and what the relay learns.
 * - relay side: `MailboxStore.open(MailboxStore.pathIn(dataDir))`, then `new MailboxService({ store,
 *   sendThroughReplyBlock, onRecord })`, `start()`, `handle(request, replyBlock)` per service-0x01 body, `stop()`.
 * - owner and sender side: `client.ts` (pure).
 */
export * from './constants.ts'
export * from './errors.ts'
export { decodeAnswer, decodeRequest, encodeAnswer, encodeRequest, mailboxIdOf, signatureInput, verifySigned } from './codec.ts'
export type {
  AckRequest, SyncRequest, AnswerKind, DecodeReason, DecodedAnswer, DecodedRequest, DepositRequest, MailboxAnswer, MailboxLimits,
  MailboxRequest, RefusedReason, RegisterRequest, RequestOp, SignedRequest, StockRequest
} from './codec.ts'
export { MailboxStore, MAILBOX_STORE_FILE_NAME, MAILBOX_SCHEMA_VERSION } from './store.ts'
export type { DepositResult, ItemRow, MailboxRow, RegisterResult, StoreLimits, Totals } from './store.ts'
export { DEFAULT_LIMITS, MailboxService } from './service.ts'
export type { MailboxServiceInit, MailboxServiceLimits, MailboxStats } from './service.ts'
export {
  buildAck, buildDeposit, buildRegister, buildStock, buildSync, decodeMailboxPayload, generateMailboxKeyPair, mailboxKeyPairFromSeed,
  mailboxServiceBody
} from './client.ts'
export type { MailboxKeyPair } from './client.ts'
