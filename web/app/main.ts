/**
 * p2pchat's web app: plain TypeScript and the DOM (dom.ts `h`, no framework), bundled by esbuild
 * when the node starts (cli/web-assets.ts). It speaks only the node's `--json` protocol over one
 * WebSocket (client.ts). Features that newer nodes add to that protocol (conversations, read,
 * requests, deny, block, verify, retry, cancel, status) are used when the node knows them and
 * replaced by what the older commands give (contacts, history, relays, accept) when it answers
 * UNKNOWN_CMD. Text from the network is only ever put in text nodes.
 */
import { append, fill, h, Keyed, reconcile } from './dom.ts'
import type { Child } from './dom.ts'
import { CallError, NodeClient, unsupported } from './client.ts'
import type { Json } from './client.ts'

type Trust = 'unverified' | 'verified' | 'changed'
type State = 'queued' | 'sent' | 'stored' | 'delivered' | 'failed' | 'received'

interface Msg { id: string, direction: 'in' | 'out', text: string, ts: number, state: State, verified: boolean, reason: string | null }
interface Conv { nick: string, fingerprint: string | null, trust: Trust | null, unread: number, last: Msg | null, messages: Msg[] | null }
interface Req { nick: string, fingerprint: string, messages: number }

/** Messages loaded when a conversation opens. */
const HISTORY_LIMIT = 200
/** Contacts whose last message the page loads one by one on a node without "conversations". */
const FALLBACK_CONTACTS = 100
const STATUS_REFRESH_MS = 15_000
const NOTIFY_BODY_CHARS = 140

const client = new NodeClient()
const app = {
  me: { nick: '', fingerprint: '' },
  status: { stage: 'connecting', relays: 0, privacy: null as string | null },
  connected: false,
  convs: new Map<string, Conv>(),
  requests: [] as Req[],
  requestsSupported: true,
  open: null as string | null,
  /** id -> the conversation's nick, for events that name only the id */
  owner: new Map<string, string>()
}

// ---------- the page's skeleton (built once; parts are refilled) ----------
const meEl = h('div', { class: 'me' })
const statusEl = h('div', { class: 'status', role: 'status', 'aria-live': 'polite' })
const bellEl = h('button', { type: 'button', class: 'bell', title: 'Notify me of new messages while this tab is hidden', onclick: () => { void askNotify() } }, 'Notify me')
const newInput = h('input', { id: 'new-chat', name: 'nick', placeholder: 'Start a chat: nick', autocomplete: 'off', spellcheck: 'false', maxlength: 170, 'aria-label': 'nick to look up', enterkeyhint: 'go' })
const newNote = h('div', { class: 'note', 'aria-live': 'polite' })
const newForm = h('form', { class: 'new-chat', onsubmit: (e: Event) => { e.preventDefault(); void lookUp() } }, newInput, h('button', { type: 'submit' }, 'Look up'), newNote)
const requestsEl = h('section', { class: 'requests', 'aria-label': 'contact requests', hidden: true })
const listEl = h('nav', { class: 'conversations', 'aria-label': 'conversations' })
const sidebar = h('aside', { class: 'sidebar' }, h('header', { class: 'top' }, meEl, statusEl, bellEl), newForm, requestsEl, listEl)

const chatHead = h('header', { class: 'chat-head' })
const banner = h('div', { class: 'banner', role: 'alert', hidden: true })
const messagesEl = h('ol', { class: 'messages', 'aria-label': 'messages', tabindex: 0 })
/** Read out by screen readers: one line per new message (the list itself is redrawn, so it is not live). */
const announcer = h('div', { class: 'sr-only', 'aria-live': 'polite' })
const composer = h('textarea', { id: 'composer', rows: 2, placeholder: 'Message (Enter sends, Shift+Enter a new line)', 'aria-label': 'message', disabled: true })
const sendNote = h('div', { class: 'note', 'aria-live': 'polite' })
const composerForm = h('form', { class: 'composer', onsubmit: (e: Event) => { e.preventDefault(); void send() } }, composer, h('button', { type: 'submit', id: 'send' }, 'Send'), sendNote)
const empty = h('div', { class: 'empty' }, 'Pick a conversation, or look a nick up to start one.')
const chatEl = h('main', { class: 'chat' }, chatHead, banner, empty, messagesEl, composerForm)
const dialog = h('dialog', { class: 'verify', 'aria-label': 'verify a contact' })
const root = h('div', { class: 'app', 'data-view': 'list' }, sidebar, chatEl, dialog, announcer)

