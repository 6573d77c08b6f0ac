/**
 * Prometheus metrics for operators: `--metrics <host:port>` on `p2pchat start --relay` and
 * `p2pchat bootstrap` serves the Prometheus text format (version 0.0.4) at `/metrics` over plain HTTP,
 * bound to 127.0.0.1 unless the address names another host (metrics show traffic volumes: keep them
 * off the Internet, or put them behind your own proxy). Any other path is a 404.
 *
 * Built on `prom-client` with one registry per node. Every p2pchat figure is read from the counters
 * the node already keeps (RelayNode.stats(), the key ring, the mailbox store) when Prometheus scrapes,
 * so metrics add no work per packet. `@libp2p/prometheus-metrics` was not used: it would hook every
 * libp2p stream's send and dispatch (a map update per chunk on the path the bench shows bounds a
 * relay's rate), it needs the node factory to take a metrics component, and it clears prom-client's
 * global registry whenever it is constructed; the libp2p figures an operator needs (connections, DHT
 * requests served) are read here directly, and prom-client's default process metrics (CPU, memory,
 * event-loop lag, open files) come along.
 *
 * Nothing here names a user: labels are drop reasons, operations, outcomes, DHT message types and
 * connection directions, never a peer id, a nick or an address.
 */
import { createServer } from 'node:http'
import type { Server } from 'node:http'
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import { observeDhtRequests } from './create.ts'
import type { P2PNode } from './create.ts'
import { UserError } from './errors.ts'
import type { RelayNode } from './relay-node.ts'

/** Where metrics listen unless the address names a host: this machine only. */
export const DEFAULT_METRICS_HOST = '127.0.0.1'
/** The port Prometheus' exporter conventions leave free for ad-hoc exporters (node_exporter is 9100). */
export const DEFAULT_METRICS_PORT = 9464

export interface MetricsAddress { host: string, port: number }

/** `9464`, `:9464`, `127.0.0.1:9464`, `0.0.0.0:9464`, `[::1]:9464`; a bad one is a UserError. */
export function parseMetricsAddress (text: string): MetricsAddress {
  const t = text.trim()
  let host = DEFAULT_METRICS_HOST
  let portText = t
  const v6 = /^\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(t)
  if (v6 != null) {
    host = v6[1]
    portText = v6[2]
  } else if (t.includes(':')) {
    const i = t.lastIndexOf(':')
    host = t.slice(0, i) === '' ? DEFAULT_METRICS_HOST : t.slice(0, i)
    portText = t.slice(i + 1)
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535 || !/^[A-Za-z0-9.:-]+$/.test(host)) {
    throw new UserError(`--metrics ${text.slice(0, 60)}: expected <host:port> or <port>, e.g. --metrics 127.0.0.1:${DEFAULT_METRICS_PORT}`, 'USAGE')
  }
  return { host, port: Number(portText) }
}

export class Metrics {
  readonly registry = new Registry()
  private readonly detach: Array<() => void> = []

  constructor () {
    collectDefaultMetrics({ register: this.registry })
  }

  /** A counter whose value is read at scrape time (by label set). */
  private counter (name: string, help: string, labelNames: string[], read: () => Array<[Record<string, string>, number]>): void {
    // eslint-disable-next-line no-new
    new Counter({
      name,
      help,
      labelNames,
      registers: [this.registry],
      collect () {
        this.reset()
        for (const [labels, v] of read()) if (Number.isFinite(v) && v > 0) this.inc(labels, v)
      }
    })
  }

  private gauge (name: string, help: string, labelNames: string[], read: () => Array<[Record<string, string>, number]>): void {
    // eslint-disable-next-line no-new
    new Gauge({
      name,
      help,
      labelNames,
      registers: [this.registry],
      collect () {
        this.reset()
        for (const [labels, v] of read()) this.set(labels, v)
      }
    })
  }

  /** Connections and DHT requests served: for any node (relay or bootstrap). */
  addNode (node: P2PNode): void {
    const served = new Map<string, number>()
    this.detach.push(observeDhtRequests(node, r => { served.set(r.type, (served.get(r.type) ?? 0) + 1) }))
    this.counter('p2pchat_dht_requests_served_total', 'DHT requests this node answered, by message type', ['type'],
      () => [...served].map(([type, n]) => [{ type }, n]))
    this.gauge('p2pchat_connections', 'open libp2p connections, by direction', ['direction'], () => {
      const n = { inbound: 0, outbound: 0 }
      for (const c of node.getConnections()) n[c.direction === 'inbound' ? 'inbound' : 'outbound']++
      return [[{ direction: 'inbound' }, n.inbound], [{ direction: 'outbound' }, n.outbound]]
    })
    this.gauge('p2pchat_peers', 'peers with an open connection', [], () => [[{}, node.getPeers().length]])
  }

