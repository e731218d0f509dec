// Where the API is and which key to send: from the query string (?api=…&key=…) or the
// settings form, remembered in localStorage. A key that came in the query string is
// removed from the address bar at once, so it does not stay in history or bookmarks.

const STORAGE_KEY = 'audiolift.settings'

export function normalizeApiUrl(raw) {
  const value = String(raw || '').trim()
  if (!value) return ''
  const url = new URL(value, window.location.href)
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error('The API URL must start with http:// or https://.')
  }
  return url.href.replace(/\/+$/, '')
}

function readStored() {
  try {
    const parsed = JSON.parse(window.localStorage.getItem(STORAGE_KEY) || '{}')
    return parsed && typeof parsed === 'object' ? parsed : {}
  } catch {
    return {}
  }
}

export function saveSettings(settings) {
  window.localStorage.setItem(
    STORAGE_KEY,
    JSON.stringify({ apiUrl: settings.apiUrl, apiKey: settings.apiKey }),
  )
}

/** Settings from the query string (which wins, and is then saved) or localStorage. */
export function loadSettings() {
  const stored = readStored()
  const params = new URLSearchParams(window.location.search)
  const fromQuery = params.has('api') || params.has('key')
  let apiUrl = params.get('api') ?? stored.apiUrl ?? ''
  const apiKey = (params.get('key') ?? stored.apiKey ?? '').trim()
  try {
    apiUrl = normalizeApiUrl(apiUrl)
  } catch {
    apiUrl = ''
  }
  const settings = { apiUrl, apiKey }
  if (fromQuery) {
    saveSettings(settings)
    params.delete('api')
    params.delete('key')
    const query = params.toString()
    const clean = `${window.location.pathname}${query ? `?${query}` : ''}${window.location.hash}`
    window.history.replaceState(null, '', clean)
  }
  return settings
}
