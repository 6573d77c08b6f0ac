/**
 * Sphinx packets, version 2 (Danezis & Goldberg 2009) over X25519, in the shape of Lightning's BOLT #4:
 * pure functions, no networking. The byte layout, every label and the threat model are in ./SPEC.md;
 * the layout is fixed by ../PROTOCOL-V2.md section 3.
 *
 *   packet = version 0x02 (1) | alpha (32) | beta (5 * 80) | gamma (32) | body (2607)  = 3072 bytes
 *   slot   = command (1) | address 32, or id 16 | 0^16 in final slots | extensions (15) | next gamma (32)
 *
 * Limits: 1..MAX_HOPS (5) hops; payload 0..PAYLOAD_CAPACITY (2589) bytes; a reply block is SURB_SIZE
 * (529) bytes; a slot's extensions fit in 15 bytes (a delay takes 6).
 *
 * createPacket / createSurb build headers; processPacket peels one layer at a hop and never throws;
 * packetFromSurb lets anyone answer through a reply block; openReply opens the answer at its creator.
 *
 * Speed (issue 13): processPacket works in module scratch buffers (see ./keys.ts) and allocates only
 * what it returns: the peeled packet (or payload), the replay tag and the next address.
 */

import { randomBytes, timingSafeEqual } from 'node:crypto'
import {
  ADDRESS_LENGTH, ALPHA_OFFSET, BETA_OFFSET, BODY_LENGTH, COMMAND_CLIENT, COMMAND_RELAY, COMMAND_REPLY, COMMAND_SERVICE,
  DELAY_LENGTH, EXTENSION_DELAY, EXTENSION_OPTIONAL_FROM, EXTENSIONS_LENGTH, GAMMA_OFFSET, HEADER_LENGTH, ID_LENGTH,
  INTEGRITY_LENGTH, KEY_LENGTH, LABEL_MU, LABEL_PAD, LABEL_PI, LABEL_REPLAY, LABEL_RHO, LENGTH_PREFIX_LENGTH, MAC_LENGTH,
  MAX_DELAY_MS, MAX_HOPS, PACKET_SIZE, PACKET_VERSION, PAYLOAD_CAPACITY, PAYLOAD_OFFSET, ROUTING_INFO_LENGTH, SLOT_ADDRESS,
  SLOT_EXTENSIONS, SLOT_GAMMA, SLOT_SIZE, SURB_SIZE
} from './constants.ts'
import { InvalidIdError, InvalidPathError, InvalidSurbError, InvalidSurbSecretError, PayloadTooLargeError, RandomSourceError } from './errors.ts'
import { generateX25519KeyPair, x25519BaseRaw, x25519Raw } from '../crypto/keys.ts'
import { chacha20, deriveKey, hmacSha256, sha256, wipe } from './keys.ts'
import type { OnionPrivateKey } from './keys.ts'
import { lionessDecrypt, lionessEncrypt, lionessKey } from './lioness.ts'

export {
  ADDRESS_LENGTH, BODY_LENGTH, HEADER_LENGTH, ID_LENGTH, MAX_HOPS, PACKET_SIZE, PACKET_VERSION, PAYLOAD_CAPACITY,
  REPLAY_TAG_LENGTH, SURB_SIZE
} from './constants.ts'
export { onionPrivateKeyFromRaw } from './keys.ts'
export type { OnionPrivateKey } from './keys.ts'

/** A fresh onion key pair as raw bytes: publish `publicKey`, keep `privateKey` (mode 0600). */
export function generateOnionKey (): { publicKey: Uint8Array, privateKey: Uint8Array } {
  return generateX25519KeyPair()
}

/** One hop of a path. */
export interface Hop {
  /** The hop's address: the 32-byte Ed25519 public key of its transport peer id. */
  address: Uint8Array
  /** Its raw X25519 onion key (a relay's epoch key, or a user's client key). */
  onionKey: Uint8Array
  /** Reached as the connected client of the previous hop: the previous slot says CLIENT, not RELAY. Never on the first hop. */
  client?: boolean
  /** A delay extension in THIS hop's slot: the hop holds the packet this long (ms, u32) before forwarding. Not on the last hop. */
  delayMs?: number
}

/** Returns n random bytes. Tests pass a deterministic one; the default is crypto.randomBytes. */
export type RandomSource = (n: number) => Uint8Array