// ---------- small helpers ----------
function conv (nick: string): Conv {
  let c = app.convs.get(nick)
  if (c == null) {
    c = { nick, fingerprint: null, trust: null, unread: 0, last: null, messages: null }
    app.convs.set(nick, c)
  }
  return c
}

function asTrust (v: unknown): Trust | null {
  return v === 'unverified' || v === 'verified' || v === 'changed' ? v : null
}

/** The stored failure codes (node/chat-node.ts markFailed) in words; a failure event already has words. */
const FAILURES: Record<string, string> = {
  'no-such-nick': 'nobody holds this nick',
  'fingerprint-mismatch': 'their key is not the one this message was addressed to',
  expired: 'expired before it could be delivered'
}

function asMsg (m: Json): Msg {
  return {
    id: String(m.id),
    direction: m.direction === 'in' ? 'in' : 'out',
    text: String(m.text ?? ''),
    ts: Number(m.ts ?? Date.now()),
    state: String(m.state ?? 'queued') as State,
    verified: m.verified !== false,
    reason: typeof m.reason === 'string' ? FAILURES[m.reason] ?? m.reason : null
  }
}

/** Adds a message in time order (messages from the network arrive in any order). */
function insert (c: Conv, m: Msg): void {
  if (c.messages == null) return
  let i = c.messages.length
  while (i > 0 && c.messages[i - 1].ts > m.ts) i--
  c.messages.splice(i, 0, m)
}

function day (ts: number): string {
  const d = new Date(ts)
  const today = new Date()
  const yesterday = new Date(Date.now() - 86_400_000)
  if (d.toDateString() === today.toDateString()) return 'Today'
  if (d.toDateString() === yesterday.toDateString()) return 'Yesterday'
  return d.toLocaleDateString(undefined, { weekday: 'long', year: 'numeric', month: 'long', day: 'numeric' })
}

function clock (ts: number): string {
  return new Date(ts).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' })
}

const MARKS: Record<State, { mark: string, label: string }> = {
  queued: { mark: '🕓', label: 'queued: not sent yet (the recipient or the network is not reachable now); it goes on trying' },
  sent: { mark: '…', label: 'sending' },
  stored: { mark: '✓', label: 'stored in a mailbox of the recipient' },
  delivered: { mark: '✓✓', label: 'delivered: the recipient’s signed receipt came back' },
  failed: { mark: '✗', label: 'failed' },
  received: { mark: '', label: '' }
}

function trustBadge (t: Trust | null): Child {
  if (t == null) return null
  const text = t === 'verified' ? '✔ verified' : t === 'changed' ? '⚠ key changed' : 'unverified'
  return h('span', { class: `trust trust-${t}`, title: t === 'changed' ? 'this contact’s key differs from the one first seen: compare safety numbers before trusting it' : t === 'verified' ? 'you compared the safety number' : 'signature valid; safety number not compared yet' }, text)
}

function totalUnread (): number {
  let n = 0
  for (const c of app.convs.values()) n += c.unread
  return n
}

// ---------- rendering ----------
function renderTop (): void {
  fill(meEl, h('bdi', { class: 'nick' }, app.me.nick || '…'), ' ', h('span', { class: 'fp', title: 'your fingerprint' }, app.me.fingerprint))
  const parts = [app.connected ? app.status.stage : 'not connected to the node (reconnecting)', `${app.status.relays} relays known`]
  if (app.status.privacy != null) parts.push(`privacy: ${app.status.privacy}`)
  fill(statusEl, h('span', { class: app.connected ? 'dot on' : 'dot off', 'aria-hidden': 'true' }), parts.join(' · '))
  bellEl.hidden = !('Notification' in window) || Notification.permission !== 'default'
  const n = totalUnread()
  document.title = n > 0 ? `(${n}) p2pchat` : 'p2pchat'
}

