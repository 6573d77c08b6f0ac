/**
 * A mailbox relay SIGKILLed while it hands out `stored` answers keeps every item it answered `stored` for.
 *
 * This file is also the child: run as `node test/mailbox-durability.test.ts depositor <db> <seed hex>
 * <first index> <hang at>`, it opens the store, registers the mailbox and deposits items 0, 1, 2, ...
 * through a real MailboxService. Its reply-block sender decodes each answer and prints `stored <i>` (the
 * block carries i) before returning; at item `<hang at>` it prints the line and then blocks inside the
 * sender, so the parent kills it at the moment it hands out an acknowledgement. The first line is `ready`.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { buildDeposit, buildRegister, decodeMailboxPayload, mailboxKeyPairFromSeed } from '../protocols/mailbox/client.ts'
import { SURB_SIZE } from '../protocols/mailbox/constants.ts'
import { MailboxService } from '../protocols/mailbox/service.ts'
import { MailboxStore } from '../protocols/mailbox/store.ts'
import { within } from './helpers/wait.ts'

const ITEM_BYTES = 1500
/** Deposits before giving up, should the parent never kill the child (it always does well before). */
const CHILD_MAX_ITEMS = 1_000_000

function itemBytes (i: number): Uint8Array {
  const b = new Uint8Array(ITEM_BYTES).fill(i & 0xff)
  new DataView(b.buffer).setUint32(0, i)
  return b
}

/** Deposits handed in before the child waits for their answers: they share fdatasyncs (group commit). */
const CHILD_BATCH = 8

async function runDepositor (argv: string[]): Promise<void> {
  const [path, seedHex, firstArg, hangArg] = argv
  const first = Number(firstArg)
  const hangAt = Number(hangArg)
  const keys = mailboxKeyPairFromSeed(new Uint8Array(Buffer.from(seedHex, 'hex')))
  const store = MailboxStore.open(path)
  const big = 1_000_000_000
  const service = new MailboxService({
    store,
    limits: { maxItemsPerMailbox: big, maxBytesPerMailbox: big, maxItemsPerRelay: big, maxBytesPerRelay: big },
    sendThroughReplyBlock: (block, payload) => {
      const d = decodeMailboxPayload(payload)
      if (!d.ok || d.answer.kind !== 'stored') return
      const i = new DataView(block.buffer, block.byteOffset).getUint32(0)
      process.stdout.write(`stored ${i}\n`)
      if (i === hangAt) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60_000)
    }
  })
  service.handle(buildRegister(keys, Uint8Array.of(1, 2, 3), Date.now()), undefined)
  process.stdout.write('ready\n')
  for (let i = first; i < first + CHILD_MAX_ITEMS; i++) {
    const block = new Uint8Array(SURB_SIZE)
    new DataView(block.buffer).setUint32(0, i)
    service.handle(buildDeposit(keys.mailboxId, itemBytes(i)), block)
    // a STORED goes once its item is on disk (an fdatasync off the event loop): let them come
    if ((i - first) % CHILD_BATCH === CHILD_BATCH - 1) await service.settled()
  }
}

if (process.argv[2] === 'depositor') {
  runDepositor(process.argv.slice(3)).catch((err: Error) => { process.stderr.write(`${err.name}\n`); process.exitCode = 1 })
} else {
  describe('mailbox durability', () => {
    /** Runs the child until `enough` stored lines (or its hang), SIGKILLs it, returns the indices it acknowledged. */
    async function runAndKill (path: string, seed: string, first: number, hangAt: number, enough: number): Promise<number[]> {
      const env = { ...process.env }
      delete env.NODE_TEST_CONTEXT
      const child = spawn(process.execPath, [import.meta.filename, 'depositor', path, seed, String(first), String(hangAt)], { stdio: ['ignore', 'pipe', 'pipe'], env })
      let stderr = ''
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
      const exited = new Promise<NodeJS.Signals | number | null>(resolve => { child.on('exit', (code, signal) => { resolve(signal ?? code) }) })
      const lines: string[] = []
      const rl = createInterface({ input: child.stdout })
      const closed = new Promise<void>(resolve => { rl.on('close', resolve) })
      const reached = new Promise<void>((resolve, reject) => {
        rl.on('line', (line) => {
          lines.push(line)
          if (line === `stored ${hangAt}` || lines.length > enough) resolve()
        })
        void exited.then(() => { reject(new Error(`depositor exited early: ${stderr}`)) })
      })
      try {
        await within(reached, 60_000, `the depositor acknowledging ${enough} items`)
      } finally {
        child.kill('SIGKILL')
      }
      assert.equal(await within(exited, 10_000, 'the depositor exiting'), 'SIGKILL')
      await within(closed, 10_000, 'the depositor output closing')
      assert.equal(lines[0], 'ready')
      return lines.slice(1).map(line => {
        const m = /^stored (\d+)$/.exec(line)
        assert.ok(m, line)
        return Number(m[1])
      })
    }

    it('a relay SIGKILLed mid-loop and at a stored acknowledgement holds every item it answered stored for', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'p2pchat-mailbox-kill-'))
      try {
        const path = MailboxStore.pathIn(dir)
        const seed = randomBytes(32).toString('hex')
        const keys = mailboxKeyPairFromSeed(new Uint8Array(Buffer.from(seed, 'hex')))
        // 1: killed at an arbitrary point of the loop, after at least 150 acknowledgements
        const acked1 = await runAndKill(path, seed, 0, -1, 150)
        assert.ok(acked1.length >= 150)
        // 2: restarted on the same file, killed while inside the sender handing out the 100th acknowledgement
        const first2 = 1_000_000
        const acked2 = await runAndKill(path, seed, first2, first2 + 99, Number.MAX_SAFE_INTEGER)
        assert.equal(acked2.at(-1), first2 + 99)

        const store = MailboxStore.open(path)
        try {
          const held = new Map<number, Uint8Array>()
          for (const row of store.items(keys.mailboxId)) held.set(new DataView(row.bytes.buffer).getUint32(0), row.bytes)
          for (const i of [...acked1, ...acked2]) {
            assert.deepEqual(held.get(i), itemBytes(i), `item ${i} was answered stored`)
          }
          const mailbox = store.getMailbox(keys.mailboxId)
          assert.equal(mailbox?.itemCount, held.size, 'the running count matches the rows after both kills')
          assert.equal(mailbox?.itemBytes, held.size * ITEM_BYTES)
        } finally {
          store.close()
        }
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    })
  })
}