export interface CreatePacketOptions {
  /** The 16-byte id the final hop reports; random when absent. */
  id?: Uint8Array
  random?: RandomSource
}

export interface OutgoingPacket {
  /** Address of the hop to send `packet` to. */
  firstHop: Uint8Array
  /** PACKET_SIZE bytes. */
  packet: Uint8Array
  /** The id the final hop will report. */
  id: Uint8Array
}

export type DropReason =
  | 'size' // not PACKET_SIZE bytes (or not bytes at all)
  | 'version' // first byte is not PACKET_VERSION
  | 'bad-point' // alpha is not a canonical u-coordinate, or gives an all-zero X25519 result (small-order point)
  | 'mac' // gamma does not match: tampered, not for this key (try the previous epoch's key), or garbage
  | 'slot-type' // authenticated routing slot with an unknown command
  | 'next-hop' // authenticated RELAY / CLIENT slot whose address is all zero
  | 'extension' // authenticated slot with an unknown required extension (type < 0x80) or a malformed extension list
  | 'payload-integrity' // SERVICE final hop: the peeled body does not start with 16 zero bytes or has a bad length
  | 'internal' // an unexpected exception, caught so that processPacket never throws

export interface ForwardResult {
  ok: true
  type: 'forward'
  /** 'relay': send to the relay `next`; 'client': hand to the connected client `next`. */
  command: 'relay' | 'client'
  /** Address (32 bytes) of the next hop. */
  next: Uint8Array
  /** Milliseconds to hold the packet before forwarding (the slot's delay extension; 0 without one). */
  delayMs: number
  /** The peeled packet, PACKET_SIZE bytes. */
  packet: Uint8Array
  /** Same shared secret => same tag: drop the packet if the tag was seen in this key's epoch. */
  replayTag: Uint8Array
}

export interface FinalResult {
  ok: true
  type: 'final'
  /** 'service': `payload` is the sender's bytes (integrity checked), a request for this node.
   *  'reply': a reply through one of our reply blocks, `payload` is the body (BODY_LENGTH bytes) for openReply. */
  command: 'service' | 'reply'
  /** The 16-byte message id, or the reply block's id for a reply. */
  id: Uint8Array
  payload: Uint8Array
  replayTag: Uint8Array
}

export interface DropResult {
  ok: false
  reason: DropReason
}

export type ProcessResult = ForwardResult | FinalResult | DropResult

/** What a reply block's creator keeps to open the reply (SPEC.md "Reply blocks"); see surbSecretToBytes. */
export interface SurbSecret {
  /** The reply block id the final hop reports. */
  id: Uint8Array
  /** The key the replier encrypts the body with. */
  payloadKey: Uint8Array
  /** Each hop's LIONESS master key (key_pi), first hop first; the last is the creator's own. */
  hopPayloadKeys: Uint8Array[]
}

export interface CreatedSurb {
  /** SURB_SIZE bytes: first-hop address | header | payload key. Hand it to the replier. */
  surb: Uint8Array
  id: Uint8Array
  secret: SurbSecret
}

const COMMAND_NAMES: Readonly<Record<number, ForwardResult['command'] | FinalResult['command']>> = {
  [COMMAND_RELAY]: 'relay',
  [COMMAND_CLIENT]: 'client',
  [COMMAND_SERVICE]: 'service',
  [COMMAND_REPLY]: 'reply'
}

const ZERO_ROUTING_INFO = new Uint8Array(ROUTING_INFO_LENGTH)
/** The rho keystream covers beta and one appended slot. */
const STREAM_LENGTH = ROUTING_INFO_LENGTH + SLOT_SIZE // 480

// Scratch for processPacket (see ./keys.ts: synchronous use only, never handed out, secrets wiped).
// One arena, so that the wipe after each packet is one native call, not seven (bench/sphinx.ts).
const hopArena = new Uint8Array(KEY_LENGTH + KEY_LENGTH + MAC_LENGTH + STREAM_LENGTH + 2 * KEY_LENGTH + KEY_LENGTH + 4 * KEY_LENGTH)
let arenaAt = 0
function scratch (n: number): Uint8Array { const view = hopArena.subarray(arenaAt, arenaAt + n); arenaAt += n; return view }
const hopSecret = scratch(KEY_LENGTH)
const hopKey = scratch(KEY_LENGTH)
const hopMac = scratch(MAC_LENGTH)
const hopRouting = scratch(STREAM_LENGTH)
const hopBlindInput = scratch(2 * KEY_LENGTH)
const hopBlinder = scratch(KEY_LENGTH)
const hopLioness = scratch(4 * KEY_LENGTH)

