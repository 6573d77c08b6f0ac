/**
 * Load: 10 senders with 500 messages each, concurrently, through 5 relays to one recipient: every
 * message is delivered exactly once (the recipient's store holds each id once, each sender holds a
 * receipt for each message), and the heap returns to its starting level afterwards.
 * P2PCHAT_LOAD_MESSAGES changes the per-sender count (default 500).
 */
import assert from 'node:assert/strict'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { after, before, describe, it } from 'node:test'
import { ChatNetwork, eventsOf } from './helpers/chat-network.ts'
import type { TestUser } from './helpers/chat-network.ts'
import { waitFor } from './helpers/wait.ts'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

const SENDERS = 10
const PER_SENDER = Number(process.env.P2PCHAT_LOAD_MESSAGES ?? 500)

function heapMB (): number {
  for (let i = 0; i < 3; i++) gc()
  return process.memoryUsage().heapUsed / 2 ** 20
}

describe(`load: ${SENDERS} senders x ${PER_SENDER} messages through 5 relays`, { timeout: 900_000 }, () => {
  const net = new ChatNetwork()
  const senders: TestUser[] = []
  let sink: TestUser

  before(async () => {
    await net.bootstrap()
    const timing = { receiptTimeoutMs: 60_000, retryIntervalMs: 10_000 }
    for (let i = 0; i < 5; i++) await net.user(`relay${i}`, { relay: true, timing })
    sink = await net.user('sink', { timing })
    for (let i = 0; i < SENDERS; i++) senders.push(await net.user(`sender${i}`, { timing }))
    await net.waitForRelays(5)
  })
  after(async () => { await net.teardown() })

  it('delivers every message exactly once and the heap comes back down', async () => {
    // warm up every path once so that connections and caches exist before the baseline
    for (const s of senders) s.chat.send('sink', 'warm-up')
    // long enough for one resend (receiptTimeoutMs is 60 s here): under a loaded test run a
    // connection can be cut with a warm-up packet in flight, which the resend then covers
    await waitFor(() => senders.every(s => eventsOf(s, 'delivered').length === 1), () => `the warm-up receipts (${senders.filter(s => eventsOf(s, 'delivered').length === 1).length} of ${SENDERS})`, 150_000)
    const heapBefore = heapMB()
    const started = Date.now()

    const ids = new Map<string, string>()
    await Promise.all(senders.map(async (s, n) => {
      for (let i = 0; i < PER_SENDER; i++) {
        const { id } = s.chat.send('sink', `load ${n}/${i}`)
        ids.set(id, `load ${n}/${i}`)
        if (i % 50 === 49) await new Promise(resolve => setImmediate(resolve))
      }
    }))
    const total = SENDERS * PER_SENDER
    assert.equal(ids.size, total)
    const delivered = (): number => senders.reduce((n, s) => n + eventsOf(s, 'delivered').length, 0) - SENDERS
    const received = (): number => eventsOf(sink, 'message').length - SENDERS
    await waitFor(() => delivered() >= total && received() >= total,
      () => `all deliveries (received ${received()}, receipted ${delivered()} of ${total})`, Number(process.env.P2PCHAT_LOAD_TIMEOUT_MS ?? 600_000), 250)
    const seconds = (Date.now() - started) / 1000

    const texts = eventsOf(sink, 'message').map(m => m.text).filter(t => t.startsWith('load '))
    assert.equal(texts.length, total, 'each message shown once')
    assert.equal(new Set(texts).size, total, 'no duplicates')
    for (const s of senders) {
      const receipts = eventsOf(s, 'delivered').map(e => e.id)
      assert.equal(new Set(receipts).size, receipts.length, 'one delivered event per message')
      assert.equal(s.chat.store.outbox().length, 0, 'nothing left in any outbox')
      assert.equal(eventsOf(s, 'failed').length, 0)
    }
    let stored = 0
    for (const s of senders) stored += sink.chat.history(s.chat.nick, PER_SENDER + 10).length
    assert.equal(stored, total + SENDERS, 'the recipient stored each message once')
    const resends = senders.reduce((n, s) => n + eventsOf(s, 'sent').filter(e => e.attempt > 1).length, 0)

    // drop the test's own references to the traffic before measuring
    for (const u of net.users) u.events.length = 0
    ids.clear()
    const heapAfter = heapMB()
    const relayDrops = net.users.filter(u => u.chat.isRelay).map(u => u.chat.router.service.stats.dropped)
    console.log(`load: ${total} messages in ${seconds.toFixed(1)} s (${(total / seconds).toFixed(0)} msg/s end to end), ${resends} resends; ` +
      `heap ${heapBefore.toFixed(1)} MB before, ${heapAfter.toFixed(1)} MB after; relay drops ${JSON.stringify(relayDrops)}`)
    assert.ok(heapAfter < heapBefore * 1.25 + 16, `heap back near its starting level: ${heapBefore.toFixed(1)} -> ${heapAfter.toFixed(1)} MB`)
  })
})
