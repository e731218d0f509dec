// The audiolift API as the page uses it. Every failure becomes an ApiError carrying the
// API's own {"error": {"code", "message"}} when there is one.

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message)
    this.name = 'ApiError'
    this.status = status
    this.code = code
    this.details = details
  }
}

/** The API's error envelope from a failed response, or a readable stand-in. */
export async function errorFromResponse(response) {
  let body = null
  try {
    body = await response.json()
  } catch {
    // not JSON: e.g. a proxy's HTML error page
  }
  const error = body && typeof body === 'object' ? body.error : null
  if (error && typeof error.message === 'string') {
    return new ApiError(response.status, String(error.code || 'error'), error.message, error.details)
  }
  const reason = response.statusText ? ` (${response.statusText})` : ''
  return new ApiError(
    response.status,
    `http_${response.status}`,
    `The API answered ${response.status}${reason}.`,
  )
}

function unreachable(apiUrl, cause) {
  return new ApiError(
    0,
    'network_error',
    `Cannot reach the API at ${apiUrl}. Check the URL, that the API is running, and that it ` +
      'allows this page’s origin (CORS).',
    { cause: String(cause) },
  )
}

const RETRIES = 3
const RETRY_STATUSES = new Set([429, 502, 503, 504])

/** How long to wait before trying again: what Retry-After asks (seconds, at most 10),
 *  else 0.5 s, 1 s, 2 s ... with jitter. */
export function retryDelayMs(retryAfter, attempt) {
  const asked = Number(retryAfter)
  if (retryAfter !== null && retryAfter !== '' && Number.isFinite(asked) && asked >= 0) {
    return Math.min(asked, 10) * 1000
  }
  return 500 * 2 ** attempt * (0.5 + Math.random() / 2)
}

/** Resolves after ``ms``; rejects with an AbortError as soon as ``signal`` aborts. */
export function pause(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new DOMException('stopped', 'AbortError'))
      return
    }
    const timer = setTimeout(resolve, ms)
    signal?.addEventListener('abort', () => {
      clearTimeout(timer)
      reject(new DOMException('stopped', 'AbortError'))
    })
  })
}

export class ApiClient {
  constructor(settings) {
    this.apiUrl = settings.apiUrl
    this.apiKey = settings.apiKey
  }

  /** One call to the API. An idempotent one (a GET or DELETE, or a POST marked so) is
   *  tried again when the API says it is busy or a dependency is (429, 502-504): after
   *  the Retry-After it asks for (at most 10 s), else a short growing wait; at most
   *  RETRIES more times. */
  async request(path, { method = 'GET', body, signal, idempotent = method !== 'POST' } = {}) {
    for (let attempt = 0; ; attempt += 1) {
      const response = await this.send(path, method, body, signal)
      if (response.ok) return response.status === 204 ? {} : response.json()
      if (!idempotent || attempt >= RETRIES || !RETRY_STATUSES.has(response.status)) {
        throw await errorFromResponse(response)
      }
      await pause(retryDelayMs(response.headers.get('Retry-After'), attempt), signal)
    }
  }