function defaultRandom (n: number): Uint8Array {
  return randomBytes(n)
}

function draw (random: RandomSource, n: number): Uint8Array {
  const bytes = random(n)
  if (!(bytes instanceof Uint8Array) || bytes.length !== n) throw new RandomSourceError()
  return bytes
}

/** A fresh copy as a plain Uint8Array (Buffer#slice returns a view, so never call .slice on input bytes). */
function copy (bytes: Uint8Array, start = 0, end = bytes.length): Uint8Array {
  return new Uint8Array(bytes.subarray(start, end))
}

/**
 * Is `u` the canonical encoding of an X25519 u-coordinate (top bit clear, value < p = 2^255 - 19)?
 * X25519 ignores the top bit and reduces mod p, so without this check 20 encodings of one alpha would
 * pass the same hop with the same MAC and replay tag (they would then fail at the next hop).
 */
function isCanonicalU (u: Uint8Array): boolean {
  if (u[31] & 0x80) return false
  if (u[31] !== 0x7f || u[0] < 0xed) return true
  for (let i = 1; i < 31; i++) if (u[i] !== 0xff) return true
  return false
}

function allZero (bytes: Uint8Array): boolean {
  let acc = 0
  for (let i = 0; i < bytes.length; i++) acc |= bytes[i]
  return acc === 0
}

// ---------------------------------------------------------------------------------------------
// Extensions (SPEC.md "Extensions")
// ---------------------------------------------------------------------------------------------

/** Writes the extension list of a slot (at `at` in `slot`, EXTENSIONS_LENGTH bytes, already zero). */
function writeExtensions (slot: Uint8Array, at: number, delayMs: number | undefined): void {
  if (delayMs === undefined || delayMs === 0) return
  slot[at] = EXTENSION_DELAY
  slot[at + 1] = DELAY_LENGTH
  slot[at + 2] = delayMs >>> 24
  slot[at + 3] = (delayMs >>> 16) & 0xff
  slot[at + 4] = (delayMs >>> 8) & 0xff
  slot[at + 5] = delayMs & 0xff
}

/**
 * Reads the extension list at `at`: the delay in ms (0 without one), or -1 when the hop must drop the
 * packet: an unknown type below 0x80, an entry that runs past the 15 bytes, a delay of another length
 * or given twice, or non-zero bytes after the list's end (a type byte 0x00).
 */
function readExtensions (slot: Uint8Array, at: number): number {
  const end = at + EXTENSIONS_LENGTH
  let delay = -1
  let p = at
  while (p < end) {
    const type = slot[p]
    if (type === 0) {
      for (let q = p + 1; q < end; q++) if (slot[q] !== 0) return -1
      break
    }
    if (p + 2 > end) return -1
    const length = slot[p + 1]
    const value = p + 2
    if (value + length > end) return -1
    if (type === EXTENSION_DELAY) {
      if (length !== DELAY_LENGTH || delay !== -1) return -1
      delay = ((slot[value] << 24) | (slot[value + 1] << 16) | (slot[value + 2] << 8) | slot[value + 3]) >>> 0
    } else if (type < EXTENSION_OPTIONAL_FROM) {
      return -1
    }
    p = value + length
  }
  return delay === -1 ? 0 : delay
}

// ---------------------------------------------------------------------------------------------
// Header construction (sender and reply-block creator)
// ---------------------------------------------------------------------------------------------

interface BuiltHeader {
  /** HEADER_LENGTH bytes: version | alpha | beta | gamma. */
  header: Uint8Array
  /** Each hop's shared secret s_i. */
  secrets: Uint8Array[]
}

function checkPath (path: Hop[]): void {
  if (!Array.isArray(path) || path.length < 1 || path.length > MAX_HOPS) throw new InvalidPathError()
  path.forEach((hop, i) => {
    if (hop == null || !(hop.address instanceof Uint8Array) || hop.address.length !== ADDRESS_LENGTH || allZero(hop.address) ||
      !(hop.onionKey instanceof Uint8Array) || hop.onionKey.length !== KEY_LENGTH) {
      throw new InvalidPathError()
    }
    if (hop.client === true && i === 0) throw new InvalidPathError('the first hop cannot be a client: the sender hands the packet to it')
    if (hop.delayMs !== undefined) {
      if (!Number.isInteger(hop.delayMs) || hop.delayMs < 0 || hop.delayMs > MAX_DELAY_MS) throw new InvalidPathError('a delay is an integer of 0..2^32-1 ms')
      if (hop.delayMs > 0 && i === path.length - 1) throw new InvalidPathError('the last hop forwards nothing: no delay there')
    }
  })
}

