/**
 * `p2pchat relay status [--metrics <host:port>] [--json]`: a running relay's health at a glance, read
 * from the Prometheus endpoint it serves with `--metrics` (node/metrics.ts; default 127.0.0.1:9464,
 * the same default as there). It needs no key and no data directory, and it only reads: one HTTP GET
 * of /metrics, answered within STATUS_TIMEOUT_MS and at most MAX_METRICS_BYTES long, so it can point at
 * nothing but what the operator names (127.0.0.1 unless told otherwise).
 *
 * Shown: uptime, the dial-back reachability verdict the relay started with, connections and users on
 * entry links, relays known, onion packets in/out, drops by reason, packets held for mixing, the Sphinx
 * worker threads (--sphinx-threads) and packets waiting for them, mailbox
 * items/bytes, replay-filter fill, memory and CPU. A bootstrap node's endpoint (no relay figures) and
 * an endpoint that does not answer are UserErrors (exit 1) saying what to run.
 */
import { UserError } from '../../node/errors.ts'
import { DEFAULT_METRICS_PORT, parseMetricsAddress } from '../../node/metrics.ts'
import type { CliOptions } from '../args.ts'
import { emit } from '../output.ts'
import type { CliIO } from '../output.ts'

/** A scrape is a few KiB; a reply this long is not a p2pchat relay's. */
export const MAX_METRICS_BYTES = 4 * 2 ** 20
/** The relay answers from memory at once; a loaded machine may take a few seconds. */
export const STATUS_TIMEOUT_MS = 10_000

/** One sample of the Prometheus text format: a name, its labels, its value. */
export interface Sample { name: string, labels: Record<string, string>, value: number }

/** Reads the Prometheus text format (0.0.4): comments skipped, label values unescaped; a line it cannot read is skipped. */
export function parsePrometheus (text: string): Sample[] {
  const out: Sample[] = []
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/.exec(line)
    if (m == null) continue
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]] = l[2].replace(/\\n/g, '\n').replace(/\\(["\\])/g, '$1')
    }
    const value = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3])
    out.push({ name: m[1], labels, value })
  }
  return out
}

export interface RelayStatus {
  url: string
  /** seconds since the relay's process started */
  uptimeS: number | null
  reachability: { verifiedAddresses: number | null, helperNetworks: number | null, requiredNetworks: number | null, confirmedNetworks: number | null, verdict: string }
  connections: { inbound: number, outbound: number }
  usersOnEntryLinks: number
  relaysKnown: number
  packetsIn: { fromRelays: number, fromUsers: number }
  packetsOut: Record<string, number>
  drops: Record<string, number>
  heldForMixing: number
  outboundQueue: number
  /** Sphinx worker threads (0: packets are unwrapped on the main thread) and packets waiting for them; null from a relay without the figures */
  sphinx: { threads: number, queued: number } | null
  mailbox: { mailboxes: number, items: number, bytes: number, replyBlocks: number }
  replayFilter: { entries: number, capacity: number }
  residentBytes: number | null
  cpuSeconds: number | null
}

