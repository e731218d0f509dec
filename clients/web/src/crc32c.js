// CRC32C (Castagnoli) arithmetic the uploader needs besides hashing bytes: the whole
// file's CRC from its parts' CRCs (no second pass over the file), and S3's base64 form.
// Pure (no imports), so the browser tests load this very file to check it.

// The Castagnoli polynomial, bit-reversed (as CRC32C is computed: LSB first).
const POLY = 0x82f63b78
const TOP = 0x80000000 // x^0 in the reflected representation

/** a(x) * b(x) modulo the polynomial (both reflected, as CRCs are). */
function multiplyModP(a, b) {
  let product = 0
  for (let bit = TOP; bit; bit >>>= 1) {
    if (a & bit) product ^= b
    b = b & 1 ? (b >>> 1) ^ POLY : b >>> 1
  }
  return product >>> 0
}

// x^(2^n) modulo the polynomial, n = 0..63: a shift by 2^n bits is one multiplication.
// (zlib's table has 32 entries and wraps, which holds for CRC-32's polynomial but not for
// Castagnoli's: lengths of 2^29 bytes and more need the entries past 31.)
const X_POW_2N = (() => {
  const table = new Array(64)
  let power = TOP >>> 1 // x^1
  for (let n = 0; n < 64; n += 1) {
    table[n] = power
    power = multiplyModP(power, power)
  }
  return table
})()

/** x^(8 * bytes) modulo the polynomial: the CRC shift of ``bytes`` zero bytes (any
 *  length up to 2^53; parts may be larger than 4 GiB). */
function shiftForBytes(bytes) {
  let power = TOP
  let n = 3 // bytes * 8 = bytes * 2^3
  for (let left = bytes; left > 0; left = Math.floor(left / 2), n += 1) {
    if (left % 2) power = multiplyModP(X_POW_2N[n], power)
  }
  return power
}

/**
 * The CRC32C of A followed by B, from CRC32C(A), CRC32C(B) and B's length in bytes
 * (zlib's crc32_combine, with the Castagnoli polynomial).
 */
export function crc32cCombine(crcA, crcB, lengthB) {
  if (!Number.isSafeInteger(lengthB) || lengthB < 0) throw new RangeError(`bad length: ${lengthB}`)
  return (multiplyModP(shiftForBytes(lengthB), crcA >>> 0) ^ crcB) >>> 0
}

/** The CRC32C of consecutive pieces, from [{crc, size}, ...] in order. */
export function crc32cOfPieces(pieces) {
  let crc = 0 // the CRC of nothing
  for (const { crc: pieceCrc, size } of pieces) crc = crc32cCombine(crc, pieceCrc, size)
  return crc
}

/** A CRC32C as S3 writes it (x-amz-checksum-crc32c): its 4 bytes big-endian, base64. */
export function crc32cBase64(crc) {
  const value = crc >>> 0
  return btoa(String.fromCharCode(value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255))
}