/**
 * Shared secrets, SPEC.md "Shared secrets and blinding":
 *   alpha_0 = X25519(x, 9); s_i = X25519(b_{i-1}, ... X25519(b_0, X25519(x, P_i)));
 *   b_i = SHA-256(alpha_i || s_i); alpha_{i+1} = X25519(b_i, alpha_i).
 * Hop i's secret costs i + 1 X25519 this way. When the last hop is the creator itself (a reply block
 * ends at its creator) and `lastKey` is its private key, its secret is computed as that hop will:
 * s_{n-1} = X25519(k, alpha_{n-1}), one X25519. The same bytes: both are the u-coordinate of
 * k' * x' * b_0' * ... * b_{n-2}' * G (primed: clamped), multiplied in another order.
 */
function sharedSecrets (path: Hop[], random: RandomSource, lastKey?: OnionPrivateKey): { alpha0: Uint8Array, secrets: Uint8Array[] } {
  const ephemeral = draw(random, KEY_LENGTH)
  const alpha0 = x25519BaseRaw(ephemeral)
  const blinders: Uint8Array[] = []
  const secrets: Uint8Array[] = []
  const blindInput = new Uint8Array(2 * KEY_LENGTH)
  let alpha = alpha0
  for (let i = 0; i < path.length; i++) {
    let s: Uint8Array
    try {
      if (lastKey !== undefined && i === path.length - 1) {
        s = x25519Raw(lastKey.scalar, alpha)
      } else {
        s = x25519Raw(ephemeral, path[i].onionKey)
        for (const b of blinders) s = x25519Raw(b, s)
      }
    } catch {
      throw new InvalidPathError(`onion key of hop ${i} is a small-order point`)
    }
    secrets.push(s)
    if (i === path.length - 1) break
    blindInput.set(alpha, 0)
    blindInput.set(s, KEY_LENGTH)
    const blinder = sha256(blindInput)
    blinders.push(blinder)
    alpha = x25519Raw(blinder, alpha)
  }
  wipe(ephemeral, blindInput, ...blinders)
  return { alpha0, secrets }
}

/**
 * Filler, SPEC.md "Filler": the bytes that hops 0..n-2 append (a zero slot each, then XOR with their
 * rho stream) and that end up at the tail of beta_{n-1}, so the sender can MAC it.
 */
function filler (secrets: Uint8Array[]): Uint8Array {
  const n = secrets.length
  const out = new Uint8Array((n - 1) * SLOT_SIZE)
  const zeros = new Uint8Array(STREAM_LENGTH)
  const stream = new Uint8Array(STREAM_LENGTH)
  for (let i = 0; i < n - 1; i++) {
    const length = (i + 1) * SLOT_SIZE
    chacha20(deriveKey(LABEL_RHO, secrets[i]), zeros, stream)
    const offset = STREAM_LENGTH - length
    for (let j = 0; j < length; j++) out[j] ^= stream[offset + j]
  }
  return out
}