/** The status out of one scrape; throws NotARelayError when the endpoint has no relay figures. */
export function relayStatus (url: string, samples: Sample[], nowS = Date.now() / 1000): RelayStatus {
  const all = (name: string): Sample[] => samples.filter(s => s.name === name)
  const sum = (name: string, where: (l: Record<string, string>) => boolean = () => true): number => all(name).filter(s => where(s.labels)).reduce((n, s) => n + s.value, 0)
  const one = (name: string): number | null => all(name)[0]?.value ?? null
  const byLabel = (name: string, label: string, into: Record<string, number> = {}): Record<string, number> => {
    for (const s of all(name)) into[s.labels[label] ?? ''] = (into[s.labels[label] ?? ''] ?? 0) + s.value
    return into
  }
  if (all('p2pchat_onion_packets_in_total').length === 0 && all('p2pchat_relays_known').length === 0) {
    throw new NotARelayError(`${url} serves no relay figures${all('p2pchat_dht_requests_served_total').length > 0 || all('p2pchat_connections').length > 0 ? ' (a bootstrap node?)' : ''}: point --metrics at the address a relay was started with (p2pchat start --relay --metrics <host:port>)`)
  }
  const start = one('process_start_time_seconds')
  const verified = one('p2pchat_reachability_verified_addresses')
  const helpers = sum('p2pchat_reachability_networks', l => l.kind === 'helpers')
  const required = sum('p2pchat_reachability_networks', l => l.kind === 'required')
  const hasNetworks = all('p2pchat_reachability_networks').length > 0
  // relays before the `confirmed` figure gave only the number required
  const confirmed = all('p2pchat_reachability_networks').some(s => s.labels.kind === 'confirmed') ? sum('p2pchat_reachability_networks', l => l.kind === 'confirmed') : undefined
  const verdict = verified == null
    ? 'unknown (this relay is older than the reachability figures)'
    : verified < 0
      ? 'not checked'
      : verified === 0
        ? 'no address confirmed'
        : `reachable: ${verified} address${verified === 1 ? '' : 'es'} confirmed by dial-back from ${hasNetworks ? (confirmed == null ? `peers in ${required} of ${helpers} network${helpers === 1 ? '' : 's'} asked` : `peers in ${confirmed} of ${helpers} network${helpers === 1 ? '' : 's'} asked (${required} required)`) : 'peers'} (at start)`
  const drops: Record<string, number> = {}
  for (const [name, prefix] of [['p2pchat_onion_drops_total', 'onion'], ['p2pchat_client_drops_total', 'client'], ['p2pchat_mailbox_drops_total', 'mailbox'], ['p2pchat_service_drops_total', 'service']] as const) {
    for (const [reason, v] of Object.entries(byLabel(name, 'reason'))) if (v > 0) drops[`${prefix}:${reason}`] = v
  }
  return {
    url,
    uptimeS: start == null ? null : Math.max(0, nowS - start),
    reachability: { verifiedAddresses: verified, helperNetworks: hasNetworks ? helpers : null, requiredNetworks: hasNetworks ? required : null, confirmedNetworks: confirmed ?? null, verdict },
    connections: { inbound: sum('p2pchat_connections', l => l.direction === 'inbound'), outbound: sum('p2pchat_connections', l => l.direction === 'outbound') },
    usersOnEntryLinks: sum('p2pchat_clients_connected'),
    relaysKnown: sum('p2pchat_relays_known'),
    packetsIn: { fromRelays: sum('p2pchat_onion_packets_in_total'), fromUsers: sum('p2pchat_client_packets_in_total') },
    packetsOut: byLabel('p2pchat_onion_packets_out_total', 'to'),
    drops,
    heldForMixing: sum('p2pchat_mix_held_packets'),
    outboundQueue: sum('p2pchat_onion_queue_packets'),
    sphinx: all('p2pchat_sphinx_threads').length === 0 ? null : { threads: sum('p2pchat_sphinx_threads'), queued: sum('p2pchat_sphinx_pool_packets') },
    mailbox: { mailboxes: sum('p2pchat_mailboxes'), items: sum('p2pchat_mailbox_items'), bytes: sum('p2pchat_mailbox_bytes'), replyBlocks: sum('p2pchat_mailbox_reply_blocks') },
    replayFilter: { entries: sum('p2pchat_replay_filter_entries', l => l.key === 'current'), capacity: sum('p2pchat_replay_filter_capacity') },
    residentBytes: one('process_resident_memory_bytes'),
    cpuSeconds: one('process_cpu_seconds_total')
  }
}

/** The endpoint answered, but with no relay figures. */
export class NotARelayError extends UserError {
  constructor (message: string) {
    super(message, 'NOT_A_RELAY')
    this.name = 'NotARelayError'
  }
}

/** Nothing answered at the metrics address, or it answered with an error. */
export class RelayStatusUnavailableError extends UserError {
  constructor (message: string) {
    super(message, 'NO_RELAY')
    this.name = 'RelayStatusUnavailableError'
  }
}