const requestEls = new Keyed()
function renderRequests (): void {
  requestsEl.hidden = app.requests.length === 0
  const heading = requestEls.get('h2', '', () => h('h2', {}, 'Contact requests'))
  const els = app.requests.map(r => requestEls.get(r.nick, JSON.stringify([r.fingerprint, r.messages]), () => h('div', { class: 'request', 'data-nick': r.nick },
    h('bdi', { class: 'nick' }, r.nick), ' ', h('span', { class: 'fp' }, r.fingerprint), ` · ${r.messages} message${r.messages === 1 ? '' : 's'}`,
    h('div', { class: 'actions' },
      h('button', { type: 'button', onclick: () => { void answerRequest('accept', r.nick) } }, 'Accept'),
      h('button', { type: 'button', onclick: () => { void answerRequest('deny', r.nick) } }, 'Deny'),
      h('button', { type: 'button', class: 'danger', onclick: () => { void answerRequest('block', r.nick) } }, 'Block')))))
  reconcile(requestsEl, [heading, ...els])
  requestEls.prune(new Set(['h2', ...app.requests.map(r => r.nick)]))
}

function sortedConvs (): Conv[] {
  return [...app.convs.values()].sort((a, b) => (b.last?.ts ?? 0) - (a.last?.ts ?? 0) || a.nick.localeCompare(b.nick))
}

const convEls = new Keyed<HTMLButtonElement>()
function renderList (): void {
  const convs = sortedConvs()
  if (convs.length === 0) { fill(listEl, h('p', { class: 'hint' }, 'No conversations yet.')); return }
  const els = convs.map(c => convEls.get(c.nick, JSON.stringify([c.trust, c.unread, c.last?.direction, c.last?.text, c.nick === app.open]),
    () => h('button', { type: 'button', 'data-nick': c.nick, onclick: () => { void openConv(c.nick) } }),
    el => {
      el.className = `conv${c.nick === app.open ? ' current' : ''}`
      if (c.nick === app.open) el.setAttribute('aria-current', 'true')
      else el.removeAttribute('aria-current')
      fill(el,
        h('span', { class: 'row' }, h('bdi', { class: 'nick' }, c.nick), trustBadge(c.trust), c.unread > 0 ? h('span', { class: 'unread', 'aria-label': `${c.unread} unread` }, String(c.unread)) : null),
        c.last != null ? h('span', { class: 'last', dir: 'auto' }, (c.last.direction === 'out' ? 'You: ' : '') + c.last.text.slice(0, 80)) : null)
    }))
  reconcile(listEl, els)
  convEls.prune(new Set(convs.map(c => c.nick)))
}

function renderHead (): void {
  const c = app.open == null ? undefined : app.convs.get(app.open)
  chatHead.hidden = c == null
  empty.hidden = c != null
  messagesEl.hidden = c == null
  composerForm.hidden = c == null
  composer.disabled = c == null
  if (c == null) return
  fill(chatHead,
    h('button', { type: 'button', class: 'back', 'aria-label': 'back to the conversations', onclick: () => { closeConv() } }, '←'),
    h('h1', {}, h('bdi', { class: 'nick' }, c.nick)), trustBadge(c.trust),
    c.fingerprint != null ? h('span', { class: 'fp', title: 'their fingerprint' }, c.fingerprint) : null,
    h('button', { type: 'button', class: 'verify-btn', onclick: () => { void showVerify(c.nick) } }, 'Verify'))
  banner.hidden = c.trust !== 'changed'
  fill(banner, `⚠ ${c.nick}'s key changed since you first talked. It may be a new device, or someone else: compare the safety number before you trust it.`)
}

function paintMessage (li: Element, c: Conv, m: Msg): void {
  const mark = MARKS[m.state] ?? MARKS.queued
  const meta: Child[] = [h('time', { datetime: new Date(m.ts).toISOString() }, clock(m.ts))]
  if (m.direction === 'out') {
    meta.push(h('span', { class: 'state', 'data-state': m.state, title: m.state === 'failed' && m.reason != null ? `failed: ${m.reason}` : mark.label, 'aria-label': mark.label }, mark.mark))
    if (m.state === 'failed') {
      if (m.reason != null) meta.push(h('span', { class: 'reason' }, m.reason))
      meta.push(h('button', { type: 'button', class: 'retry', onclick: () => { void retry(c, m) } }, 'Retry'))
    }
    if (m.state === 'failed' || m.state === 'queued') meta.push(h('button', { type: 'button', class: 'cancel', onclick: () => { void cancel(c, m) } }, 'Cancel'))
  } else if (!m.verified) {
    meta.push(h('span', { class: 'unverified', title: m.reason ?? 'not verified' }, `! ${m.reason ?? 'not verified'}`))
  }
  li.className = `msg ${m.direction}`
  fill(li, h('div', { class: 'text', dir: 'auto' }, m.text), h('div', { class: 'meta' }, ...meta))
}