  async send(path, method, body, signal) {
    const headers = { Accept: 'application/json', Authorization: `Bearer ${this.apiKey}` }
    if (body !== undefined) headers['Content-Type'] = 'application/json'
    try {
      return await fetch(`${this.apiUrl}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      })
    } catch (cause) {
      if (cause && cause.name === 'AbortError') throw cause
      throw unreachable(this.apiUrl, cause)
    }
  }

  async health() {
    let response
    try {
      response = await fetch(`${this.apiUrl}/health`)
    } catch (cause) {
      throw unreachable(this.apiUrl, cause)
    }
    if (!response.ok) throw await errorFromResponse(response)
    return response.json()
  }

  /** A cheap authenticated call: proves the key works. */
  checkKey() {
    return this.request('/v1/jobs?limit=1')
  }

  /** The service's limits (max_upload_bytes, ...); null from an API that has no /v1/limits. */
  async limits() {
    try {
      return await this.request('/v1/limits')
    } catch (error) {
      if (error instanceof ApiError && (error.status === 404 || error.status === 405)) return null
      throw error
    }
  }

  /** A job and its multipart upload; ``checksum_algorithm: "CRC32C"`` declares that
   *  the parts will carry their CRC32C and completion the whole file's. */
  createUpload({ filename, size, content_type, checksum_algorithm }) {
    return this.request('/v1/uploads', {
      method: 'POST',
      body: { filename, size, content_type, checksum_algorithm },
    })
  }

  /** Signed URLs for these parts; with ``crc32cs`` ({"<n>": base64 CRC32C}) each URL
   *  requires its part's x-amz-checksum-crc32c header. */
  async signParts(jobId, partNumbers, crc32cs, signal) {
    const body = { part_numbers: partNumbers }
    if (crc32cs) body.checksum_crc32c = crc32cs
    const answer = await this.request(`/v1/uploads/${encodeURIComponent(jobId)}/parts`, {
      method: 'POST',
      body,
      signal,
      idempotent: true, // signing changes nothing
    })
    return answer.parts
  }

  /** The parts S3 holds for an unfinished upload, one per part number (the latest). */
  async uploadedParts(jobId) {
    const answer = await this.request(`/v1/uploads/${encodeURIComponent(jobId)}/parts`)
    const latest = new Map()
    for (const part of answer.parts || []) latest.set(part.part_number, part)
    return [...latest.values()]
  }

  /** Completes the upload; ``crc32c`` (base64) is the whole file's, which S3 checks. */
  completeUpload(jobId, parts, crc32c) {
    return this.request(`/v1/uploads/${encodeURIComponent(jobId)}/complete`, {
      method: 'POST',
      body: crc32c ? { parts, crc32c } : { parts },
      idempotent: true, // completing a completed upload answers with its job
    })
  }

  abortUpload(jobId) {
    return this.request(`/v1/uploads/${encodeURIComponent(jobId)}`, { method: 'DELETE' })
  }

  job(jobId, signal) {
    return this.request(`/v1/jobs/${encodeURIComponent(jobId)}`, { signal })
  }

  // A large document comes back as a 303 to a short-lived presigned S3 URL; fetch follows
  // it (dropping the Authorization header, as it must for another origin).
  result(jobId, signal) {
    return this.request(`/v1/jobs/${encodeURIComponent(jobId)}/result`, { signal })
  }

  cancelJob(jobId) {
    return this.request(`/v1/jobs/${encodeURIComponent(jobId)}`, { method: 'DELETE' })
  }
}

/**
 * @uppy/aws-s3 6 talks to a Companion endpoint with plain fetch() and has no option for
 * request headers (v6 removed `headers`), and reports a failed call only by its status
 * text. This wraps fetch for the Companion routes under the API URL alone: it adds the
 * bearer key and keeps the API's error so the page can show its message. Presigned part
 * PUTs go to S3 through XHR and never see the key.
 */
export function authorizeCompanionRequests(getSettings) {
  const nativeFetch = window.fetch.bind(window)
  const state = { lastError: null }
  window.fetch = async (input, init = {}) => {
    const { apiUrl, apiKey } = getSettings()
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url
    if (!apiUrl || !url.startsWith(`${apiUrl}/s3/multipart`)) return nativeFetch(input, init)
    const headers = new Headers(init.headers || (input instanceof Request ? input.headers : {}))
    headers.set('Authorization', `Bearer ${apiKey}`)
    let response
    try {
      response = await nativeFetch(input, { ...init, headers })
    } catch (cause) {
      if (!(cause && cause.name === 'AbortError')) state.lastError = unreachable(apiUrl, cause)
      throw cause
    }
    if (!response.ok) state.lastError = await errorFromResponse(response.clone())
    return response
  }
  return state
}