  /** Everything a relay counts. */
  addRelay (relay: RelayNode): void {
    const s = (): { onion: RelayNode['onion']['stats'], clients: RelayNode['clients']['stats'] & { connected: number }, mailboxes: ReturnType<RelayNode['mailboxes']['stats']>, exit: RelayNode['exit']['stats'], services: RelayNode['services']['stats'], relaysKnown: number } => ({
      onion: relay.onion.stats,
      clients: { ...relay.clients.stats, connected: relay.clients.size },
      mailboxes: relay.mailboxes.stats(),
      exit: relay.exit.stats,
      services: relay.services.stats,
      relaysKnown: relay.relays.size
    })
    const byKey = (o: Partial<Record<string, number>>, label: string): Array<[Record<string, string>, number]> =>
      Object.entries(o).map(([k, v]) => [{ [label]: k }, v ?? 0])
    const nested = (o: Record<string, Record<string, number>>): Array<[Record<string, string>, number]> =>
      Object.entries(o).flatMap(([op, m]) => Object.entries(m).map(([outcome, v]) => [{ op, outcome }, v] as [Record<string, string>, number]))
    const replay = (): Array<[Record<string, string>, number]> => {
      const k = relay.keyRing
      return [[{ key: 'current' }, k.current.filter.size], [{ key: 'next' }, k.next.filter.size], ...(k.previous == null ? [] : [[{ key: 'previous' }, k.previous.filter.size] as [Record<string, string>, number]])]
    }
    this.counter('p2pchat_onion_packets_in_total', 'onion packets read from other relays (users\' packets: p2pchat_client_packets_in_total)', [], () => [[{}, s().onion.received]])
    this.counter('p2pchat_onion_packets_out_total', 'onion packets passed on, by where to (relay: the next mix; client: down a client link; service: handled here)', ['to'], () => {
      const st = s()
      return [[{ to: 'relay' }, st.onion.forwarded], [{ to: 'client' }, st.clients.delivered], [{ to: 'service' }, st.onion.delivered]]
    })
    this.counter('p2pchat_onion_drops_total', 'onion packets dropped, by reason', ['reason'], () => byKey(s().onion.dropped, 'reason'))
    this.counter('p2pchat_onion_stream_errors_total', 'relay streams that ended in an error', [], () => [[{}, s().onion.streamErrors]])
    this.counter('p2pchat_onion_backpressure_pauses_total', 'times a full neighbour queue paused reading (held), and pauses that timed out', ['outcome'],
      () => [[{ outcome: 'held' }, s().onion.held], [{ outcome: 'timed-out' }, s().onion.holdTimeouts]])
    this.gauge('p2pchat_onion_queue_packets', 'packets waiting in the outbound queues to next relays', [], () => [[{}, relay.onion.queueDepth().packets]])
    // the Sphinx worker pool (--sphinx-threads; 0 threads: packets are unwrapped on the main thread);
    // packets it refused when full are p2pchat_onion_drops_total{reason="pool-full"}
    this.gauge('p2pchat_sphinx_threads', 'worker threads unwrapping onion packets (0: on the main thread)', [], () => [[{}, relay.onion.stats.sphinxPool?.threads ?? 0]])
    this.gauge('p2pchat_sphinx_pool_packets', 'onion packets handed to the Sphinx worker threads and not yet answered', [], () => [[{}, relay.onion.stats.sphinxPool?.queued ?? 0]])
    this.gauge('p2pchat_onion_neighbours', 'relays this relay holds an outbound queue for', [], () => [[{}, relay.onion.queueDepth().neighbours]])
    this.gauge('p2pchat_clients_connected', 'users with an open entry link to this relay', [], () => [[{}, s().clients.connected]])
    this.counter('p2pchat_client_packets_in_total', 'packets users submitted on their entry links', [], () => [[{}, s().clients.submitted]])
    this.counter('p2pchat_client_drops_total', 'client-link packets dropped, by reason', ['reason'], () => byKey(s().clients.dropped, 'reason'))
    this.gauge('p2pchat_mailboxes', 'mailboxes held', [], () => [[{}, s().mailboxes.mailboxes]])
    this.gauge('p2pchat_mailbox_items', 'sealed items waiting in the mailboxes', [], () => [[{}, s().mailboxes.items]])
    this.gauge('p2pchat_mailbox_bytes', 'bytes of sealed items waiting in the mailboxes', [], () => [[{}, s().mailboxes.bytes]])
    this.gauge('p2pchat_mailbox_reply_blocks', 'reply blocks stocked by mailbox owners (memory only)', [], () => [[{}, s().mailboxes.blocks]])
    this.counter('p2pchat_mailbox_requests_total', 'mailbox requests, by operation and outcome', ['op', 'outcome'], () => nested(s().mailboxes.requests))
    this.counter('p2pchat_mailbox_drops_total', 'mailbox requests dropped, by reason', ['reason'], () => byKey(s().mailboxes.drops, 'reason'))
    this.counter('p2pchat_mailbox_pushes_total', 'items pushed to their owners through stocked reply blocks', [], () => [[{}, s().mailboxes.pushes]])
    // mailbox version 2 (protocols/mailbox/SPEC.md section 11): steady mailboxes push at fixed ticks, an
    // item or PADDING, whether or not mail waits; syncs_total is requests_total{op="sync",outcome="synced"}
    // on its own line, present (0) before the first SYNC, so a dashboard sees version 2 at a glance
    this.gauge('p2pchat_mailboxes_steady', 'mailboxes in steady mode now (version 2: one push per period, mail or padding)', [], () => [[{}, s().mailboxes.steadyMailboxes]])
    this.counter('p2pchat_mailbox_padding_pushes_total', 'steady pushes that carried PADDING (no item was due)', [], () => [[{}, s().mailboxes.paddingPushes]])
    this.counter('p2pchat_mailbox_steady_idle_ticks_total', 'steady ticks that pushed nothing (no reply block held)', [], () => [[{}, s().mailboxes.steadyIdle]])
    this.counter('p2pchat_mailbox_syncs_total', 'SYNCs served (version 2: reply blocks, acknowledgements and the push period, answered synced)', [], () => [[{}, s().mailboxes.requests.sync.synced ?? 0]])
    this.counter('p2pchat_exit_requests_total', 'directory requests run as an exit, by operation and outcome', ['op', 'outcome'], () => nested(s().exit))
    this.counter('p2pchat_service_requests_total', 'service layers handled, by service number', ['service'],
      () => Object.entries(s().services.requests).map(([k, v]) => [{ service: k }, v ?? 0]))
    this.counter('p2pchat_service_drops_total', 'service layers dropped, by reason (drop-cover: cover traffic, discarded by design)', ['reason'],
      () => [...byKey(s().services.dropped, 'reason'), [{ reason: 'drop-cover' }, s().services.dropCover]])
    this.gauge('p2pchat_replay_filter_entries', 'packets recorded in the replay filter, by key (current, previous, next epoch)', ['key'],
      replay)
    this.gauge('p2pchat_replay_filter_capacity', 'entries one epoch\'s filter holds before the key rotates early', [], () => [[{}, relay.keyRing.current.filter.capacity]])
    this.gauge('p2pchat_replay_filter_bytes', 'memory of the replay filters held now', [], () => [[{}, relay.keyRing.replayBytes]])
    this.gauge('p2pchat_relays_known', 'relays with a live descriptor known to this relay', [], () => [[{}, s().relaysKnown]])
    // for `p2pchat relay status`: packets held for their mixing delay, and the dial-back verdict at start
    this.gauge('p2pchat_mix_held_packets', 'onion packets held now for their mixing delay', [], () => [[{}, relay.onion.stats.mixing?.held ?? 0]])
    this.gauge('p2pchat_reachability_verified_addresses', 'addresses peers confirmed by dialling back at start (announced), -1 when unchecked', [],
      () => [[{}, relay.reachability?.verified.length ?? -1]])
    // confirmed: the fewest groups that confirmed an announced address (0 when none is announced)
    this.gauge('p2pchat_reachability_networks', 'network groups of the peers that answered the dial-back check (helpers), how many had to confirm an address (required), and the fewest that confirmed an announced one (confirmed)', ['kind'],
      () => {
        const r = relay.reachability
        if (r == null) return []
        const counts = r.addrs.filter(a => r.verified.includes(a.addr)).map(a => a.confirmedBy.length)
        return [[{ kind: 'helpers' }, r.groups], [{ kind: 'required' }, r.required], [{ kind: 'confirmed' }, counts.length === 0 ? 0 : Math.min(...counts)]]
      })
  }