function buildHeader (path: Hop[], finalCommand: number, id: Uint8Array, random: RandomSource, lastKey?: OnionPrivateKey): BuiltHeader {
  const { alpha0, secrets } = sharedSecrets(path, random, lastKey)
  const n = path.length

  // Initial fill of beta: ChaCha20 under key_pad = HMAC("pad", seed), seed random (BOLT #4 uses its session key).
  const routing = chacha20(deriveKey(LABEL_PAD, draw(random, KEY_LENGTH)), ZERO_ROUTING_INFO)
  const fill = filler(secrets)
  const key = new Uint8Array(KEY_LENGTH)
  let gamma: Uint8Array = new Uint8Array(MAC_LENGTH) // the final hop's "next gamma" is all zero
  for (let i = n - 1; i >= 0; i--) {
    routing.copyWithin(SLOT_SIZE, 0, ROUTING_INFO_LENGTH - SLOT_SIZE)
    routing.fill(0, 0, SLOT_SIZE)
    if (i === n - 1) {
      routing[0] = finalCommand
      routing.set(id, SLOT_ADDRESS) // id | 0^16
    } else {
      routing[0] = path[i + 1].client === true ? COMMAND_CLIENT : COMMAND_RELAY
      routing.set(path[i + 1].address, SLOT_ADDRESS)
    }
    writeExtensions(routing, SLOT_EXTENSIONS, path[i].delayMs)
    routing.set(gamma, SLOT_GAMMA)
    chacha20(deriveKey(LABEL_RHO, secrets[i], key), routing, routing)
    if (i === n - 1) routing.set(fill, ROUTING_INFO_LENGTH - fill.length)
    gamma = hmacSha256(deriveKey(LABEL_MU, secrets[i], key), routing, new Uint8Array(MAC_LENGTH), PACKET_VERSION)
  }
  wipe(key)

  const header = new Uint8Array(HEADER_LENGTH)
  header[0] = PACKET_VERSION
  header.set(alpha0, ALPHA_OFFSET)
  header.set(routing, BETA_OFFSET)
  header.set(gamma, GAMMA_OFFSET)
  return { header, secrets }
}

/** The plaintext body, SPEC.md "Body": 16 zero bytes | length (u16 BE) | payload | random padding; into `body`. */
function plainBody (payload: Uint8Array, random: RandomSource, body: Uint8Array): void {
  const start = INTEGRITY_LENGTH + LENGTH_PREFIX_LENGTH
  body.fill(0, 0, INTEGRITY_LENGTH)
  body[INTEGRITY_LENGTH] = payload.length >>> 8
  body[INTEGRITY_LENGTH + 1] = payload.length & 0xff
  body.set(payload, start)
  const padding = BODY_LENGTH - start - payload.length
  if (padding > 0) body.set(draw(random, padding), start + payload.length)
}

/** Undo plainBody; null when the integrity check fails. */
function openBody (body: Uint8Array): Uint8Array | null {
  if (!allZero(body.subarray(0, INTEGRITY_LENGTH))) return null
  const length = (body[INTEGRITY_LENGTH] << 8) | body[INTEGRITY_LENGTH + 1]
  if (length > PAYLOAD_CAPACITY) return null
  const start = INTEGRITY_LENGTH + LENGTH_PREFIX_LENGTH
  return copy(body, start, start + length)
}

function checkPayload (payload: Uint8Array): void {
  if (!(payload instanceof Uint8Array)) throw new TypeError('payload must be a Uint8Array')
  if (payload.length > PAYLOAD_CAPACITY) throw new PayloadTooLargeError()
}

/**
 * Build a packet that carries `payload` (at most PAYLOAD_CAPACITY bytes) along `path`; the last hop
 * gets a SERVICE layer (the payload is a request for it). Throws InvalidPathError, PayloadTooLargeError,
 * InvalidIdError, RandomSourceError. Randomness is drawn in this order (the test vectors depend on it):
 * id (16, unless given), ephemeral scalar (32), pad seed (32), body padding (PAYLOAD_CAPACITY - payload.length, if any).
 *
 * The same as `finishPacket(preparePacket(path, opts), payload, opts)`: the header (every X25519 of the
 * packet) first, the body after.
 */
export function createPacket (path: Hop[], payload: Uint8Array, opts: CreatePacketOptions = {}): OutgoingPacket {
  checkPayload(payload)
  return finishPacket(preparePacket(path, opts), payload, opts)
}

/**
 * A packet's header made ahead of its payload (issue 13: what a sender can build in idle time): the
 * header, the first hop and the id, and each hop's shared secret until `finishPacket` wraps the body
 * with them and wipes them (`discardPacket` wipes them unused). Use it once.
 */
export interface PreparedPacket {
  readonly firstHop: Uint8Array
  readonly id: Uint8Array
  /** HEADER_LENGTH bytes */
  readonly header: Uint8Array
  /** each hop's shared secret s_i; emptied once used or discarded */
  readonly secrets: Uint8Array[]
}

/**
 * The header half of createPacket: checks `path`, draws the id (unless given), the ephemeral scalar and
 * the pad seed, in that order. Throws InvalidPathError, InvalidIdError, RandomSourceError.
 */
