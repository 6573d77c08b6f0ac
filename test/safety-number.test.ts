/**
 * The safety number (protocols/chat/safety-number.ts, FORMAT.md "Safety number"): known-answer vectors
 * computed by an independent implementation (Python's hashlib, the script in FORMAT.md), symmetry, and
 * that any other key changes it.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { safetyNumber, safetyNumberHalf } from '../protocols/chat/index.ts'

const A = Uint8Array.from({ length: 32 }, (_, i) => i)
const B = new Uint8Array(32).fill(0xff)

describe('safety number', () => {
  it('matches the known-answer vectors', () => {
    assert.equal(safetyNumberHalf(A), '802073403996000432912934705526')
    assert.equal(safetyNumberHalf(B), '218775622585433790238672144921')
    assert.equal(safetyNumber(A, B), '21877 56225 85433 79023 86721 44921 80207 34039 96000 43291 29347 05526')
  })

  it('is the same from both sides, 60 digits in 12 groups', () => {
    assert.equal(safetyNumber(A, B), safetyNumber(B, A))
    assert.match(safetyNumber(A, B), /^(\d{5} ){11}\d{5}$/)
  })

  it('changes with either key', () => {
    const C = Uint8Array.from(A)
    C[31] ^= 1
    assert.notEqual(safetyNumber(C, B), safetyNumber(A, B))
    assert.notEqual(safetyNumber(A, C), safetyNumber(A, B))
  })

  it('refuses a key of the wrong length', () => {
    assert.throws(() => safetyNumberHalf(new Uint8Array(31)), { name: 'InvalidKeyError' })
  })
})
