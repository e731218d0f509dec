// Is a picked file audio we can analyse? Its first bytes are checked against the same
// table the processor, the API and the SDK use (layers/core/audiolift_core/formats.json,
// bundled by esbuild), with the same rules as audiolift_core/formats.py: a container by
// its whole signature, MPEG audio by a run of consecutive frame headers. So a PNG renamed
// .wav is refused before a single request, for the reason the processor would give.

import table from '../../../layers/core/audiolift_core/formats.json'

export const SNIFF_BYTES = table.sniff_bytes
const MPEG = table.mpeg_audio
const VERSIONS = { 0: '2.5', 2: '2', 3: '1' }
const LAYERS = { 1: 3, 2: 2, 3: 1 }
const ROMAN = { 1: 'I', 2: 'II', 3: 'III' }

function hexBytes(hex) {
  const out = new Uint8Array(hex.length / 2)
  for (let i = 0; i < out.length; i += 1) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16)
  return out
}

function compile(entry) {
  return entry.signatures.map((signature) =>
    signature.map((part) => ({
      offset: part.offset,
      bytes: hexBytes(part.hex),
      mask: part.mask ? hexBytes(part.mask) : null,
    })),
  )
}

const AUDIO = table.formats.map((entry) => ({ format: entry, signatures: compile(entry) }))
const OTHERS = table.not_audio.map((entry) => ({ what: entry.what, signatures: compile(entry) }))
const MP3 = table.formats.find((entry) => entry.name === 'mp3')

export const SUPPORTED_LABELS = table.formats.map((entry) => entry.label).join(', ')
export const ACCEPTED_EXTENSIONS = table.formats.flatMap((entry) => entry.extensions)

function matches(head, signature) {
  return signature.every(({ offset, bytes, mask }) => {
    if (head.length < offset + bytes.length) return false
    for (let i = 0; i < bytes.length; i += 1) {
      const found = mask ? head[offset + i] & mask[i] : head[offset + i]
      if (found !== bytes[i]) return false
    }
    return true
  })
}

function matchAudio(head) {
  return AUDIO.find(({ signatures }) => signatures.some((s) => matches(head, s)))?.format || null
}

function startsWith(head, at, text) {
  if (head.length < at + text.length) return false
  for (let i = 0; i < text.length; i += 1) if (head[at + i] !== text.charCodeAt(i)) return false
  return true
}

/** Where the ID3v2 tag at the start ends, or null when there is none. */
export function id3v2End(head) {
  if (head.length < 10 || !startsWith(head, 0, 'ID3') || ![2, 3, 4].includes(head[3]) || head[4] === 0xff) {
    return null
  }
  if (head[5] & 0x0f || [6, 7, 8, 9].some((i) => head[i] & 0x80)) return null
  let size = 0
  for (let i = 6; i < 10; i += 1) size = size * 128 + head[i]
  return 10 + size + (head[5] & 0x10 ? 10 : 0)
}

/** The MPEG audio frame header at ``at``, or null. */
export function mpegFrame(head, at) {
  if (at < 0 || head.length < at + 4 || head[at] !== 0xff || (head[at + 1] & 0xe0) !== 0xe0) return null
  const [b1, b2, b3] = [head[at + 1], head[at + 2], head[at + 3]]
  const version = VERSIONS[(b1 >> 3) & 0x3]
  const layer = LAYERS[(b1 >> 1) & 0x3]
  const bitrateIndex = b2 >> 4
  const rateIndex = (b2 >> 2) & 0x3
  const padding = (b2 >> 1) & 0x1
  if (version === undefined || layer === undefined || rateIndex === 3 || (b3 & 0x3) === 0b10) return null
  if (bitrateIndex === 0 || bitrateIndex === 15) return null
  const row = `${version === '1' ? '1' : '2'}-${ROMAN[layer]}`
  const bitrate = MPEG.bitrates_kbps[row][bitrateIndex] * 1000
  const sampleRate = MPEG.sample_rates[version][rateIndex]
  const samples = MPEG.samples_per_frame[row]
  const length =
    layer === 1
      ? (Math.floor((12 * bitrate) / sampleRate) + padding) * 4
      : Math.floor(((samples / 8) * bitrate) / sampleRate) + padding
  const channels = b3 >> 6 === 0b11 ? 1 : 2
  return { version, layer, sampleRate, length, channels }
}