export function preparePacket (path: Hop[], opts: CreatePacketOptions = {}): PreparedPacket {
  const random = opts.random ?? defaultRandom
  if (opts.id !== undefined && (!(opts.id instanceof Uint8Array) || opts.id.length !== ID_LENGTH)) throw new InvalidIdError()
  checkPath(path)
  const id = opts.id ?? draw(random, ID_LENGTH)
  const { header, secrets } = buildHeader(path, COMMAND_SERVICE, id, random)
  return { firstHop: copy(path[0].address), id: copy(id), header, secrets }
}

/**
 * The body half of createPacket: `payload` in the prepared header's packet; draws the body padding.
 * Wipes the prepared secrets. Throws PayloadTooLargeError, RandomSourceError, InvalidPathError when
 * `prepared` was already used or discarded.
 */
export function finishPacket (prepared: PreparedPacket, payload: Uint8Array, opts: { random?: RandomSource } = {}): OutgoingPacket {
  checkPayload(payload)
  const secrets = prepared.secrets
  if (secrets.length === 0) throw new InvalidPathError('this prepared packet was used already')
  const packet = new Uint8Array(PACKET_SIZE)
  packet.set(prepared.header, 0)
  const body = packet.subarray(PAYLOAD_OFFSET)
  try {
    plainBody(payload, opts.random ?? defaultRandom, body)
    const key = new Uint8Array(KEY_LENGTH)
    const subkeys = new Uint8Array(4 * KEY_LENGTH)
    for (let i = secrets.length - 1; i >= 0; i--) {
      lionessEncrypt(lionessKey(deriveKey(LABEL_PI, secrets[i], key), subkeys), body, body)
    }
    wipe(key, subkeys)
  } finally {
    discardPacket(prepared)
  }
  return { firstHop: copy(prepared.firstHop), packet, id: copy(prepared.id) }
}

/** Wipes a prepared packet's secrets unused (a stale one is dropped, never sent). */
export function discardPacket (prepared: PreparedPacket): void {
  if (prepared.secrets.length > 0) wipe(...prepared.secrets)
  prepared.secrets.length = 0
}

// ---------------------------------------------------------------------------------------------
// Processing at a hop
// ---------------------------------------------------------------------------------------------

const DROPS: Readonly<Record<DropReason, DropResult>> = Object.freeze({
  size: Object.freeze({ ok: false, reason: 'size' }),
  version: Object.freeze({ ok: false, reason: 'version' }),
  'bad-point': Object.freeze({ ok: false, reason: 'bad-point' }),
  mac: Object.freeze({ ok: false, reason: 'mac' }),
  'slot-type': Object.freeze({ ok: false, reason: 'slot-type' }),
  'next-hop': Object.freeze({ ok: false, reason: 'next-hop' }),
  extension: Object.freeze({ ok: false, reason: 'extension' }),
  'payload-integrity': Object.freeze({ ok: false, reason: 'payload-integrity' }),
  internal: Object.freeze({ ok: false, reason: 'internal' })
}) as Readonly<Record<DropReason, DropResult>>

/**
 * Peel one layer of `packet` with this node's onion key. Never throws: any input gives either
 * a forward instruction, a final delivery, or `{ ok: false, reason }` (a shared frozen object).
 *
 * The caller keeps the replay cache (drop a seen `replayTag`) and the key epochs (on 'mac' it may
 * retry with the previous epoch's key). `packet` is never changed.
 */
export function processPacket (packet: Uint8Array, key: OnionPrivateKey): ProcessResult {
  if (!(packet instanceof Uint8Array) || packet.length !== PACKET_SIZE) return DROPS.size
  if (packet[0] !== PACKET_VERSION) return DROPS.version
  try {
    return peel(packet, key)
  } catch {
    return DROPS.internal
  } finally {
    wipe(hopArena)
  }
}