async function fetchMetrics (url: string): Promise<string> {
  let res: Response
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(STATUS_TIMEOUT_MS), redirect: 'error' })
  } catch (err) {
    const c = (err as { cause?: { code?: string, message?: string } }).cause
    const cause = c?.code ?? c?.message ?? (err as Error).message
    throw new RelayStatusUnavailableError(`nothing answers at ${url} (${cause}): is the relay running with --metrics ${new URL(url).host}? (p2pchat start --relay --metrics <host:port>; the default is 127.0.0.1:${DEFAULT_METRICS_PORT})`)
  }
  if (res.status !== 200) {
    await res.body?.cancel()
    throw new RelayStatusUnavailableError(`${url} answered HTTP ${res.status}, not p2pchat metrics`)
  }
  const reader = res.body?.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  for (;;) {
    const r = await reader?.read()
    if (r == null || r.done) break
    size += r.value.byteLength
    if (size > MAX_METRICS_BYTES) {
      await reader?.cancel()
      throw new RelayStatusUnavailableError(`${url} answered more than ${MAX_METRICS_BYTES} bytes: not p2pchat metrics`)
    }
    chunks.push(r.value)
  }
  return Buffer.concat(chunks).toString('utf8')
}

function duration (s: number): string {
  const d = Math.floor(s / 86400); const h = Math.floor(s % 86400 / 3600); const m = Math.floor(s % 3600 / 60)
  if (d > 0) return `${d} d ${h} h`
  if (h > 0) return `${h} h ${m} min`
  if (m > 0) return `${m} min ${Math.floor(s % 60)} s`
  return `${s.toFixed(0)} s`
}

function size (bytes: number): string {
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(1)} GiB`
  if (bytes >= 2 ** 20) return `${(bytes / 2 ** 20).toFixed(1)} MiB`
  if (bytes >= 2 ** 10) return `${(bytes / 2 ** 10).toFixed(1)} KiB`
  return `${bytes} B`
}

export function formatStatus (s: RelayStatus): string {
  const dropTotal = Object.values(s.drops).reduce((a, b) => a + b, 0)
  const out = s.packetsOut
  return [
    `relay at ${s.url}`,
    `  uptime        ${s.uptimeS == null ? 'unknown' : duration(s.uptimeS)}`,
    `  reachability  ${s.reachability.verdict}`,
    `  connections   ${s.connections.inbound + s.connections.outbound} (${s.connections.inbound} in, ${s.connections.outbound} out); ${s.usersOnEntryLinks} user${s.usersOnEntryLinks === 1 ? '' : 's'} on entry links; ${s.relaysKnown} relay${s.relaysKnown === 1 ? '' : 's'} known`,
    `  packets in    ${s.packetsIn.fromRelays} from relays, ${s.packetsIn.fromUsers} from users`,
    `  packets out   ${out.relay ?? 0} to relays, ${out.client ?? 0} to users, ${out.service ?? 0} handled here`,
    `  drops         ${dropTotal === 0 ? 'none' : `${dropTotal}: ${Object.entries(s.drops).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ')}`}`,
    `  held          ${s.heldForMixing} packet${s.heldForMixing === 1 ? '' : 's'} for their mixing delay; ${s.outboundQueue} queued to next relays`,
    `  unwrapping    ${s.sphinx == null ? 'unknown (this relay is older than the figure)' : s.sphinx.threads === 0 ? 'on the main thread' : `on ${s.sphinx.threads} worker thread${s.sphinx.threads === 1 ? '' : 's'}, ${s.sphinx.queued} packet${s.sphinx.queued === 1 ? '' : 's'} waiting for them`}`,
    `  mailboxes     ${s.mailbox.mailboxes} holding ${s.mailbox.items} item${s.mailbox.items === 1 ? '' : 's'} (${size(s.mailbox.bytes)}); ${s.mailbox.replyBlocks} reply blocks stocked`,
    `  replay filter ${s.replayFilter.entries} of ${s.replayFilter.capacity} entries this epoch`,
    `  process       ${s.residentBytes == null ? '?' : size(s.residentBytes)} resident, ${s.cpuSeconds == null ? '?' : s.cpuSeconds.toFixed(1)} CPU s`
  ].join('\n') + '\n'
}

export async function runRelayStatus (opts: CliOptions, io: CliIO): Promise<number> {
  const addr = parseMetricsAddress(opts.metrics ?? String(DEFAULT_METRICS_PORT))
  const url = `http://${addr.host.includes(':') ? `[${addr.host}]` : addr.host}:${addr.port}/metrics`
  try {
    const status = relayStatus(url, parsePrometheus(await fetchMetrics(url)))
    if (opts.json) emit(io, { event: 'relay-status', ...status })
    else io.stdout.write(formatStatus(status))
    return 0
  } catch (err) {
    if (err instanceof UserError && opts.json) emit(io, { event: 'error', code: err.code, message: err.message })
    throw err
  }
}
