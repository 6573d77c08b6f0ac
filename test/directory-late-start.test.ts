/**
 * A user's start whose name publication is answered only after the user gave up on it (a start under
 * heavy load failed "could not publish ... no answer in time", PUBLISH_FAILED: chat-node, mailbox-process,
 * the anonymity bench, the lab at 18 processes). On the in-process network: every exit holds each
 * PUBLISH_NAME request; the first is run (put and read-back in the DHT) and answered only once the user
 * has asked a second exit (so the first had timed out), the later ones never. The start ends ready from
 * the late STORED (node/directory-client.ts); before, the late answer was dropped, the other tries
 * were held too, and the start failed with PUBLISH_FAILED.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { OP_PUBLISH_NAME } from '../protocols/directory/exit.ts'
import { ChatNetwork } from './helpers/chat-network.ts'
import { waitFor, within } from './helpers/wait.ts'

describe('a start whose publication is answered late', { timeout: 300_000 }, () => {
  const net = new ChatNetwork()
  /** held publications: each runs when called; `answered` counts those run */
  const held: Array<() => void> = []
  let answered = 0
  let releaseAll = false

  before(async () => {
    await net.bootstrap()
    await net.startRelays(4)
    for (const r of net.relays) {
      const exit = r.relay.exit
      const handle = exit.handle.bind(exit)
      exit.handle = async (request, signal) => {
        if (request[0] !== OP_PUBLISH_NAME || releaseAll) return await handle(request, signal)
        return await new Promise<Uint8Array>((resolve, reject) => {
          held.push(() => { answered++; handle(request, signal).then(resolve, reject) })
        })
      }
    }
  })
  after(async () => {
    // the publications still held are run (their answers go nowhere) so that no relay waits on them
    releaseAll = true
    for (const go of held.splice(0)) go()
    await net.teardown()
  })

  it('the start ends ready from the first exit\'s late STORED (before: PUBLISH_FAILED after 4 held tries)', async () => {
    // a longer request timeout than the helpers' 5 s, as in mailbox-late-answer: registering at start under load
    const timing = { requestTimeoutMs: 20_000 }
    const starting = net.user('carol', { timing })
    starting.catch(() => {})
    // the second publication leaves only once the first timed out
    await waitFor(() => held.length >= 2, () => `carol asking a second exit (${held.length} publications held)`, 150_000)
    const first = held.shift() as () => void
    first()
    const carol = await within(starting, 120_000, 'carol\'s start')
    assert.equal(carol.chat.stage, 'ready')
    assert.equal(answered, 1, 'only the first publication was run')
    assert.ok(carol.chat.directory.stats.lateAnswers >= 1, 'ready from a late answer')
    assert.ok(carol.events.some(e => e.type === 'status' && e.stage === 'publishing'), 'it went through publishing')
  })
})