function sameStream(a, b) {
  return a.version === b.version && a.layer === b.layer && a.sampleRate === b.sampleRate
}

function hasVbrTag(head, at, frame) {
  const side = frame.version === '1' ? (frame.channels === 1 ? 17 : 32) : frame.channels === 1 ? 9 : 17
  const xing = at + 4 + side
  return startsWith(head, xing, 'Xing') || startsWith(head, xing, 'Info') || startsWith(head, at + 36, 'VBRI')
}

function mpegRunOk(head, start, afterTag, wholeFile) {
  const first = mpegFrame(head, start)
  if (!first) return false
  const introduced = afterTag || hasVbrTag(head, start, first)
  let count = 0
  let position = start
  while (position + 4 <= head.length) {
    const frame = mpegFrame(head, position)
    if (!frame || !sameStream(frame, first)) break
    count += 1
    position += frame.length
  }
  if (count >= MPEG.min_frames || (introduced && count >= MPEG.min_frames_after_tag)) return true
  if (wholeFile && position === head.length) return true
  return introduced && position + 4 > head.length && position > start
}

function afterId3(head, tagEnd, wholeFile) {
  if (tagEnd + 4 > head.length) return MP3
  let start = tagEnd
  while (start < head.length && head[start] === 0) start += 1
  const following = head.subarray(start)
  const inner = matchAudio(following)
  if (inner) return inner
  if (start + 4 > head.length || mpegRunOk(head, start, true, wholeFile)) return MP3
  return null
}

/** The format these leading bytes begin (an entry of formats.json), or null. */
export function sniff(head, { wholeFile = head.length < SNIFF_BYTES } = {}) {
  const direct = matchAudio(head)
  if (direct) return direct
  const tagEnd = id3v2End(head)
  if (tagEnd !== null) return afterId3(head, tagEnd, wholeFile)
  return mpegRunOk(head, 0, false, wholeFile) ? MP3 : null
}

function looksLikeText(head) {
  const sample = head.subarray(0, SNIFF_BYTES)
  if (startsWith(sample, 0, '\xef\xbb\xbf') || startsWith(sample, 0, '\xff\xfe') || startsWith(sample, 0, '\xfe\xff')) {
    return true
  }
  let text = null
  // A character cut at the end of the sample is not a reason to call it binary.
  for (let cut = 0; cut <= 3 && text === null; cut += 1) {
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(sample.subarray(0, sample.length - cut))
    } catch {
      text = null
    }
  }
  if (!text) return false
  const chars = [...text]
  const printable = chars.filter((ch) => '\r\n\t\f '.includes(ch) || !/[\p{C}\p{Z}]/u.test(ch))
  return printable.length / chars.length > 0.95
}

/** A sentence saying what a refused file is instead (as formats.describe says it). */
export function describe(head) {
  if (!head.length) return 'The file is empty (0 bytes): there is no audio to analyse.'
  const tagEnd = id3v2End(head)
  const behindTag = tagEnd !== null && tagEnd < head.length ? head.subarray(tagEnd) : head
  const other = OTHERS.find(({ signatures }) => signatures.some((s) => matches(behindTag, s)))
  if (other) return `The file is ${other.what}, not an audio recording we can analyse.`
  if (looksLikeText(head)) {
    return 'The file contains text, not audio (it may have been renamed to look like a sound file).'
  }
  return `The file is not in an audio format we recognise (supported: ${SUPPORTED_LABELS}).`
}

/** Reads a File's first bytes: {ok: true, format} or {ok: false, message}. */
export async function sniffFile(file) {
  const head = new Uint8Array(await file.slice(0, SNIFF_BYTES).arrayBuffer())
  const format = sniff(head, { wholeFile: file.size < SNIFF_BYTES })
  return format ? { ok: true, format } : { ok: false, message: describe(head) }
}
