/**
 * Measures the round trip a lab link actually has: opens `count` TCP connections to host:port one
 * after another and prints `{"connectMs":[...]}` (the time from connect() to the handshake's end:
 * one SYN / SYN-ACK round trip). Run inside a lab namespace by lab/run.ts. Usage: probe.ts <host> <port> <count>
 */
import { connect } from 'node:net'

const [host, portText, countText] = process.argv.slice(2)
const port = Number(portText)
const count = Math.min(100, Math.max(1, Number(countText)))
const samples: number[] = []
for (let i = 0; i < count; i++) {
  const t0 = performance.now()
  const ms = await new Promise<number | null>(resolve => {
    const s = connect({ host, port, timeout: 5000 })
    s.once('connect', () => { resolve(performance.now() - t0); s.destroy() })
    s.once('timeout', () => { resolve(null); s.destroy() })
    s.once('error', () => { resolve(null) })
  })
  if (ms != null) samples.push(ms)
}
process.stdout.write(JSON.stringify({ connectMs: samples, failed: count - samples.length }) + '\n')