function peel (packet: Uint8Array, key: OnionPrivateKey): ProcessResult {
  const alpha = packet.subarray(ALPHA_OFFSET, BETA_OFFSET)
  if (!isCanonicalU(alpha)) return DROPS['bad-point']
  try {
    x25519Raw(key.scalar, alpha, hopSecret)
  } catch {
    return DROPS['bad-point']
  }

  const beta = packet.subarray(BETA_OFFSET, GAMMA_OFFSET)
  hmacSha256(deriveKey(LABEL_MU, hopSecret, hopKey), beta, hopMac, PACKET_VERSION)
  if (!timingSafeEqual(hopMac, packet.subarray(GAMMA_OFFSET, HEADER_LENGTH))) return DROPS.mac

  // (beta || 0^SLOT_SIZE) XOR ChaCha20(key_rho): our slot, then the next hop's beta.
  hopRouting.set(beta, 0)
  hopRouting.fill(0, ROUTING_INFO_LENGTH)
  chacha20(deriveKey(LABEL_RHO, hopSecret, hopKey), hopRouting, hopRouting)
  const command = hopRouting[0]
  const name = COMMAND_NAMES[command]
  if (name === undefined) return DROPS['slot-type']
  const delayMs = readExtensions(hopRouting, SLOT_EXTENSIONS)
  if (delayMs < 0) return DROPS.extension

  const replayTag = deriveKey(LABEL_REPLAY, hopSecret)
  const body = packet.subarray(PAYLOAD_OFFSET)
  const bodyKey = lionessKey(deriveKey(LABEL_PI, hopSecret, hopKey), hopLioness)

  if (command === COMMAND_RELAY || command === COMMAND_CLIENT) {
    const next = hopRouting.slice(SLOT_ADDRESS, SLOT_EXTENSIONS)
    if (allZero(next)) return DROPS['next-hop']
    // A plain Uint8Array measured faster than an unfilled Buffer.allocUnsafeSlow view (bench/sphinx.ts,
    // "output packet allocation"); a pooled Buffer would tie each held packet to an 8 KiB pool slab.
    const out = new Uint8Array(PACKET_SIZE)
    out[0] = PACKET_VERSION
    // alpha' = X25519(SHA-256(alpha || s), alpha)
    hopBlindInput.set(alpha, 0)
    hopBlindInput.set(hopSecret, KEY_LENGTH)
    x25519Raw(sha256(hopBlindInput, hopBlinder), alpha, out.subarray(ALPHA_OFFSET, BETA_OFFSET))
    out.set(hopRouting.subarray(SLOT_SIZE), BETA_OFFSET)
    out.set(hopRouting.subarray(SLOT_GAMMA, SLOT_SIZE), GAMMA_OFFSET)
    lionessDecrypt(bodyKey, body, out.subarray(PAYLOAD_OFFSET))
    return { ok: true, type: 'forward', command: command === COMMAND_RELAY ? 'relay' : 'client', next, delayMs, packet: out, replayTag }
  }

  const id = hopRouting.slice(SLOT_ADDRESS, SLOT_ADDRESS + ID_LENGTH)
  const peeled = lionessDecrypt(bodyKey, body)
  if (command === COMMAND_REPLY) return { ok: true, type: 'final', command: 'reply', id, payload: peeled, replayTag }
  const payload = openBody(peeled)
  if (payload === null) return DROPS['payload-integrity']
  return { ok: true, type: 'final', command: 'service', id, payload, replayTag }
}

// ---------------------------------------------------------------------------------------------
// Single-use reply blocks
// ---------------------------------------------------------------------------------------------

/**
 * Build a reply block over `path`, whose last hop is the creator itself (a REPLY layer). The replier
 * learns only the first hop's address. Randomness is drawn in this order: id (16), ephemeral scalar
 * (32), pad seed (32), payload key (32).
 *
 * `ownKey`: the creator's private key for the last hop (the one that opens the reply): the block is
 * the same, byte for byte, and costs path.length - 1 fewer X25519 (sharedSecrets). Throws
 * InvalidPathError when it is not the key of the last hop's onionKey.
 */
export function createSurb (path: Hop[], random: RandomSource = defaultRandom, ownKey?: OnionPrivateKey): CreatedSurb {
  checkPath(path)
  if (ownKey !== undefined && !(ownKey.publicKey instanceof Uint8Array && ownKey.publicKey.length === KEY_LENGTH &&
    timingSafeEqual(ownKey.publicKey, path[path.length - 1].onionKey))) {
    throw new InvalidPathError('ownKey is not the private key of the last hop')
  }
  const id = draw(random, ID_LENGTH)
  const { header, secrets } = buildHeader(path, COMMAND_REPLY, id, random, ownKey)
  const payloadKey = copy(draw(random, KEY_LENGTH))
  const surb = new Uint8Array(SURB_SIZE)
  surb.set(path[0].address, 0)
  surb.set(header, ADDRESS_LENGTH)
  surb.set(payloadKey, ADDRESS_LENGTH + HEADER_LENGTH)
  const hopPayloadKeys = secrets.map((s) => deriveKey(LABEL_PI, s))
  wipe(...secrets)
  return { surb, id: copy(id), secret: { id: copy(id), payloadKey, hopPayloadKeys } }
}

