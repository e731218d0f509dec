// Renders an analysis document. The document's schema is the processor's; this reads it
// defensively: each figure is looked up under the names the schema may use, a missing
// one shows "—", and the raw document is always available below the summary.

import { h } from './dom.js'
import * as fmt from './format.js'

/** The first of `paths` (dotted) present in `doc`; null counts as present. */
export function pick(doc, ...paths) {
  for (const path of paths) {
    let node = doc
    let found = true
    for (const part of path.split('.')) {
      if (node !== null && typeof node === 'object' && part in node) node = node[part]
      else {
        found = false
        break
      }
    }
    if (found) return node
  }
  return undefined
}

function figure(label, value, hint) {
  return h(
    'div',
    { class: 'figure' },
    h('dt', {}, label),
    h('dd', {}, value),
    hint ? h('dd', { class: 'hint' }, hint) : null,
  )
}

function card(title, ...content) {
  const slug = title.toLowerCase().replace(/[^a-z]+/g, '-')
  return h('section', { class: `card card-${slug}` }, h('h3', {}, title), ...content)
}

function formatCard(doc) {
  const format = pick(doc, 'format') || {}
  const container = pick(format, 'container', 'format')
  const subtype = pick(format, 'subtype', 'encoding')
  return card(
    'Format',
    h(
      'dl',
      { class: 'figures' },
      figure(
        'Container',
        fmt.text([container && String(container).toUpperCase(), subtype].filter(Boolean).join(' · ') || null),
      ),
      figure('Sample rate', fmt.hertz(pick(format, 'sample_rate', 'samplerate', 'sample_rate_hz'))),
      figure('Channels', fmt.integer(pick(format, 'channels', 'channel_count'))),
      figure(
        'Duration',
        fmt.duration(pick(format, 'duration_seconds', 'duration', 'duration_s')),
        `${fmt.integer(pick(format, 'frames', 'frame_count'))} frames`,
      ),
    ),
  )
}

function loudnessCard(doc) {
  const loudness = pick(doc, 'loudness') || {}
  const integrated = pick(loudness, 'integrated_lufs', 'integrated', 'integrated_loudness')
  return card(
    'Loudness',
    h(
      'dl',
      { class: 'figures' },
      figure(
        'Integrated',
        fmt.decibels(integrated, 'LUFS'),
        integrated === null ? 'nothing above the gate' : 'EBU R128 / BS.1770',
      ),
      figure(
        'Loudness range',
        fmt.decibels(pick(loudness, 'lra_lu', 'loudness_range_lu', 'lra', 'loudness_range'), 'LU'),
      ),
      figure(
        'Max short-term',
        fmt.decibels(pick(loudness, 'short_term_max_lufs', 'max_short_term_lufs'), 'LUFS'),
        `momentary ${fmt.decibels(pick(loudness, 'momentary_max_lufs', 'max_momentary_lufs'), 'LUFS')}`,
      ),
      figure(
        'True peak',
        fmt.decibels(
          pick(loudness, 'true_peak_dbtp', 'true_peak', 'true_peak_db') ??
            pick(doc, 'true_peak.max_dbtp', 'true_peak_dbtp'),
          'dBTP',
          { nullIsSilence: true },
        ),
      ),
    ),
  )
}

function silenceCard(doc) {
  const silence = pick(doc, 'silence') || {}
  const threshold = pick(silence, 'threshold_dbfs', 'threshold_db', 'threshold')
  return card(
    'Silence',
    h(
      'dl',
      { class: 'figures' },
      figure(
        'Silent share',
        fmt.percent(pick(silence, 'ratio', 'silent_fraction', 'fraction', 'share')),
        fmt.isNumber(threshold) ? `below ${fmt.decibels(threshold, 'dBFS', { digits: 0 })}` : null,
      ),
      figure(
        'Longest silence',
        fmt.duration(pick(silence, 'longest_seconds', 'longest_silence_seconds', 'longest')),
        `${fmt.duration(pick(silence, 'silent_seconds', 'total_seconds'))} silent in all`,
      ),
    ),
  )
}

