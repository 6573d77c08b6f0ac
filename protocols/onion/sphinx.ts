/**
 * Sphinx packets (Danezis & Goldberg 2009) over X25519, in the shape of Lightning's BOLT #4:
 * pure functions, no networking. The byte layout, every label and the threat model are in ./SPEC.md.
 *
 *   packet = version (1) | alpha (32) | beta (MAX_HOPS * 71) | gamma (32) | body (BODY_LENGTH)
 *
 * createPacket / createSurb build headers; processPacket peels one layer at a hop and never throws;
 * packetFromSurb lets a recipient answer through a SURB; openReply opens the answer at the SURB's creator.
 */

import { randomBytes, timingSafeEqual } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import {
  ALPHA_OFFSET, BETA_OFFSET, BODY_LENGTH, GAMMA_OFFSET, HEADER_LENGTH, ID_LENGTH, INTEGRITY_LENGTH, KEY_LENGTH,
  LABEL_MU, LABEL_PAD, LABEL_PI, LABEL_REPLAY, LABEL_RHO, LENGTH_PREFIX_LENGTH, MAC_LENGTH, MAX_HOPS, PACKET_SIZE,
  PACKET_VERSION, PAYLOAD_CAPACITY, PAYLOAD_OFFSET, PEER_ID_LENGTH, PEER_ID_PREFIX, ROUTING_INFO_LENGTH, SLOT_SIZE,
  SLOT_TYPE_FINAL, SLOT_TYPE_FORWARD, SLOT_TYPE_REPLY, SURB_SIZE
} from './constants.ts'
import { InvalidIdError, InvalidPathError, InvalidSurbError, InvalidSurbSecretError, PayloadTooLargeError, RandomSourceError } from './errors.ts'
import { x25519, x25519PrivateKeyObject, x25519PublicKeyObject, x25519RawPublicKey } from '../crypto/keys.ts'
import { chacha20, chacha20Stream, deriveKey, hmacSha256, sha256 } from './keys.ts'
import type { OnionPrivateKey } from './keys.ts'
import { lionessDecrypt, lionessEncrypt, lionessKey } from './lioness.ts'

export {
  BODY_LENGTH, HEADER_LENGTH, ID_LENGTH, MAX_HOPS, PACKET_SIZE, PACKET_VERSION, PAYLOAD_CAPACITY, PEER_ID_LENGTH,
  REPLAY_TAG_LENGTH, SURB_SIZE
} from './constants.ts'
export { onionPrivateKeyFromRaw } from './keys.ts'
/** A fresh onion key pair as raw bytes: publish `publicKey`, keep `privateKey` (mode 0600). */
export { generateX25519KeyPair as generateOnionKey } from '../crypto/keys.ts'
export type { OnionPrivateKey } from './keys.ts'

/** One hop of a path: its libp2p peer id (binary multihash, 38 bytes) and its raw X25519 onion key. */
export interface Hop {
  peerId: Uint8Array
  onionKey: Uint8Array
}

/** Returns n random bytes. Tests pass a deterministic one; the default is crypto.randomBytes. */
export type RandomSource = (n: number) => Uint8Array

export interface CreatePacketOptions {
  /** The 16-byte message id the final hop reports; random when absent. */
  id?: Uint8Array
  random?: RandomSource
}