/**
 * Answer through a reply block: a packet to `firstHop`, same size and look as a forward packet.
 * Throws InvalidSurbError, PayloadTooLargeError. Randomness: body padding only.
 */
export function packetFromSurb (surb: Uint8Array, payload: Uint8Array, opts: { random?: RandomSource } = {}): { firstHop: Uint8Array, packet: Uint8Array } {
  if (!(surb instanceof Uint8Array) || surb.length !== SURB_SIZE) throw new InvalidSurbError()
  const firstHop = copy(surb, 0, ADDRESS_LENGTH)
  if (allZero(firstHop) || surb[ADDRESS_LENGTH] !== PACKET_VERSION) throw new InvalidSurbError()
  checkPayload(payload)
  const packet = new Uint8Array(PACKET_SIZE)
  packet.set(surb.subarray(ADDRESS_LENGTH, ADDRESS_LENGTH + HEADER_LENGTH), 0)
  const body = packet.subarray(PAYLOAD_OFFSET)
  plainBody(payload, opts.random ?? defaultRandom, body)
  const subkeys = lionessKey(surb.subarray(ADDRESS_LENGTH + HEADER_LENGTH))
  lionessEncrypt(subkeys, body, body)
  wipe(subkeys)
  return { firstHop, packet }
}

export type OpenReplyResult = { ok: true, payload: Uint8Array } | { ok: false, reason: 'size' | 'payload-integrity' }

/**
 * Open a reply body (the `payload` of a `{ type: 'final', command: 'reply' }` result) with the stored
 * secret: re-apply every hop's LIONESS layer in reverse, remove the replier's layer, check the 16 zero bytes.
 */
export function openReply (payload: Uint8Array, secret: SurbSecret): OpenReplyResult {
  if (!(payload instanceof Uint8Array) || payload.length !== BODY_LENGTH) return { ok: false, reason: 'size' }
  const body = copy(payload)
  const subkeys = new Uint8Array(4 * KEY_LENGTH)
  for (let i = secret.hopPayloadKeys.length - 1; i >= 0; i--) {
    lionessEncrypt(lionessKey(secret.hopPayloadKeys[i], subkeys), body, body)
  }
  lionessDecrypt(lionessKey(secret.payloadKey, subkeys), body, body)
  wipe(subkeys)
  const opened = openBody(body)
  if (opened === null) return { ok: false, reason: 'payload-integrity' }
  return { ok: true, payload: opened }
}

/** Storage form, SPEC.md "Reply blocks": version | hop count | id (16) | payload key (32) | hop keys (32 each). */
export function surbSecretToBytes (secret: SurbSecret): Uint8Array {
  const n = secret.hopPayloadKeys.length
  const out = new Uint8Array(2 + ID_LENGTH + KEY_LENGTH * (1 + n))
  out[0] = PACKET_VERSION
  out[1] = n
  out.set(secret.id, 2)
  out.set(secret.payloadKey, 2 + ID_LENGTH)
  secret.hopPayloadKeys.forEach((k, i) => out.set(k, 2 + ID_LENGTH + KEY_LENGTH * (1 + i)))
  return out
}

/** Parse surbSecretToBytes's output. Throws InvalidSurbSecretError (also for a version 1 secret). */
export function surbSecretFromBytes (bytes: Uint8Array): SurbSecret {
  if (!(bytes instanceof Uint8Array) || bytes.length < 2 || bytes[0] !== PACKET_VERSION) throw new InvalidSurbSecretError()
  const n = bytes[1]
  if (n < 1 || n > MAX_HOPS || bytes.length !== 2 + ID_LENGTH + KEY_LENGTH * (1 + n)) throw new InvalidSurbSecretError()
  const keyAt = (i: number) => copy(bytes, 2 + ID_LENGTH + KEY_LENGTH * i, 2 + ID_LENGTH + KEY_LENGTH * (i + 1))
  return {
    id: copy(bytes, 2, 2 + ID_LENGTH),
    payloadKey: keyAt(0),
    hopPayloadKeys: Array.from({ length: n }, (_, i) => keyAt(i + 1))
  }
}
