/**
 * node/relay-view.ts on a hand-driven clock: a view of the relay list is computed once per list of
 * descriptors, again at once when one changes (another record object, one more or one less), and again
 * once it is `maxAgeMs` old; every caller gets its own copy.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { RelayView } from '../node/relay-view.ts'
import type { KnownRelay } from '../protocols/onion/relay-directory.ts'

const relay = (peerId: string, lastSeen = 0): KnownRelay => ({ record: { peerId } as KnownRelay['record'], lastSeen })

function setup (): { view: RelayView<string> } {
  const view = new RelayView(1_000, (relays, now) => relays.map(r => `${r.record.peerId}@${now}`))
  return { view }
}

describe('relay view', () => {
  it('the same descriptors within maxAgeMs: computed once, also when only lastSeen moved', () => {
    const { view } = setup()
    const list = [relay('a'), relay('b')]
    assert.deepEqual(view.get(list, 10_000), ['a@10000', 'b@10000'])
    list[0].lastSeen = 9_999
    // a fresh array of the same relays, as RelayDirectory.list() returns one per call
    assert.deepEqual(view.get([...list], 10_999), ['a@10000', 'b@10000'])
    assert.equal(view.computed, 1)
  })

  it('computed again when a descriptor is replaced, added or gone, and when the clock passes maxAgeMs or goes back', () => {
    const { view } = setup()
    const a = relay('a')
    const b = relay('b')
    view.get([a, b], 10_000)
    // b heard with a new descriptor (another record object, same peer id)
    const b2 = relay('b')
    assert.deepEqual(view.get([a, b2], 10_001), ['a@10001', 'b@10001'])
    assert.deepEqual(view.get([a, b2, relay('c')], 10_002), ['a@10002', 'b@10002', 'c@10002'])
    const c = relay('c')
    view.get([a, c], 10_003)
    assert.deepEqual(view.get([a], 10_004), ['a@10004'])
    assert.equal(view.computed, 5)
    assert.deepEqual(view.get([a], 11_003), ['a@10004'])
    assert.deepEqual(view.get([a], 11_004), ['a@11004'])
    assert.deepEqual(view.get([a], 9_000), ['a@9000'])
    assert.equal(view.computed, 7)
  })

  it('each caller gets a copy: reordering one does not reorder the next', () => {
    const { view } = setup()
    const list = [relay('a'), relay('b'), relay('c')]
    view.get(list, 0).reverse()
    assert.deepEqual(view.get(list, 1), ['a@0', 'b@0', 'c@0'])
  })
})
