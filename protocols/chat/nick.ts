import { NICK_MAX_LENGTH, NICK_MIN_LENGTH } from './constants.ts'
import { InvalidNickError } from './errors.ts'

/** 1-32 characters of lowercase ASCII letters, digits, '_' and '-'. Upper case is not folded: it is invalid. */
export const NICK_PATTERN = /^[a-z0-9_-]{1,32}$/

/** True if `nick` is a valid nick. Never throws, whatever it is given. */
export function validateNick (nick: unknown): nick is string {
  return typeof nick === 'string' &&
    nick.length >= NICK_MIN_LENGTH &&
    nick.length <= NICK_MAX_LENGTH &&
    NICK_PATTERN.test(nick)
}

/** Throws InvalidNickError unless `nick` is valid. */
export function assertValidNick (nick: unknown): asserts nick is string {
  if (!validateNick(nick)) throw new InvalidNickError()
}