  async text (): Promise<string> { return await this.registry.metrics() }

  /** Serves `/metrics` on `addr`; resolves once listening, with the address bound (port 0 picks one). */
  async serve (addr: MetricsAddress): Promise<MetricsServer> {
    const server = createServer((req, res) => {
      if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('p2pchat serves /metrics only\n')
        return
      }
      this.registry.metrics()
        .then(body => { res.writeHead(200, { 'content-type': this.registry.contentType }).end(body) })
        .catch(() => { res.writeHead(500).end() })
    })
    server.headersTimeout = 10_000
    server.requestTimeout = 10_000
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        reject(new UserError(`cannot serve metrics on ${addr.host}:${addr.port}: ${err.code === 'EADDRINUSE' ? 'the port is in use' : err.code ?? err.message}`, 'METRICS_LISTEN'))
      })
      server.listen(addr.port, addr.host, () => { resolve() })
    })
    return new MetricsServer(server, () => { for (const d of this.detach.splice(0)) d() })
  }
}

export class MetricsServer {
  private readonly server: Server
  private readonly onClose: () => void
  constructor (server: Server, onClose: () => void) {
    this.server = server
    this.onClose = onClose
  }

  /** `http://host:port/metrics` as bound. */
  get url (): string {
    const a = this.server.address()
    if (a == null || typeof a === 'string') return ''
    return `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}/metrics`
  }

  /** Safe to call twice. */
  async close (): Promise<void> {
    this.onClose()
    if (!this.server.listening) return
    this.server.closeAllConnections()
    await new Promise<void>(resolve => { this.server.close(() => { resolve() }) })
  }
}