export interface OutgoingPacket {
  /** Peer id to send `packet` to. */
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
  | 'slot-type' // authenticated routing slot with an unknown type
  | 'next-hop' // authenticated forward slot whose address is not an Ed25519 peer id
  | 'payload-integrity' // final hop: the peeled body does not start with 16 zero bytes or has a bad length
  | 'internal' // an unexpected exception, caught so that processPacket never throws

export interface ForwardResult {
  ok: true
  type: 'forward'
  /** Peer id (38 bytes) to send `packet` to. */
  nextHop: Uint8Array
  /** The peeled packet, PACKET_SIZE bytes. */
  packet: Uint8Array
  /** Same shared secret => same tag: drop the packet if the tag was seen in this key's epoch. */
  replayTag: Uint8Array
}

export interface FinalResult {
  ok: true
  type: 'final'
  /** false: a forward message, `payload` is the sender's bytes (integrity checked).
   *  true: a reply through one of our SURBs, `payload` is the body (BODY_LENGTH bytes) for openReply. */
  reply: boolean
  /** The 16-byte message id, or the SURB id for a reply. */
  id: Uint8Array
  payload: Uint8Array
  replayTag: Uint8Array
}

export interface DropResult {
  ok: false
  reason: DropReason
}

export type ProcessResult = ForwardResult | FinalResult | DropResult

/** What a SURB's creator keeps to open the reply (SPEC.md "SURB"); see surbSecretToBytes. */
export interface SurbSecret {
  /** The SURB id the final hop reports. */
  id: Uint8Array
  /** The key the replier encrypts the body with. */
  payloadKey: Uint8Array
  /** Each hop's LIONESS master key (key_pi), first hop first; the last is the creator's own. */
  hopPayloadKeys: Uint8Array[]
}

export interface CreatedSurb {
  /** SURB_SIZE bytes: first-hop peer id | header | payload key. Hand it to the replier. */
  surb: Uint8Array
  id: Uint8Array
  secret: SurbSecret
}

const VERSION_BYTE = Uint8Array.of(PACKET_VERSION)
const ZERO_SLOT = new Uint8Array(SLOT_SIZE)
const ZERO_ROUTING_INFO = new Uint8Array(ROUTING_INFO_LENGTH)
/** Where a slot's fields start. */
const SLOT_ADDRESS = 1
const SLOT_MAC = 1 + PEER_ID_LENGTH

function defaultRandom (n: number): Uint8Array {
  return randomBytes(n)
}

function draw (random: RandomSource, n: number): Uint8Array {
  const bytes = random(n)
  if (!(bytes instanceof Uint8Array) || bytes.length !== n) throw new RandomSourceError()
  return bytes
}

export function isPeerId (bytes: Uint8Array): boolean {
  if (bytes.length !== PEER_ID_LENGTH) return false
  for (let i = 0; i < PEER_ID_PREFIX.length; i++) if (bytes[i] !== PEER_ID_PREFIX[i]) return false
  return true
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
// Header construction (sender and SURB creator)
// ---------------------------------------------------------------------------------------------

interface BuiltHeader {
  /** HEADER_LENGTH bytes: version | alpha | beta | gamma. */
  header: Uint8Array
  /** Each hop's shared secret s_i. */
  secrets: Uint8Array[]
}

function checkPath (path: Hop[]): KeyObject[] {
  if (!Array.isArray(path) || path.length < 1 || path.length > MAX_HOPS) throw new InvalidPathError()
  return path.map((hop) => {
    if (hop == null || !(hop.peerId instanceof Uint8Array) || !isPeerId(hop.peerId) ||
      !(hop.onionKey instanceof Uint8Array) || hop.onionKey.length !== KEY_LENGTH) {
      throw new InvalidPathError()
    }
    try {
      return x25519PublicKeyObject(hop.onionKey)
    } catch {
      throw new InvalidPathError('an onion key is not a valid X25519 public key')
    }
  })
}

/**
 * Shared secrets, SPEC.md "Shared secrets and blinding":
 *   alpha_0 = X25519(x, 9); s_i = X25519(b_{i-1}, ... X25519(b_0, X25519(x, P_i)));
 *   b_i = SHA-256(alpha_i || s_i); alpha_{i+1} = X25519(b_i, alpha_i).
 */
function sharedSecrets (onionKeys: KeyObject[], random: RandomSource): { alpha0: Uint8Array, secrets: Uint8Array[] } {
  let ephemeral: KeyObject
  try {
    ephemeral = x25519PrivateKeyObject(draw(random, KEY_LENGTH))
  } catch (err) {
    if (err instanceof RandomSourceError) throw err
    throw new RandomSourceError('the random source gave an unusable ephemeral key')
  }
  const alpha0 = x25519RawPublicKey(ephemeral)
  const blinders: KeyObject[] = []
  const secrets: Uint8Array[] = []
  let alpha: Uint8Array = alpha0
  let alphaKey = x25519PublicKeyObject(alpha0)
  for (let i = 0; i < onionKeys.length; i++) {
    let s: Uint8Array
    try {
      s = x25519(ephemeral, onionKeys[i])
      for (const b of blinders) s = x25519(b, x25519PublicKeyObject(s))
    } catch {
      throw new InvalidPathError(`onion key of hop ${i} is a small-order point`)
    }
    secrets.push(s)
    if (i === onionKeys.length - 1) break
    const blinder = x25519PrivateKeyObject(sha256(alpha, s))
    blinders.push(blinder)
    alpha = x25519(blinder, alphaKey)
    alphaKey = x25519PublicKeyObject(alpha)
  }
  return { alpha0, secrets }
}

/**
 * Filler, SPEC.md "Filler": the bytes that hops 0..n-2 append (a zero slot each, then XOR with their
 * rho stream) and that end up at the tail of beta_{n-1}, so the sender can MAC it.
 */
function filler (secrets: Uint8Array[]): Uint8Array {
  const n = secrets.length
  const out = new Uint8Array((n - 1) * SLOT_SIZE)
  const streamLength = ROUTING_INFO_LENGTH + SLOT_SIZE
  for (let i = 0; i < n - 1; i++) {
    const length = (i + 1) * SLOT_SIZE
    const stream = chacha20(deriveKey(LABEL_RHO, secrets[i]), new Uint8Array(streamLength))
    const offset = streamLength - length
    for (let j = 0; j < length; j++) out[j] ^= stream[offset + j]
  }
  return out
}

function buildHeader (path: Hop[], finalType: number, id: Uint8Array, random: RandomSource): BuiltHeader {
  const onionKeys = checkPath(path)
  const { alpha0, secrets } = sharedSecrets(onionKeys, random)
  const n = path.length

  // Initial fill of beta: ChaCha20 under key_pad = HMAC("pad", seed), seed random (BOLT #4 uses its session key).
  const beta = chacha20(deriveKey(LABEL_PAD, draw(random, KEY_LENGTH)), ZERO_ROUTING_INFO)
  const fill = filler(secrets)
  let gamma: Uint8Array = new Uint8Array(MAC_LENGTH) // the final hop's "next MAC" is all zero
  let routing: Uint8Array = beta
  for (let i = n - 1; i >= 0; i--) {
    routing.copyWithin(SLOT_SIZE, 0, ROUTING_INFO_LENGTH - SLOT_SIZE)
    routing.fill(0, 0, SLOT_SIZE)
    if (i === n - 1) {
      routing[0] = finalType
      routing.set(id, SLOT_ADDRESS)
    } else {
      routing[0] = SLOT_TYPE_FORWARD
      routing.set(path[i + 1].peerId, SLOT_ADDRESS)
    }
    routing.set(gamma, SLOT_MAC)
    routing = chacha20(deriveKey(LABEL_RHO, secrets[i]), routing)
    if (i === n - 1) routing.set(fill, ROUTING_INFO_LENGTH - fill.length)
    gamma = hmacSha256(deriveKey(LABEL_MU, secrets[i]), routing, VERSION_BYTE)
  }

  const header = new Uint8Array(HEADER_LENGTH)
  header[0] = PACKET_VERSION
  header.set(alpha0, ALPHA_OFFSET)
  header.set(routing, BETA_OFFSET)
  header.set(gamma, GAMMA_OFFSET)
  return { header, secrets }
}

/** The plaintext body, SPEC.md "Body": 16 zero bytes | length (u16 BE) | payload | random padding. */
function plainBody (payload: Uint8Array, random: RandomSource): Uint8Array {
  if (!(payload instanceof Uint8Array)) throw new TypeError('payload must be a Uint8Array')
  if (payload.length > PAYLOAD_CAPACITY) throw new PayloadTooLargeError()
  const body = new Uint8Array(BODY_LENGTH)
  const start = INTEGRITY_LENGTH + LENGTH_PREFIX_LENGTH
  body[INTEGRITY_LENGTH] = payload.length >>> 8
  body[INTEGRITY_LENGTH + 1] = payload.length & 0xff
  body.set(payload, start)
  const padding = BODY_LENGTH - start - payload.length
  if (padding > 0) body.set(draw(random, padding), start + payload.length)
  return body
}

/** Undo plainBody; null when the integrity check fails. */
function openBody (body: Uint8Array): Uint8Array | null {
  if (!allZero(body.subarray(0, INTEGRITY_LENGTH))) return null
  const length = (body[INTEGRITY_LENGTH] << 8) | body[INTEGRITY_LENGTH + 1]
  if (length > PAYLOAD_CAPACITY) return null
  const start = INTEGRITY_LENGTH + LENGTH_PREFIX_LENGTH
  return copy(body, start, start + length)
}

/**
 * Build a packet that carries `payload` (at most PAYLOAD_CAPACITY bytes) along `path`; the last hop
 * is the recipient. Throws InvalidPathError, PayloadTooLargeError, InvalidIdError, RandomSourceError.
 * Randomness is drawn in this order (the test vectors depend on it): id (16, unless given),
 * ephemeral scalar (32), pad seed (32), body padding (PAYLOAD_CAPACITY - payload.length, if any).
 */
export function createPacket (path: Hop[], payload: Uint8Array, opts: CreatePacketOptions = {}): OutgoingPacket {
  const random = opts.random ?? defaultRandom
  if (!(payload instanceof Uint8Array)) throw new TypeError('payload must be a Uint8Array')
  if (payload.length > PAYLOAD_CAPACITY) throw new PayloadTooLargeError()
  if (opts.id !== undefined && (!(opts.id instanceof Uint8Array) || opts.id.length !== ID_LENGTH)) throw new InvalidIdError()
  checkPath(path)
  const id = opts.id ?? draw(random, ID_LENGTH)
  const { header, secrets } = buildHeader(path, SLOT_TYPE_FINAL, id, random)
  const body = plainBody(payload, random)
  for (let i = secrets.length - 1; i >= 0; i--) {
    lionessEncrypt(lionessKey(deriveKey(LABEL_PI, secrets[i])), body, body)
  }
  const packet = new Uint8Array(PACKET_SIZE)
  packet.set(header, 0)
  packet.set(body, PAYLOAD_OFFSET)
  return { firstHop: copy(path[0].peerId), packet, id: copy(id) }
}

// ---------------------------------------------------------------------------------------------
// Processing at a hop
// ---------------------------------------------------------------------------------------------

function drop (reason: DropReason): DropResult {
  return { ok: false, reason }
}

/**
 * Peel one layer of `packet` with this node's onion key. Never throws: any input gives either
 * a forward instruction, a final delivery, or `{ ok: false, reason }`.
 *
 * The caller keeps the replay cache (drop a seen `replayTag`) and the key epochs (on 'mac' it may
 * retry with the previous epoch's key).
 */
export function processPacket (packet: Uint8Array, key: OnionPrivateKey): ProcessResult {
  if (!(packet instanceof Uint8Array) || packet.length !== PACKET_SIZE) return drop('size')
  if (packet[0] !== PACKET_VERSION) return drop('version')
  try {
    return peel(packet, key)
  } catch {
    return drop('internal')
  }
}

function peel (packet: Uint8Array, key: OnionPrivateKey): ProcessResult {
  const alpha = packet.subarray(ALPHA_OFFSET, BETA_OFFSET)
  if (!isCanonicalU(alpha)) return drop('bad-point')
  let alphaKey: KeyObject
  let secret: Buffer
  try {
    alphaKey = x25519PublicKeyObject(alpha) // imported once: used for the DH and for the blinding
    secret = x25519(key.privateKey, alphaKey)
  } catch {
    return drop('bad-point')
  }

  const beta = packet.subarray(BETA_OFFSET, GAMMA_OFFSET)
  const gamma = packet.subarray(GAMMA_OFFSET, HEADER_LENGTH)
  const expected = hmacSha256(deriveKey(LABEL_MU, secret), beta, VERSION_BYTE)
  if (!timingSafeEqual(expected, gamma)) return drop('mac')

  const replayTag = deriveKey(LABEL_REPLAY, secret)
  // (beta || 0^SLOT_SIZE) XOR ChaCha20(key_rho): our slot, then the next hop's beta.
  const stream = chacha20Stream(deriveKey(LABEL_RHO, secret))
  const routing = stream.next(beta)
  const appended = stream.next(ZERO_SLOT)
  const type = routing[0]
  const body = packet.subarray(PAYLOAD_OFFSET)
  const bodyKey = () => lionessKey(deriveKey(LABEL_PI, secret))

  if (type === SLOT_TYPE_FORWARD) {
    const nextHop = copy(routing, SLOT_ADDRESS, SLOT_MAC)
    if (!isPeerId(nextHop)) return drop('next-hop')
    const blinder = x25519PrivateKeyObject(sha256(alpha, secret))
    const nextAlpha = x25519(blinder, alphaKey)
    const out = new Uint8Array(PACKET_SIZE)
    out[0] = PACKET_VERSION
    out.set(nextAlpha, ALPHA_OFFSET)
    out.set(routing.subarray(SLOT_SIZE), BETA_OFFSET)
    out.set(appended, GAMMA_OFFSET - SLOT_SIZE)
    out.set(routing.subarray(SLOT_MAC, SLOT_SIZE), GAMMA_OFFSET)
    lionessDecrypt(bodyKey(), body, out.subarray(PAYLOAD_OFFSET))
    return { ok: true, type: 'forward', nextHop, packet: out, replayTag }
  }

  if (type === SLOT_TYPE_FINAL || type === SLOT_TYPE_REPLY) {
    const id = copy(routing, SLOT_ADDRESS, SLOT_ADDRESS + ID_LENGTH)
    const peeled = lionessDecrypt(bodyKey(), body)
    if (type === SLOT_TYPE_REPLY) return { ok: true, type: 'final', reply: true, id, payload: peeled, replayTag }
    const payload = openBody(peeled)
    if (payload === null) return drop('payload-integrity')
    return { ok: true, type: 'final', reply: false, id, payload, replayTag }
  }

  return drop('slot-type')
}

// ---------------------------------------------------------------------------------------------
// Single-use reply blocks
// ---------------------------------------------------------------------------------------------

/**
 * Build a SURB over `path`, whose last hop is the creator itself. The replier learns only the first
 * hop's peer id. Randomness is drawn in this order: SURB id (16), ephemeral scalar (32), pad seed (32),
 * payload key (32).
 */
export function createSurb (path: Hop[], random: RandomSource = defaultRandom): CreatedSurb {
  checkPath(path)
  const id = draw(random, ID_LENGTH)
  const { header, secrets } = buildHeader(path, SLOT_TYPE_REPLY, id, random)
  const payloadKey = copy(draw(random, KEY_LENGTH))
  const surb = new Uint8Array(SURB_SIZE)
  surb.set(path[0].peerId, 0)
  surb.set(header, PEER_ID_LENGTH)
  surb.set(payloadKey, PEER_ID_LENGTH + HEADER_LENGTH)
  const hopPayloadKeys = secrets.map((s) => new Uint8Array(deriveKey(LABEL_PI, s)))
  return { surb, id: copy(id), secret: { id: copy(id), payloadKey, hopPayloadKeys } }
}

/**
 * Answer through a SURB: a packet to `firstHop`, same size and look as a forward packet.
 * Throws InvalidSurbError, PayloadTooLargeError. Randomness: body padding only.
 */
export function packetFromSurb (surb: Uint8Array, payload: Uint8Array, opts: { random?: RandomSource } = {}): { firstHop: Uint8Array, packet: Uint8Array } {
  if (!(surb instanceof Uint8Array) || surb.length !== SURB_SIZE) throw new InvalidSurbError()
  const firstHop = copy(surb, 0, PEER_ID_LENGTH)
  const header = surb.subarray(PEER_ID_LENGTH, PEER_ID_LENGTH + HEADER_LENGTH)
  if (!isPeerId(firstHop) || header[0] !== PACKET_VERSION) throw new InvalidSurbError()
  const body = plainBody(payload, opts.random ?? defaultRandom)
  lionessEncrypt(lionessKey(surb.subarray(PEER_ID_LENGTH + HEADER_LENGTH)), body, body)
  const packet = new Uint8Array(PACKET_SIZE)
  packet.set(header, 0)
  packet.set(body, PAYLOAD_OFFSET)
  return { firstHop, packet }
}

export type OpenReplyResult = { ok: true, payload: Uint8Array } | { ok: false, reason: 'size' | 'payload-integrity' }

/**
 * Open a reply body (the `payload` of a `{ type: 'final', reply: true }` result) with the stored secret:
 * re-apply every hop's LIONESS layer in reverse, remove the replier's layer, check the 16 zero bytes.
 */
export function openReply (payload: Uint8Array, secret: SurbSecret): OpenReplyResult {
  if (!(payload instanceof Uint8Array) || payload.length !== BODY_LENGTH) return { ok: false, reason: 'size' }
  const body = copy(payload)
  for (let i = secret.hopPayloadKeys.length - 1; i >= 0; i--) {
    lionessEncrypt(lionessKey(secret.hopPayloadKeys[i]), body, body)
  }
  lionessDecrypt(lionessKey(secret.payloadKey), body, body)
  const opened = openBody(body)
  if (opened === null) return { ok: false, reason: 'payload-integrity' }
  return { ok: true, payload: opened }
}

/** Storage form, SPEC.md "SURB secret": version | hop count | id (16) | payload key (32) | hop keys (32 each). */
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

/** Parse surbSecretToBytes's output. Throws InvalidSurbSecretError. */
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
