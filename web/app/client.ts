/**
 * The page's end of the WebSocket: the node's `--json` protocol, one command or event per message.
 * `call` tags a command and resolves with the first event carrying that tag (the answer, or an
 * error event). Reconnects after a drop with a growing delay (at most RECONNECT_MAX_MS); every event
 * without a tag goes to `onEvent`.
 */
export type Json = Record<string, unknown>

/** The node answers in milliseconds; a lookup through the onion can take a few seconds, a retry more. */
const CALL_TIMEOUT_MS = 60_000
const RECONNECT_MIN_MS = 500
const RECONNECT_MAX_MS = 10_000

export class CallError extends Error {
  readonly code: string
  constructor (code: string, message: string) {
    super(message)
    this.name = 'CallError'
    this.code = code
  }
}

export class NodeClient {
  onEvent: (e: Json) => void = () => {}
  onState: (state: 'open' | 'closed', failures: number) => void = () => {}
  private ws: WebSocket | undefined
  private seq = 0
  private failures = 0
  private readonly waiting = new Map<string, { resolve: (e: Json) => void, reject: (e: Error) => void, timer: number }>()

  connect (): void {
    const ws = new WebSocket(`ws://${location.host}/ws`)
    this.ws = ws
    ws.onopen = () => { this.failures = 0; this.onState('open', 0) }
    ws.onmessage = (m: MessageEvent) => {
      let e: Json
      try { e = JSON.parse(String(m.data)) as Json } catch { return }
      if (e === null || typeof e !== 'object') return
      const tag = typeof e.tag === 'string' ? e.tag : undefined
      const w = tag == null ? undefined : this.waiting.get(tag)
      if (w == null) { this.onEvent(e); return }
      this.waiting.delete(tag as string)
      clearTimeout(w.timer)
      if (e.event === 'error') w.reject(new CallError(String(e.code), String(e.message)))
      else w.resolve(e)
    }
    ws.onclose = () => {
      for (const [tag, w] of this.waiting) { clearTimeout(w.timer); w.reject(new CallError('DISCONNECTED', 'the connection to the node dropped')); this.waiting.delete(tag) }
      this.failures++
      this.onState('closed', this.failures)
      const delay = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** Math.min(this.failures, 5))
      setTimeout(() => { this.connect() }, delay)
    }
  }

  async call (cmd: Json): Promise<Json> {
    const ws = this.ws
    if (ws == null || ws.readyState !== WebSocket.OPEN) throw new CallError('DISCONNECTED', 'not connected to the node')
    const tag = `t${++this.seq}`
    return await new Promise<Json>((resolve, reject) => {
      const timer = window.setTimeout(() => { this.waiting.delete(tag); reject(new CallError('TIMEOUT', `${String(cmd.cmd)}: no answer`)) }, CALL_TIMEOUT_MS)
      this.waiting.set(tag, { resolve, reject, timer })
      ws.send(JSON.stringify({ ...cmd, tag }))
    })
  }
}

/** True when the node does not know the command (an older node: the page goes without that feature). */
export function unsupported (err: unknown): boolean {
  return err instanceof CallError && err.code === 'UNKNOWN_CMD'
}
