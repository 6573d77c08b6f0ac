/**
 * node/relay-health.ts on a hand-driven clock: which relays a user counts as dead (silent on gossip
 * while others are heard, on failed paths and silent since, a failed dial), and that each comes back
 * as soon as it announces itself again.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { FAILURES_TO_SUSPECT, RelayHealth, SILENT_INTERVALS, SUSPECT_INTERVALS } from '../node/relay-health.ts'
import type { HeardRelay } from '../node/relay-health.ts'

const INTERVAL = 1_000

function setup (): { health: RelayHealth, relays: HeardRelay[], clock: { now: number }, hear: (...ids: string[]) => void, live: () => string[] } {
  const clock = { now: 1_000_000 }
  const health = new RelayHealth({ announceIntervalMs: INTERVAL, now: () => clock.now })
  const relays: HeardRelay[] = ['a', 'b', 'c', 'd'].map(id => ({ record: { peerId: id }, lastSeen: clock.now }))
  const hear = (...ids: string[]): void => { for (const r of relays) if (ids.includes(r.record.peerId)) { r.lastSeen = clock.now; health.heard(r.record.peerId) } }
  // the feed carries every relay from the start, as it does once the client is in its entry relay's mesh
  hear('a', 'b', 'c', 'd')
  const live = (): string[] => health.filter(relays).map(r => r.record.peerId)
  return { health, relays, clock, hear, live }
}

describe('relay health', () => {
  it('a relay silent for three announce intervals while the others are heard is dead, and alive again once heard', () => {
    const { clock, hear, live, health, relays } = setup()
    for (let t = 0; t < SILENT_INTERVALS * 2; t++) {
      clock.now += INTERVAL
      hear('a', 'b', 'c')
    }
    assert.deepEqual(live(), ['a', 'b', 'c'])
    assert.deepEqual(health.dead(relays), [{ peerId: 'd', reason: 'silent' }])
    // found dead, it stays dead while nothing is heard of it, even when our own feed then stalls
    clock.now += 10 * SILENT_INTERVALS * INTERVAL
    assert.deepEqual(live(), ['a', 'b', 'c'])
    clock.now += 1
    hear('a', 'b', 'c', 'd')
    assert.deepEqual(live(), ['a', 'b', 'c', 'd'])
  })

  it('when no relay at all was heard for that long, the fault is our own feed: nobody is dead for silence', () => {
    const { clock, live } = setup()
    clock.now += 10 * SILENT_INTERVALS * INTERVAL
    assert.deepEqual(live(), ['a', 'b', 'c', 'd'])
  })

  it('failed paths count only against relays that stay silent: a live relay on the same paths goes on announcing', () => {
    const { clock, hear, live, health, relays } = setup()
    for (let i = 0; i < FAILURES_TO_SUSPECT; i++) health.unanswered(['b', 'd'])
    // within an interval and a half nobody is dead yet: a live relay may not have announced since
    clock.now += INTERVAL
    assert.deepEqual(live(), ['a', 'b', 'c', 'd'])
    clock.now += SUSPECT_INTERVALS * INTERVAL
    hear('a', 'b', 'c')
    assert.deepEqual(live(), ['a', 'b', 'c'], 'd is dead sooner than by silence alone')
    assert.deepEqual(health.dead(relays), [{ peerId: 'd', reason: 'no-answer' }])
    assert.ok(SUSPECT_INTERVALS < SILENT_INTERVALS)
  })

  it('an answer through a relay clears the failures counted against it', () => {
    const { clock, hear, live, health } = setup()
    for (let i = 0; i < FAILURES_TO_SUSPECT; i++) health.unanswered(['d'])
    health.answered(['c', 'd'])
    clock.now += 2 * INTERVAL
    hear('a', 'b', 'c')
    assert.deepEqual(live(), ['a', 'b', 'c', 'd'])
  })

  it('fewer failed paths than the threshold are not evidence', () => {
    const { clock, hear, live, health } = setup()
    for (let i = 0; i < FAILURES_TO_SUSPECT - 1; i++) health.unanswered(['d'])
    clock.now += 2 * INTERVAL
    hear('a', 'b', 'c')
    assert.deepEqual(live(), ['a', 'b', 'c', 'd'])
  })

  it('failed paths while our own feed stalls (nobody heard since) are not evidence against anyone', () => {
    const { clock, live, health } = setup()
    for (let i = 0; i < 10 * FAILURES_TO_SUSPECT; i++) health.unanswered(['a', 'b', 'c', 'd'])
    clock.now += 10 * SILENT_INTERVALS * INTERVAL
    assert.deepEqual(live(), ['a', 'b', 'c', 'd'])
  })

  it('while the feed carries only one relay (a new client hears its entry relay\'s own announcements first), nobody is found dead for silence', () => {
    const clock = { now: 1_000_000 }
    const health = new RelayHealth({ announceIntervalMs: INTERVAL, now: () => clock.now })
    const relays: HeardRelay[] = ['entry', 'b', 'c'].map(id => ({ record: { peerId: id }, lastSeen: clock.now }))
    const live = (): string[] => health.filter(relays).map(r => r.record.peerId)
    for (let t = 0; t < 10 * SILENT_INTERVALS; t++) {
      clock.now += INTERVAL
      relays[0].lastSeen = clock.now
      health.heard('entry')
    }
    assert.deepEqual(live(), ['entry', 'b', 'c'])
    // the mesh forms: b is heard; c gets three intervals from then before its silence counts
    relays[1].lastSeen = clock.now
    health.heard('b')
    clock.now += SILENT_INTERVALS * INTERVAL
    for (const r of relays.slice(0, 2)) { r.lastSeen = clock.now; health.heard(r.record.peerId) }
    assert.deepEqual(live(), ['entry', 'b', 'c'])
    clock.now += INTERVAL
    for (const r of relays.slice(0, 2)) { r.lastSeen = clock.now; health.heard(r.record.peerId) }
    assert.deepEqual(live(), ['entry', 'b'])
    // a new entry link: the feed starts again, and silence waits for it again
    health.feedRestarted()
    clock.now += 10 * SILENT_INTERVALS * INTERVAL
    relays[0].lastSeen = clock.now
    health.heard('entry')
    assert.deepEqual(live(), ['entry', 'b'], 'c stays dead until heard; b is not judged while the feed carries one relay')
  })

  it('a relay whose dial failed is dead until it is heard after the failure', () => {
    const { clock, hear, live, health, relays } = setup()
    clock.now += 10
    health.dialFailed('a')
    assert.deepEqual(live(), ['b', 'c', 'd'])
    assert.deepEqual(health.dead(relays), [{ peerId: 'a', reason: 'dial-failed' }])
    clock.now += 10
    hear('a')
    assert.deepEqual(live(), ['a', 'b', 'c', 'd'])
    assert.deepEqual(health.dead(relays), [])
  })
})
