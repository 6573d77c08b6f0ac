/**
 * The network group of a relay (Tor's path-spec: "no two relays in the same /16"): an IPv4 /16 or an
 * IPv6 /32 of the addresses in its signed descriptor, written `ip4:a.b` or `ip6:x:y` (hex groups
 * without leading zeros). Only the addresses a relay is dialled at count, never the source address of a
 * connection from it (on loopback every inbound connection comes from 127.0.0.1).
 */
import { randomInt } from 'node:crypto'

/** The group of a relay with no IP address in its descriptor (DNS names only): all such share it. */
export const UNKNOWN_SUBNET = 'net:?'

/**
 * The network group of one multiaddr: `ip4:a.b` (its /16) or `ip6:` and the first two 16-bit groups
 * (its /32); undefined for any other address (dns, a relay circuit's own part is not its address).
 */
export function subnetOfAddr (addr: string): string | undefined {
  const v4 = /^\/ip4\/(\d{1,3})\.(\d{1,3})\.\d{1,3}\.\d{1,3}(?:\/|$)/.exec(addr)
  if (v4 != null) return `ip4:${Number(v4[1])}.${Number(v4[2])}`
  const v6 = /^\/ip6\/([0-9a-fA-F:.]+)(?:\/|$)/.exec(addr)
  if (v6 != null) {
    const groups = expandIp6(v6[1])
    if (groups != null) return `ip6:${groups[0]}:${groups[1]}`
  }
  return undefined
}

/** The groups of a descriptor's addresses, in order, distinct; [`net:?`] when none is an IP address. */
export function subnetsOfAddrs (addrs: string[]): string[] {
  const out: string[] = []
  for (const a of addrs) {
    const s = subnetOfAddr(a)
    if (s != null && !out.includes(s)) out.push(s)
  }
  return out.length > 0 ? out : [UNKNOWN_SUBNET]
}

function expandIp6 (text: string): string[] | undefined {
  if (text.includes('.')) return undefined // an IPv4-mapped tail: not an address a relay publishes
  const halves = text.split('::')
  if (halves.length > 2) return undefined
  const head = halves[0] === '' ? [] : halves[0].split(':')
  const tail = halves.length === 2 && halves[1] !== '' ? halves[1].split(':') : []
  const missing = 8 - head.length - tail.length
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined
  const all = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...tail]
  if (all.some(g => !/^[0-9a-fA-F]{1,4}$/.test(g))) return undefined
  return all.map(g => parseInt(g, 16).toString(16))
}

/**
 * Up to `max` of `items`, spread over groups: groups and members in random order, one member of each
 * group per round, at most `perGroup` of any group. A hundred items of one /16 get `perGroup` places,
 * not all of them.
 */
export function spreadByGroup<T> (items: T[], groupOf: (item: T) => string, max: number, perGroup: number): T[] {
  const groups = new Map<string, T[]>()
  for (const item of shuffle([...items])) {
    const g = groupOf(item)
    const list = groups.get(g)
    if (list == null) groups.set(g, [item]); else if (list.length < perGroup) list.push(item)
  }
  const order = shuffle([...groups.values()])
  const out: T[] = []
  for (let round = 0; round < perGroup && out.length < max; round++) {
    for (const list of order) if (round < list.length && out.length < max) out.push(list[round])
  }
  return out
}

function shuffle<T> (items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = randomInt(i + 1)
    ;[items[i], items[j]] = [items[j], items[i]]
  }
  return items
}
