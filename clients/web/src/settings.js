// Where the API is, which key to send, and how to upload (parts in flight per file,
// CRC32C checksums): from the query string (?api=…&key=…&parallel=…&checksums=off)
// or the settings form, remembered in localStorage. A key that came in the query string
// is removed from the address bar at once, so it does not stay in history or bookmarks.

import { DEFAULT_CONCURRENCY } from './uploader.js'

const STORAGE_KEY = 'audiolift.settings'
export const MAX_PARALLEL = 16

export function normalizeApiUrl(raw) {
  const value = String(raw || '').trim()
  if (!value) return ''
  const url = new URL(value, window.location.href)
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error('The API URL must start with http:// or https://.')
  }
  return url.href.replace(/\/+$/, '')
}

function normalizeParallel(raw) {
  const n = Math.floor(Number(raw))
  return Number.isFinite(n) && n >= 1 ? Math.min(n, MAX_PARALLEL) : DEFAULT_CONCURRENCY
}

function readStored() {
  try {
    const parsed = JSON.parse(window.localStorage.getItem(STORAGE_KEY) || '{}')
    return parsed && typeof parsed === 'object' ? parsed : {}
  } catch {
    return {}
  }
}

/** Saves the settings; returns them as saved (bounded, defaults filled in). */
export function saveSettings(settings) {
  const saved = {
    apiUrl: settings.apiUrl,
    apiKey: settings.apiKey,
    parallel: normalizeParallel(settings.parallel),
    checksums: settings.checksums !== false,
  }
  window.localStorage.setItem(STORAGE_KEY, JSON.stringify(saved))
  return saved
}

/** Settings from the query string (which wins, and is then saved) or localStorage. */
export function loadSettings() {
  const stored = readStored()
  const params = new URLSearchParams(window.location.search)
  const names = ['api', 'key', 'parallel', 'checksums']
  const fromQuery = names.some((name) => params.has(name))
  let apiUrl = params.get('api') ?? stored.apiUrl ?? ''
  const apiKey = (params.get('key') ?? stored.apiKey ?? '').trim()
  try {
    apiUrl = normalizeApiUrl(apiUrl)
  } catch {
    apiUrl = ''
  }
  const checksums = params.has('checksums')
    ? !['off', 'false', '0', 'no'].includes(params.get('checksums').toLowerCase())
    : stored.checksums !== false
  const settings = {
    apiUrl,
    apiKey,
    parallel: normalizeParallel(params.get('parallel') ?? stored.parallel),
    checksums,
  }
  if (!fromQuery) return settings
  for (const name of names) params.delete(name)
  const query = params.toString()
  const clean = `${window.location.pathname}${query ? `?${query}` : ''}${window.location.hash}`
  window.history.replaceState(null, '', clean)
  return saveSettings(settings)
}