const STEREO = ['L', 'R']

function channelName(channel, index, count) {
  const name = pick(channel, 'name', 'label')
  if (typeof name === 'string' && name) return name
  const position = fmt.isNumber(pick(channel, 'index')) ? pick(channel, 'index') : index
  return count === 2 ? `${position + 1} · ${STEREO[position] ?? ''}` : `${position + 1}`
}

function channelRows(doc) {
  const channels = pick(doc, 'channels', 'per_channel')
  if (!Array.isArray(channels)) return []
  return channels.map((channel, index) =>
    h(
      'tr',
      {},
      h('th', { scope: 'row' }, channelName(channel, index, channels.length)),
      h('td', {}, fmt.decibels(pick(channel, 'peak_dbfs', 'peak_db', 'peak'), 'dBFS', { nullIsSilence: true, digits: 2 })),
      h('td', {}, fmt.decibels(pick(channel, 'rms_dbfs', 'rms_db', 'rms'), 'dBFS', { nullIsSilence: true, digits: 2 })),
      h('td', {}, fmt.decibels(pick(channel, 'true_peak_dbtp'), 'dBTP', { nullIsSilence: true, digits: 2 })),
      h('td', {}, fmt.scientific(pick(channel, 'dc_offset'))),
      h('td', {}, fmt.integer(pick(channel, 'clipped_samples', 'clipped'))),
      h('td', {}, fmt.integer(
        (pick(channel, 'nan_samples', 'nan_count') ?? 0) + (pick(channel, 'inf_samples', 'inf_count') ?? 0),
      )),
    ),
  )
}

function channelsCard(doc) {
  const rows = channelRows(doc)
  if (!rows.length) return null
  return card(
    'Channels',
    h(
      'div',
      { class: 'table-scroll' },
      h(
        'table',
        { class: 'channels' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ...['Channel', 'Peak', 'RMS', 'True peak', 'DC offset', 'Clipped', 'NaN/Inf'].map((t) =>
              h('th', { scope: 'col' }, t),
            ),
          ),
        ),
        h('tbody', {}, rows),
      ),
    ),
  )
}

// --- waveform ------------------------------------------------------------------------

/** [{min: number[], max: number[]}] per channel, from the shapes the schema may use. */
export function waveformLanes(doc) {
  const waveform = pick(doc, 'waveform', 'overview', 'waveform_overview')
  if (!waveform || typeof waveform !== 'object') return []
  const lanes = pick(waveform, 'channels', 'per_channel')
  if (Array.isArray(lanes)) {
    return lanes
      .map((lane) =>
        Array.isArray(lane)
          ? { min: lane.map((b) => b?.[0]), max: lane.map((b) => b?.[1]) }
          : { min: pick(lane, 'min', 'mins'), max: pick(lane, 'max', 'maxs') },
      )
      .filter((lane) => Array.isArray(lane.min) && Array.isArray(lane.max))
  }
  const mins = pick(waveform, 'min', 'mins')
  const maxs = pick(waveform, 'max', 'maxs')
  if (Array.isArray(mins) && Array.isArray(maxs)) {
    if (Array.isArray(mins[0])) return mins.map((min, i) => ({ min, max: maxs[i] || [] }))
    return [{ min: mins, max: maxs }]
  }
  return []
}

/**
 * Draw min/max lanes in device pixels: each pixel column covers the buckets that fall in
 * it (their lowest min to highest max), so the picture stays crisp whatever the ratio of
 * buckets to pixels.
 */
