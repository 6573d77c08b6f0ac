/**
 * A user's start publishes its name record beside the REGISTERs of its mailboxes, not after their
 * answers (issue 13, first message < 2 s): the record names the mailboxes chosen for this start, and
 * every REGISTER carries that same record, so it can leave as soon as they are chosen. Ready still
 * waits for both. On the in-process network every relay holds each REGISTER until a PUBLISH_NAME has
 * reached an exit (or HOLD_MS passed, so that a start that publishes only afterwards still ends), and
 * the test counts a publication that arrives while no REGISTER has been answered: before, the
 * publication left only once the REGISTERs were answered.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { OP_PUBLISH_NAME } from '../protocols/directory/exit.ts'
import { OP_REGISTER } from '../protocols/mailbox/constants.ts'
import { ChatNetwork } from './helpers/chat-network.ts'
import { within } from './helpers/wait.ts'

/** How long a REGISTER is held at most when no publication comes (below the hedge of a 20 s request timeout). */
const HOLD_MS = 4_000

describe('a start publishes its name while its mailboxes register', { timeout: 300_000 }, () => {
  const net = new ChatNetwork()
  const held: Array<() => void> = []
  let publishedWhileHeld = 0
  let publications = 0
  let holding = true
  let fallback: ReturnType<typeof setTimeout> | undefined
  const releaseAll = (): void => {
    holding = false
    clearTimeout(fallback)
    for (const go of held.splice(0)) go()
  }

  before(async () => {
    await net.bootstrap()
    await net.startRelays(4)
    for (const r of net.relays) {
      const exit = r.relay.exit
      const handle = exit.handle.bind(exit)
      exit.handle = async (request, signal) => {
        // before any REGISTER was answered (they may not even have reached their relays yet)
        if (request[0] === OP_PUBLISH_NAME) publications++
        if (request[0] === OP_PUBLISH_NAME && holding) {
          publishedWhileHeld++
          releaseAll()
        }
        return await handle(request, signal)
      }
      const mailboxes = r.relay.mailboxes
      const handleMailbox = mailboxes.handle.bind(mailboxes)
      mailboxes.handle = (request, replyBlock) => {
        if (request[0] !== OP_REGISTER || !holding) { handleMailbox(request, replyBlock); return }
        held.push(() => { handleMailbox(request, replyBlock) })
        fallback ??= setTimeout(releaseAll, HOLD_MS)
      }
    }
  })
  after(async () => {
    releaseAll()
    await net.teardown()
  })

  it('the record leaves before the REGISTERs are answered, and names the mailboxes the start ends with', async () => {
    // a request timeout well above HOLD_MS: no REGISTER is sent again while it is held
    const carol = await within(net.user('carol', { timing: { requestTimeoutMs: 20_000 } }), 120_000, 'carol\'s start')
    assert.equal(carol.chat.stage, 'ready')
    assert.equal(publishedWhileHeld, 1, 'a publication reached an exit while the REGISTERs were unanswered')
    // the record published is the one the REGISTERs carried: not signed and published again for the
    // order in which the mailboxes were registered
    assert.equal(publications, 1, 'one publication')
    const stages = carol.events.flatMap(e => e.type === 'status' ? [e.stage] : [])
    assert.deepEqual(stages, ['connecting', 'entry', 'mailboxes', 'publishing', 'ready'])
    const held = carol.chat.mailboxes.addresses().map(a => Buffer.from(a.mailboxId).toString('hex')).sort()
    assert.equal(held.length, 2)
    const bob = await within(net.user('bob'), 120_000, 'bob\'s start')
    const record = await within(bob.chat.directory.lookup('carol'), 60_000, 'bob\'s lookup of carol')
    assert.deepEqual(record.mailboxes.map(m => Buffer.from(m.id).toString('hex')).sort(), held, 'the published record names the mailboxes held')
  })
})
