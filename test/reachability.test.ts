/**
 * Reachability before volunteering (protocols/reachability/dialback.ts): the dial-back wire format,
 * and real `p2pchat start --relay` processes on loopback: a relay whose address a helper can dial
 * becomes a relay and announces only confirmed addresses; one that announces an address nobody can
 * dial (nothing listens there) is refused with a message saying what to forward, and exits 1.
 * The NAT case (a relay in a private LAN whose helpers see another address) runs in the network lab
 * (lab/run.ts, scenario relay-behind-nat), which needs root.
 */
import { after, before, describe, it, test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { decodeRequest, decodeResponse, encodeRequest, encodeResponse, groupOf } from '../protocols/reachability/dialback.ts'
import { multiaddr } from '@multiformats/multiaddr'
import { CliNetwork } from './helpers/cli-network.ts'

test('dial-back messages round-trip, and malformed ones are named errors', () => {
  const a = multiaddr('/ip4/172.17.0.2/tcp/4001').bytes
  const b = multiaddr('/ip4/172.17.0.2/tcp/4002/ws').bytes
  assert.deepEqual(decodeRequest(encodeRequest([a, b])), [a, b])
  const observed = multiaddr('/ip4/172.21.0.2/tcp/51234').bytes
  assert.deepEqual(decodeResponse(encodeResponse([0, 2], observed), 2), { statuses: ['reachable', 'not-your-address'], observed })
  const req = encodeRequest([a])
  for (const [bytes, reason] of [
    [req.subarray(0, 1), 'truncated'],
    [Uint8Array.of(2, ...req.subarray(1)), 'version'],
    [Uint8Array.of(1, 0), 'count'],
    [Uint8Array.of(1, 9), 'count'],
    [req.subarray(0, req.length - 1), 'truncated'],
    [Uint8Array.of(...req, 0), 'trailing-bytes'],
    [Uint8Array.of(1, 1, 0x01, 0x01), 'address-length']
  ] as Array<[Uint8Array, string]>) {
    assert.throws(() => decodeRequest(bytes), (err: Error & { reason?: string }) => err.name === 'DialbackFormatError' && err.reason === reason, reason)
  }
  assert.throws(() => decodeResponse(encodeResponse([7], observed), 1), { name: 'DialbackFormatError' })
  assert.throws(() => decodeResponse(encodeResponse([0], observed), 2), { name: 'DialbackFormatError' })
  assert.throws(() => encodeRequest([]), { name: 'DialbackFormatError' })
  assert.equal(groupOf(multiaddr('/ip4/172.17.3.4/tcp/1')), '172.17')
  assert.equal(groupOf(multiaddr('/ip6/2001:db8::1/tcp/1')), '2001:db8')
})

/** A TCP port on 127.0.0.1 that nothing listens on (bound, then released). */
async function closedPort (): Promise<number> {
  const s = createServer()
  await new Promise<void>(resolve => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as { port: number }).port
  await new Promise<void>(resolve => s.close(() => { resolve() }))
  return port
}

describe('a relay process checks it is reachable before it announces itself', { timeout: 300_000 }, () => {
  const net = new CliNetwork()
  before(async () => { await net.bootstrap() })
  after(async () => { await net.teardown() })

  it('a relay the bootstrap node can dial back becomes a relay and announces only confirmed addresses', async () => {
    const dead = await closedPort()
    const p = net.spawn(['start', '--relay', '--json', '--listen', '/ip4/127.0.0.1/tcp/0', '--bootstrap', net.bootstrapAddr, '--data-dir', net.dataDir('good')])
    const ready = await p.waitForJson(o => o.event === 'ready' || o.event === 'error', 90_000)
    assert.equal(ready.event, 'ready', JSON.stringify(ready))
    const checked = await p.waitForJson(o => o.event === 'status' && o.stage === 'checking' && /^reachable/.test(String(o.detail)))
    assert.match(String(checked.detail), /confirmed by peers in 1 network/)
    assert.deepEqual(ready.announced, ready.addrs)
    await p.stop()

    // the same relay again, announcing its real address and one where nothing listens: only the first goes in the descriptor
    const port = Number(/\/tcp\/(\d+)/.exec((ready.addrs as string[])[0])?.[1])
    const q = net.spawn(['start', '--relay', '--json', '--listen', `/ip4/127.0.0.1/tcp/${port}`, '--announce', `/ip4/127.0.0.1/tcp/${port}`,
      '--announce', `/ip4/127.0.0.1/tcp/${dead}`, '--bootstrap', net.bootstrapAddr, '--data-dir', net.dataDir('good')])
    const again = await q.waitForJson(o => o.event === 'ready' || o.event === 'error', 90_000)
    assert.equal(again.event, 'ready', JSON.stringify(again))
    const announced = (again.announced as string[]).map(a => a.replace(/\/p2p\/.*$/, ''))
    assert.deepEqual(announced, [`/ip4/127.0.0.1/tcp/${port}`])
    assert.equal((again.addrs as string[]).length, 2, 'libp2p announces both; the descriptor carries the confirmed one')
    await q.stop()
  })

  it('a relay whose address nobody can dial refuses to announce itself, says what to forward, and exits 1', async () => {
    const dead = await closedPort()
    const p = net.spawn(['start', '--relay', '--json', '--listen', '/ip4/127.0.0.1/tcp/0', '--announce', `/ip4/127.0.0.1/tcp/${dead}`,
      '--bootstrap', net.bootstrapAddr, '--data-dir', net.dataDir('bad')])
    const err = await p.waitForJson(o => o.event === 'error' || o.event === 'ready', 90_000)
    assert.equal(err.event, 'error', JSON.stringify(err))
    assert.equal(err.code, 'UNREACHABLE')
    assert.match(String(err.message), /not reachable from outside, so it will not announce itself/)
    assert.match(String(err.message), new RegExp(`/ip4/127\\.0\\.0\\.1/tcp/${dead}: dial failed`))
    assert.match(String(err.message), new RegExp(`forward TCP port ${dead} on the router to this machine and pass --announce /ip4/127\\.0\\.0\\.1/tcp/${dead}`))
    assert.equal(await p.exited, 1)
    assert.match(p.stderr, /p2pchat: this relay is not reachable from outside/)
    assert.ok(!p.lines.some(l => l.includes('"ready"')))
  })
})