const messageEls = new Keyed()
function renderMessages (): void {
  const c = app.open == null ? undefined : app.convs.get(app.open)
  if (c == null) { fill(messagesEl); return }
  const atBottom = messagesEl.scrollHeight - messagesEl.scrollTop - messagesEl.clientHeight < 40
  const els: Element[] = []
  const keys = new Set<string>()
  let lastDay = ''
  for (const m of c.messages ?? []) {
    const d = day(m.ts)
    if (d !== lastDay) {
      const key = `day ${c.nick} ${d}`
      keys.add(key)
      els.push(messageEls.get(key, '', () => h('li', { class: 'day', role: 'separator' }, d)))
      lastDay = d
    }
    const key = `${c.nick} ${m.id}`
    keys.add(key)
    els.push(messageEls.get(key, JSON.stringify([m.state, m.reason, m.verified, m.ts, m.text]), () => h('li', { 'data-id': m.id }), el => { paintMessage(el, c, m) }))
  }
  if (c.messages == null) els.push(h('li', { class: 'hint' }, 'Loading…'))
  else if (c.messages.length === 0) els.push(h('li', { class: 'hint' }, `No messages with ${c.nick} yet. Say hello.`))
  reconcile(messagesEl, els)
  messageEls.prune(keys)
  if (atBottom || c.messages?.length === 0) messagesEl.scrollTop = messagesEl.scrollHeight
}

function render (): void {
  renderTop()
  renderRequests()
  renderList()
  renderHead()
  renderMessages()
}

// ---------- talking to the node ----------
async function loadConversations (): Promise<void> {
  try {
    const e = await client.call({ cmd: 'conversations' })
    for (const x of (e.conversations as Json[] | undefined) ?? []) {
      const c = conv(String(x.nick))
      c.fingerprint = typeof x.fingerprint === 'string' ? x.fingerprint : c.fingerprint
      c.trust = asTrust(x.trust) ?? c.trust
      c.unread = c.nick === app.open ? 0 : Number(x.unread ?? 0)
      c.last = x.last != null && typeof x.last === 'object' ? asMsg(x.last as Json) : c.last
    }
  } catch (err) {
    if (!unsupported(err)) throw err
    // an older node: its contacts, each with its last message
    const e = await client.call({ cmd: 'contacts' })
    for (const x of ((e.contacts as Json[] | undefined) ?? []).slice(0, FALLBACK_CONTACTS)) {
      const c = conv(String(x.nick))
      c.fingerprint = String(x.fingerprint)
      c.trust = x.pending != null ? 'changed' : 'unverified'
      const hist = await client.call({ cmd: 'history', nick: c.nick, limit: 1 })
      const last = (hist.messages as Json[] | undefined)?.[0]
      if (last != null) c.last = asMsg(last)
    }
  }
  render()
}

async function loadRequests (): Promise<void> {
  try {
    const e = await client.call({ cmd: 'requests' })
    app.requests = ((e.requests as Json[] | undefined) ?? []).map(r => ({ nick: String(r.nick), fingerprint: String(r.fingerprint), messages: Number(r.messages ?? 0) }))
  } catch (err) {
    if (!unsupported(err)) throw err
    app.requestsSupported = false
  }
  renderRequests()
}

async function loadStatus (): Promise<void> {
  try {
    const e = await client.call({ cmd: 'status' })
    app.status.relays = Number(e.relays ?? app.status.relays)
    if (typeof e.stage === 'string') app.status.stage = e.stage
    app.status.privacy = typeof e.privacy === 'string' ? e.privacy : null
  } catch (err) {
    if (!unsupported(err)) throw err
    const e = await client.call({ cmd: 'relays' })
    app.status.relays = Number(e.count ?? 0)
  }
  renderTop()
}

