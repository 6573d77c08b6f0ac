/**
 * The `--json` command language of `p2pchat start`: one JSON object per line on stdin. Parsing is a
 * pure function (no I/O, no node) so it can be table-tested and fuzzed: any string in, either a
 * well-typed command or an error with a stable code out; it never throws.
 *
 * Every command may carry a `tag` (a string of at most 64 characters) that is echoed in the events
 * answering it, so a script can match answers to requests.
 */

/** A line longer than this (in bytes, without the newline) is refused unread. */
export const MAX_JSON_LINE_BYTES = 16 * 1024
export const MAX_TAG_LENGTH = 64
/** Nick and address fields are short; anything longer is refused here (ChatNode checks the rest). */
const MAX_NAME_LENGTH = 128
const MAX_HISTORY_LIMIT = 1000
/** A message id: 32 hex digits, or a prefix of at least 8 (ChatNode checks the form). */
const MAX_ID_LENGTH = 32

export type JsonCommand =
  | { cmd: 'send', to: string, text: string, tag?: string }
  | { cmd: 'whois', nick: string, tag?: string }
  | { cmd: 'contacts', tag?: string }
  | { cmd: 'history', nick: string, limit?: number, tag?: string }
  | { cmd: 'relays', tag?: string }
  | { cmd: 'accept', nick: string, tag?: string }
  | { cmd: 'conversations', tag?: string }
  | { cmd: 'read', nick: string, tag?: string }
  | { cmd: 'requests', tag?: string }
  | { cmd: 'deny', nick: string, tag?: string }
  | { cmd: 'block', nick: string, tag?: string }
  | { cmd: 'verify', nick: string, confirm?: boolean, tag?: string }
  | { cmd: 'retry', id: string, tag?: string }
  | { cmd: 'cancel', id: string, tag?: string }
  | { cmd: 'status', tag?: string }
  | { cmd: 'quit', tag?: string }

export type JsonErrorCode = 'LINE_TOO_LONG' | 'BAD_JSON' | 'NOT_AN_OBJECT' | 'UNKNOWN_CMD' | 'MISSING_FIELD' | 'BAD_FIELD'

export type ParsedLine =
  | { ok: true, command: JsonCommand }
  | { ok: false, code: JsonErrorCode, message: string, tag?: string }

type FieldType = 'string' | 'integer' | 'boolean'
interface FieldSpec { type: FieldType, required: boolean, max?: number }

/** Each command's fields besides `cmd` and `tag`. Unknown fields are refused (a typo should not pass silently). */
const SPECS: Record<JsonCommand['cmd'], Record<string, FieldSpec>> = {
  send: { to: { type: 'string', required: true, max: MAX_NAME_LENGTH }, text: { type: 'string', required: true } },
  whois: { nick: { type: 'string', required: true, max: MAX_NAME_LENGTH } },
  contacts: {},
  history: { nick: { type: 'string', required: true, max: MAX_NAME_LENGTH }, limit: { type: 'integer', required: false, max: MAX_HISTORY_LIMIT } },
  relays: {},
  accept: { nick: { type: 'string', required: true, max: MAX_NAME_LENGTH } },
  conversations: {},
  read: { nick: { type: 'string', required: true, max: MAX_NAME_LENGTH } },
  requests: {},
  deny: { nick: { type: 'string', required: true, max: MAX_NAME_LENGTH } },
  block: { nick: { type: 'string', required: true, max: MAX_NAME_LENGTH } },
  verify: { nick: { type: 'string', required: true, max: MAX_NAME_LENGTH }, confirm: { type: 'boolean', required: false } },
  retry: { id: { type: 'string', required: true, max: MAX_ID_LENGTH } },
  cancel: { id: { type: 'string', required: true, max: MAX_ID_LENGTH } },
  status: {},
  quit: {}
}

export const JSON_COMMANDS = Object.keys(SPECS) as Array<JsonCommand['cmd']>

function fail (code: JsonErrorCode, message: string, tag?: string): ParsedLine {
  return tag == null ? { ok: false, code, message } : { ok: false, code, message, tag }
}

function typeName (v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'array'
  return typeof v
}

export function parseJsonCommand (line: string): ParsedLine {
  if (typeof line !== 'string') return fail('BAD_JSON', 'a command must be a line of text')
  if (Buffer.byteLength(line, 'utf8') > MAX_JSON_LINE_BYTES) return fail('LINE_TOO_LONG', `a command line may hold at most ${MAX_JSON_LINE_BYTES} bytes`)
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch (err) {
    return fail('BAD_JSON', `not JSON: ${(err as Error).message.split('\n')[0]}`)
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return fail('NOT_AN_OBJECT', `a command must be a JSON object, not ${typeName(value)}`)
  const obj = value as Record<string, unknown>
  let tag: string | undefined
  if (Object.hasOwn(obj, 'tag')) {
    if (typeof obj.tag !== 'string' || obj.tag.length > MAX_TAG_LENGTH) return fail('BAD_FIELD', `"tag" must be a string of at most ${MAX_TAG_LENGTH} characters`)
    tag = obj.tag
  }
  if (!Object.hasOwn(obj, 'cmd')) return fail('MISSING_FIELD', `missing "cmd" (one of ${JSON_COMMANDS.join(', ')})`, tag)
  const cmd = obj.cmd
  if (typeof cmd !== 'string') return fail('BAD_FIELD', `"cmd" must be a string, not ${typeName(cmd)}`, tag)
  if (!Object.hasOwn(SPECS, cmd)) return fail('UNKNOWN_CMD', `unknown cmd "${cmd.slice(0, 40)}" (one of ${JSON_COMMANDS.join(', ')})`, tag)
  const spec = SPECS[cmd as JsonCommand['cmd']]
  const out: Record<string, unknown> = { cmd }
  for (const key of Object.keys(obj)) {
    if (key !== 'cmd' && key !== 'tag' && !Object.hasOwn(spec, key)) return fail('BAD_FIELD', `unknown field "${key.slice(0, 40)}" for ${cmd}`, tag)
  }
  for (const [name, field] of Object.entries(spec)) {
    if (!Object.hasOwn(obj, name) || obj[name] === undefined) {
      if (field.required) return fail('MISSING_FIELD', `${cmd} needs "${name}" (${field.type})`, tag)
      continue
    }
    const v = obj[name]
    if (field.type === 'string') {
      if (typeof v !== 'string') return fail('BAD_FIELD', `"${name}" must be a string, not ${typeName(v)}`, tag)
      if (field.max != null && v.length > field.max) return fail('BAD_FIELD', `"${name}" is too long (at most ${field.max} characters)`, tag)
    } else if (field.type === 'boolean') {
      if (typeof v !== 'boolean') return fail('BAD_FIELD', `"${name}" must be true or false, not ${typeName(v)}`, tag)
    } else {
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) return fail('BAD_FIELD', `"${name}" must be a positive integer`, tag)
      if (field.max != null && v > field.max) return fail('BAD_FIELD', `"${name}" may be at most ${field.max}`, tag)
    }
    out[name] = v
  }
  if (tag != null) out.tag = tag
  return { ok: true, command: out as JsonCommand }
}
