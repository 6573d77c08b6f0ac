/**
 * Splits a byte stream into lines with a bound on memory: a line longer than `maxBytes` is dropped as
 * it streams in (never buffered whole) and reported once as oversize. `node:readline` would buffer
 * a newline-free megabyte line in full, which a --json peer on stdin must not be able to do.
 */
import { StringDecoder } from 'node:string_decoder'
import type { Readable } from 'node:stream'

export type LineItem = { line: string } | { oversize: number }

export class LineSplitter {
  private readonly maxBytes: number
  private parts: Buffer[] = []
  private size = 0
  private skipping = false

  constructor (maxBytes: number) { this.maxBytes = maxBytes }

  /** Feeds one chunk; returns the complete lines (without '\n' or a trailing '\r') it finished. */
  push (chunk: Buffer): LineItem[] {
    const out: LineItem[] = []
    let start = 0
    while (start <= chunk.length) {
      const nl = chunk.indexOf(0x0a, start)
      const end = nl === -1 ? chunk.length : nl
      this.take(chunk.subarray(start, end))
      if (nl === -1) break
      out.push(this.finish())
      start = nl + 1
    }
    return out
  }

  /** At end of input: the last line if it had no newline. */
  end (): LineItem[] {
    if (this.size === 0 && !this.skipping) return []
    return [this.finish()]
  }

  private take (piece: Buffer): void {
    if (piece.length === 0) return
    this.size += piece.length
    if (this.skipping) return
    if (this.size > this.maxBytes) {
      this.skipping = true
      this.parts = []
      return
    }
    this.parts.push(Buffer.from(piece))
  }

  private finish (): LineItem {
    const size = this.size
    const skipped = this.skipping
    const buf = Buffer.concat(this.parts)
    this.parts = []
    this.size = 0
    this.skipping = false
    if (skipped) return { oversize: size }
    const decoder = new StringDecoder('utf8')
    let line = decoder.write(buf) + decoder.end()
    if (line.endsWith('\r')) line = line.slice(0, -1)
    return { line }
  }
}

/** Calls `onItem` for each line of `input`, then `onEnd` once at end of input (or on an error). */
export function readLines (input: Readable, maxBytes: number, onItem: (item: LineItem) => void, onEnd: () => void): () => void {
  const splitter = new LineSplitter(maxBytes)
  let ended = false
  const onData = (chunk: Buffer | string): void => {
    for (const item of splitter.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk)) onItem(item)
  }
  const finish = (): void => {
    if (ended) return
    ended = true
    for (const item of splitter.end()) onItem(item)
    onEnd()
  }
  input.on('data', onData)
  input.on('end', finish)
  input.on('error', finish)
  return () => {
    input.off('data', onData)
    input.off('end', finish)
    input.off('error', finish)
    ended = true
  }
}