async function loadHistory (c: Conv): Promise<void> {
  const e = await client.call({ cmd: 'history', nick: c.nick, limit: HISTORY_LIMIT })
  c.messages = ((e.messages as Json[] | undefined) ?? []).map(asMsg)
  for (const m of c.messages) app.owner.set(m.id, c.nick)
  if (c.messages.length > 0) c.last = c.messages[c.messages.length - 1]
  if (app.open === c.nick) renderMessages()
}

async function markRead (c: Conv): Promise<void> {
  c.unread = 0
  renderList()
  renderTop()
  try { await client.call({ cmd: 'read', nick: c.nick }) } catch (err) { if (!unsupported(err)) throw err }
}

async function openConv (nick: string): Promise<void> {
  const c = conv(nick)
  app.open = nick
  root.setAttribute('data-view', 'chat')
  sendNote.textContent = ''
  render()
  composer.focus()
  await Promise.all([loadHistory(c), markRead(c)])
}

function closeConv (): void {
  const was = app.open
  app.open = null
  root.setAttribute('data-view', 'list')
  render()
  if (was != null) listEl.querySelector<HTMLButtonElement>(`button[data-nick="${CSS.escape(was)}"]`)?.focus()
}

async function lookUp (): Promise<void> {
  const nick = newInput.value.trim()
  if (nick === '') return
  newNote.textContent = `Looking ${nick} up…`
  try {
    const e = await client.call({ cmd: 'whois', nick })
    if (e.found !== true) { newNote.textContent = `Nobody is called ${nick} on the network.`; return }
    const c = conv(String(e.nick))
    c.fingerprint = String(e.fingerprint)
    if (e.pin === 'changed') c.trust = 'changed'
    else c.trust ??= 'unverified'
    newNote.textContent = `Found ${c.nick}: fingerprint ${c.fingerprint}${e.pin === 'new' ? ' (new contact: compare it with them to verify)' : ''}`
    newInput.value = ''
    await openConv(c.nick)
  } catch (err) {
    newNote.textContent = err instanceof CallError ? err.message : String(err)
  }
}

async function send (): Promise<void> {
  const c = app.open == null ? undefined : app.convs.get(app.open)
  const text = composer.value
  if (c == null || text.trim() === '') return
  sendNote.textContent = ''
  try {
    const e = await client.call({ cmd: 'send', to: c.nick, text })
    const m: Msg = { id: String(e.id), direction: 'out', text, ts: Date.now(), state: 'sent', verified: true, reason: null }
    app.owner.set(m.id, c.nick)
    c.messages?.push(m)
    c.last = m
    if (composer.value === text) composer.value = ''
    messagesEl.scrollTop = messagesEl.scrollHeight
    renderList()
    renderMessages()
    messagesEl.scrollTop = messagesEl.scrollHeight
  } catch (err) {
    // the text stays in the box: nothing typed is lost
    sendNote.textContent = err instanceof CallError ? err.message : String(err)
  }
}

async function retry (c: Conv, m: Msg): Promise<void> {
  try {
    const e = await client.call({ cmd: 'retry', id: m.id })
    if (e.ok !== true) { sendNote.textContent = 'That message cannot be retried (it may have been delivered or cancelled).'; return }
    if (typeof e.id === 'string' && e.id !== m.id) { app.owner.set(e.id, c.nick); m.id = e.id }
    m.state = 'sent'
    m.reason = null
  } catch (err) {
    if (!unsupported(err)) { sendNote.textContent = (err as Error).message; return }
    // an older node: send the text again as a new message
    const e = await client.call({ cmd: 'send', to: c.nick, text: m.text })
    const again: Msg = { ...m, id: String(e.id), ts: Date.now(), state: 'sent', reason: null }
    app.owner.set(again.id, c.nick)
    c.messages?.push(again)
  }
  renderMessages()
}

async function cancel (c: Conv, m: Msg): Promise<void> {
  try {
    const e = await client.call({ cmd: 'cancel', id: m.id })
    if (e.ok !== true) { sendNote.textContent = 'That message cannot be cancelled any more.'; return }
    if (c.messages != null) c.messages = c.messages.filter(x => x.id !== m.id)
    renderMessages()
  } catch (err) {
    sendNote.textContent = unsupported(err) ? 'This node cannot cancel a message yet.' : (err as Error).message
  }
}