export function drawWaveform(canvas, lanes) {
  const ratio = window.devicePixelRatio || 1
  const laneHeight = Math.round(96 * ratio)
  const width = Math.max(1, Math.round(canvas.clientWidth * ratio))
  const height = Math.max(1, lanes.length) * laneHeight
  canvas.style.height = `${height / ratio}px`
  canvas.width = width
  canvas.height = height
  const context = canvas.getContext('2d')
  context.clearRect(0, 0, width, height)
  const style = getComputedStyle(canvas)
  const wave = style.getPropertyValue('--wave').trim() || '#2f6fde'
  const axis = style.getPropertyValue('--wave-axis').trim() || '#c8d0dc'
  lanes.forEach((lane, index) => {
    const top = index * laneHeight
    const middle = top + Math.floor(laneHeight / 2)
    const scale = laneHeight / 2 - 4 * ratio
    context.fillStyle = axis
    context.fillRect(0, middle, width, Math.max(1, Math.round(ratio)))
    if (index > 0) context.fillRect(0, top, width, Math.max(1, Math.round(ratio)))
    const count = Math.min(lane.min.length, lane.max.length)
    if (!count) return
    context.fillStyle = wave
    for (let x = 0; x < width; x += 1) {
      const first = Math.floor((x * count) / width)
      const last = Math.max(first + 1, Math.floor(((x + 1) * count) / width))
      let lo = Infinity
      let hi = -Infinity
      for (let i = first; i < last && i < count; i += 1) {
        if (fmt.isNumber(lane.min[i])) lo = Math.min(lo, lane.min[i])
        if (fmt.isNumber(lane.max[i])) hi = Math.max(hi, lane.max[i])
      }
      if (lo > hi) continue // no finite sample in these buckets
      const y1 = Math.round(middle - Math.max(-1, Math.min(1, hi)) * scale)
      const y2 = Math.round(middle - Math.max(-1, Math.min(1, lo)) * scale)
      context.fillRect(x, y1, 1, Math.max(y2 - y1, 1))
    }
  })
}

function waveformCard(doc) {
  const lanes = waveformLanes(doc)
  if (!lanes.length) return { element: null, draw: () => {} }
  const seconds = pick(doc, 'format.duration_seconds', 'format.duration')
  const canvas = h('canvas', {
    class: 'waveform',
    id: 'waveform',
    role: 'img',
    'aria-label': `Waveform overview, ${lanes.length} channel${lanes.length === 1 ? '' : 's'}`,
  })
  const names = lanes.map((_, i) => (lanes.length === 2 ? STEREO[i] : `${i + 1}`))
  const frame = h(
    'div',
    { class: 'waveform-frame' },
    canvas,
    h('div', { class: 'lane-labels', 'aria-hidden': 'true' }, names.map((n) => h('span', {}, n))),
  )
  const axis = h(
    'div',
    { class: 'waveform-axis muted small' },
    h('span', {}, '0:00'),
    h('span', {}, fmt.isNumber(seconds) ? fmt.duration(seconds) : ''),
  )
  return {
    element: card('Waveform', frame, axis),
    draw: () => drawWaveform(canvas, lanes),
  }
}

/**
 * Replace `container`'s content with the rendered document. Returns the waveform's draw
 * function: call it once the container is visible (a hidden canvas has no width), and
 * again when the window is resized.
 */
export function renderResult(container, doc, job) {
  const wave = waveformCard(doc)
  // The hash the processor computed over the bytes it analysed (job view or document).
  const verified = job?.verified_sha256 || pick(doc, 'source.sha256')
  const summaryLine = h(
    'p',
    { class: 'result-title' },
    h('strong', {}, fmt.text(job?.filename)),
    ` · ${fmt.bytes(job?.size ?? pick(doc, 'source.size', 'size'))}`,
    typeof verified === 'string' && verified
      ? h('span', { class: 'sha256 muted small', title: verified }, ` · SHA-256 ${verified.slice(0, 16)}…`)
      : null,
  )
  container.replaceChildren(
    summaryLine,
    h('div', { class: 'cards' }, loudnessCard(doc), formatCard(doc), silenceCard(doc)),
    channelsCard(doc),
    wave.element,
    h(
      'details',
      { class: 'raw' },
      h('summary', {}, 'Full analysis document (JSON)'),
      h('pre', {}, JSON.stringify(doc, null, 2)),
    ),
  )
  return wave.draw
}
