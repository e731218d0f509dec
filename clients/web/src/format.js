// Numbers as a person reads them. Analysis values may be null (digital silence is -inf
// dB, sent as null) or missing (an older or newer document): both read as "—".

const DASH = '—'

export function isNumber(value) {
  return typeof value === 'number' && Number.isFinite(value)
}

export function bytes(value) {
  if (!isNumber(value)) return DASH
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let n = value
  let unit = 0
  while (n >= 1024 && unit < units.length - 1) {
    n /= 1024
    unit += 1
  }
  return `${unit === 0 ? n : n.toFixed(n < 10 ? 2 : 1)} ${units[unit]}`
}

export function duration(seconds) {
  if (!isNumber(seconds)) return DASH
  if (seconds < 60) return `${seconds.toFixed(seconds < 1 ? 3 : 2)} s`
  const whole = Math.round(seconds)
  const h = Math.floor(whole / 3600)
  const m = Math.floor((whole % 3600) / 60)
  const s = String(whole % 60).padStart(2, '0')
  return h ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`
}

/** A level in dB; null means minus infinity when `nullIsSilence` (peak/RMS of silence). */
export function decibels(value, unit, { nullIsSilence = false, digits = 1 } = {}) {
  if (value === null && nullIsSilence) return `−∞ ${unit}`
  if (!isNumber(value)) return DASH
  const text = value.toFixed(digits).replace('-', '−')
  return `${text} ${unit}`
}

export function scientific(value, digits = 2) {
  if (!isNumber(value)) return DASH
  return value.toExponential(digits).replace(/-/g, '−')
}

export function percent(fraction, digits = 1) {
  if (!isNumber(fraction)) return DASH
  return `${(fraction * 100).toFixed(digits)} %`
}

export function integer(value) {
  if (!isNumber(value)) return DASH
  return Math.round(value).toLocaleString('en-US')
}

export function hertz(value) {
  if (!isNumber(value)) return DASH
  return value >= 1000 ? `${(value / 1000).toLocaleString('en-US')} kHz` : `${value} Hz`
}

export function rate(bytesPerSecond) {
  if (!isNumber(bytesPerSecond) || bytesPerSecond <= 0) return ''
  return `${bytes(bytesPerSecond)}/s`
}

export function text(value) {
  if (value === null || value === undefined || value === '') return DASH
  return String(value)
}

/** Time left, as the CLI shows it: "45 s", "3 min 05 s", "1 h 02 min". */
export function eta(seconds) {
  if (!isNumber(seconds) || seconds < 0) return DASH
  const whole = Math.ceil(seconds)
  if (whole < 60) return `${whole} s`
  const h = Math.floor(whole / 3600)
  const m = Math.floor((whole % 3600) / 60)
  const s = String(whole % 60).padStart(2, '0')
  return h ? `${h} h ${String(m).padStart(2, '0')} min` : `${m} min ${s} s`
}