async function answerRequest (cmd: 'accept' | 'deny' | 'block', nick: string): Promise<void> {
  try {
    const e = await client.call({ cmd, nick })
    if (e.ok === false) { newNote.textContent = `${cmd}: ${nick} has no pending request`; return }
    app.requests = app.requests.filter(r => r.nick !== nick)
    renderRequests()
    if (cmd === 'accept') await loadConversations()
  } catch (err) {
    newNote.textContent = unsupported(err) ? `This node cannot ${cmd} requests yet.` : (err as Error).message
  }
}

async function showVerify (nick: string): Promise<void> {
  const c = conv(nick)
  const body = h('div', { class: 'verify-body' })
  fill(dialog, h('h2', {}, 'Verify ', h('bdi', {}, nick)), body, h('form', { method: 'dialog' }, h('button', { type: 'submit' }, 'Close')))
  fill(body, 'Loading…')
  if (!dialog.open) dialog.showModal()
  try {
    const e = await client.call({ cmd: 'verify', nick })
    fill(body,
      h('p', {}, `Compare this safety number with ${nick}, in person or on a call you trust. If it is the same on both screens, nobody is in between.`),
      h('p', { class: 'safety' }, String(e.safetyNumber)),
      h('p', {}, 'Yours: ', h('span', { class: 'fp' }, String(e.mine)), h('br'), 'Theirs: ', h('span', { class: 'fp' }, String(e.theirs))),
      trustBadge(asTrust(e.trust)),
      asTrust(e.trust) === 'verified' ? null : h('button', {
        type: 'button', class: 'confirm',
        onclick: async () => {
          try {
            const v = await client.call({ cmd: 'verify', nick, confirm: true })
            c.trust = asTrust(v.trust) ?? 'verified'
            dialog.close()
            render()
          } catch (err) { append(body, [h('p', { class: 'note' }, (err as Error).message)]) }
        }
      }, 'They match: mark as verified'))
  } catch (err) {
    if (!unsupported(err)) { fill(body, (err as Error).message); return }
    fill(body,
      h('p', {}, `This node cannot compute safety numbers yet. Compare both fingerprints with ${nick} out of band:`),
      h('p', {}, 'Yours: ', h('span', { class: 'fp' }, app.me.fingerprint), h('br'), 'Theirs: ', h('span', { class: 'fp' }, c.fingerprint ?? 'unknown: look them up first')),
      c.trust === 'changed'
        ? h('button', {
          type: 'button', class: 'confirm',
          onclick: async () => {
            try {
              const v = await client.call({ cmd: 'accept', nick })
              if (v.ok === true) c.trust = 'unverified'
              dialog.close()
              render()
            } catch (e2) { append(body, [h('p', { class: 'note' }, (e2 as Error).message)]) }
          }
        }, 'Accept the new key')
        : null)
  }
}

async function askNotify (): Promise<void> {
  if (!('Notification' in window)) return
  await Notification.requestPermission()
  renderTop()
}

function notify (from: string, text: string): void {
  if (!document.hidden || !('Notification' in window) || Notification.permission !== 'granted') return
  const n = new Notification(`p2pchat: ${from}`, { body: text.slice(0, NOTIFY_BODY_CHARS), tag: `p2pchat-${from}` })
  n.onclick = () => { window.focus(); void openConv(from) }
}

/** An event about a message this tab did not send (another tab did): reload that conversation. */
function unknownId (to: unknown): void {
  if (typeof to !== 'string' || to === '') return
  const known = app.convs.has(to)
  const c = conv(to)
  if (!known) {
    // a conversation another tab (or a script on the same node) started: listed, with its last message
    c.trust ??= 'unverified'
    c.messages = []
    void loadHistory(c).then(renderList)
    return
  }
  if (c.messages != null) void loadHistory(c)
}

function onEvent (e: Json): void {
  switch (e.event) {
    case 'ready':
      app.me = { nick: String(e.nick), fingerprint: String(e.fingerprint) }
      app.status.relays = Number(e.relays ?? 0)
      app.status.stage = 'online'
      renderTop()
      return
    case 'status':
      app.status.stage = String(e.stage)
      renderTop()
      return
    case 'message': {
      const from = String(e.from)
      const m = asMsg({ ...e, direction: 'in', state: 'received' })
      if (e.request === true) {
        const r = app.requests.find(x => x.nick === from)
        if (r != null) r.messages++
        else app.requests.push({ nick: from, fingerprint: String(e.fingerprint), messages: 1 })
        renderRequests()
        notify(from, 'wants to chat with you')
        return
      }
      const c = conv(from)
      c.fingerprint = String(e.fingerprint)
      c.trust = asTrust(e.trust) ?? c.trust ?? 'unverified'
      insert(c, m)
      if (c.last == null || m.ts >= c.last.ts) c.last = m
      app.owner.set(m.id, from)
      if (app.open === from && !document.hidden) void markRead(c)
      else c.unread++
      notify(from, m.text)
      announcer.textContent = `${from}: ${m.text.slice(0, NOTIFY_BODY_CHARS)}`
      renderTop()
      renderList()
      if (app.open === from) renderMessages()
      return
    }
    case 'request':
      if (!app.requests.some(r => r.nick === e.nick)) app.requests.push({ nick: String(e.nick), fingerprint: String(e.fingerprint), messages: 0 })
      renderRequests()
      return
    case 'attempt': case 'queued': case 'stored': case 'delivered': case 'failed': case 'cancelled': {
      const id = String(e.id)
      const nick = app.owner.get(id)
      const c = nick == null ? undefined : app.convs.get(nick)
      const m = c?.messages?.find(x => x.id === id) ?? (c?.last?.id === id ? c.last : undefined)
      if (c == null || m == null) { unknownId(e.to); return }
      if (e.event === 'cancelled') { if (e.ok === false) return; if (c.messages != null) c.messages = c.messages.filter(x => x.id !== id); renderMessages(); return }
      const next: State = e.event === 'attempt' ? 'sent' : e.event as State
      // a late attempt or queued never undoes a stored or delivered
      if ((m.state === 'delivered') || (m.state === 'stored' && next !== 'delivered' && next !== 'failed')) return
      m.state = next
      m.reason = e.event === 'failed' ? String(e.reason ?? '') : null
      if (app.open === c.nick) renderMessages()
      return
    }
    case 'key-changed': {
      const c = conv(String(e.nick))
      c.trust = 'changed'
      render()
      return
    }
    case 'warning':
      newNote.textContent = String(e.message)
      return
    default:
  }
}

// ---------- keyboard ----------
function onKey (e: KeyboardEvent): void {
  const typing = e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement
  if ((e.key === 'k' && (e.ctrlKey || e.metaKey)) || (e.key === '/' && !typing)) { e.preventDefault(); newInput.focus(); return }
  if (e.altKey && (e.key === 'ArrowUp' || e.key === 'ArrowDown')) {
    const convs = sortedConvs()
    if (convs.length === 0) return
    const i = convs.findIndex(c => c.nick === app.open)
    const next = convs[(i + (e.key === 'ArrowDown' ? 1 : -1) + convs.length) % convs.length]
    e.preventDefault()
    void openConv(next.nick)
    return
  }
  if (e.key === 'Escape' && !dialog.open && app.open != null) { e.preventDefault(); closeConv() }
}

composer.addEventListener('keydown', (e: KeyboardEvent) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); void send() }
})

document.addEventListener('keydown', onKey)
document.addEventListener('visibilitychange', () => {
  const c = app.open == null ? undefined : app.convs.get(app.open)
  if (!document.hidden && c != null && c.unread > 0) void markRead(c)
})

client.onEvent = onEvent
client.onState = (state) => {
  app.connected = state === 'open'
  renderTop()
  if (state !== 'open') return
  const reload = async (): Promise<void> => {
    await loadConversations()
    await Promise.all([loadRequests(), loadStatus()])
    const c = app.open == null ? undefined : app.convs.get(app.open)
    if (c != null) await loadHistory(c)
  }
  reload().catch((err: unknown) => { newNote.textContent = (err as Error).message })
}

function showFatal (err: unknown): void {
  newNote.textContent = `error: ${(err as Error)?.message ?? String(err)}`
}
window.addEventListener('unhandledrejection', e => { showFatal(e.reason) })

document.getElementById('app')?.replaceWith(root)
render()
client.connect()
setInterval(() => { if (app.connected) loadStatus().catch(() => {}) }, STATUS_REFRESH_MS)
