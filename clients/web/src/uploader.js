// A multipart upload over the API's /v1 routes, the way the CLI does it: the API's own
// part plan (from POST /v1/uploads), part URLs signed just in time in batches, several
// parts of the file in flight at once (bounded), retries with backoff, pause, resume
// (also after a reload: the parts S3 already holds are not sent again) and cancel.
//
// Integrity: the upload is declared CRC32C at creation; each part's CRC32C is signed into
// its URL (S3 refuses bytes that changed on the way), and completion states the whole
// file's CRC32C, combined from the parts' (crc32c.js; no second pass), which S3 checks
// against the object it assembles.
//
// Memory: a part is never held as a whole. Its CRC is computed from a stream of the
// part's bytes (checksums.js, in a worker), and the PUT sends the File's own slice (a
// Blob), which the browser streams from disk.

import { ApiError, pause } from './api.js'
import { partCrc32c } from './checksums.js'
import { crc32cBase64, crc32cOfPieces } from './crc32c.js'

export const DEFAULT_CONCURRENCY = 6
const MAX_ATTEMPTS = 5
const SIGN_BATCH_MAX = 100

class PartError extends Error {
  constructor(status, code, message, { retry = true, resign = false } = {}) {
    super(message)
    this.status = status
    this.code = code
    this.retry = retry
    this.resign = resign
  }
}

/** S3's XML error code from a failed PUT (readable when the bucket's CORS allows it). */
function s3ErrorCode(text) {
  const match = /<Code>([^<]+)<\/Code>/.exec(text || '')
  return match ? match[1] : ''
}

/** One PUT of a Blob to a presigned URL; resolves with the part's ETag. */
function putPart(url, headers, body, onProgress, signal) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest()
    xhr.open('PUT', url)
    for (const [name, value] of Object.entries(headers || {})) xhr.setRequestHeader(name, value)
    xhr.upload.onprogress = (event) => onProgress(event.loaded)
    const abort = () => xhr.abort()
    signal.addEventListener('abort', abort)
    const done = () => signal.removeEventListener('abort', abort)
    xhr.onload = () => {
      done()
      if (xhr.status >= 200 && xhr.status < 300) {
        const etag = xhr.getResponseHeader('ETag')
        if (!etag) {
          reject(
            new PartError(xhr.status, 'no_etag', 'S3 did not expose the part’s ETag (the bucket’s CORS rule must list ETag in ExposeHeaders).', { retry: false }),
          )
          return
        }
        resolve(etag)
        return
      }
      const code = s3ErrorCode(xhr.responseText)
      if (code === 'BadDigest' || code === 'InvalidDigest') {
        reject(new PartError(xhr.status, 'bad_digest', 'S3 refused a part whose bytes did not match their checksum.', { retry: true }))
      } else if (xhr.status === 403) {
        // Most likely an expired URL: sign it again.
        reject(new PartError(403, code || 'forbidden', 'S3 refused the part’s URL.', { resign: true }))
      } else {
        const retry = xhr.status >= 500 || xhr.status === 429 || xhr.status === 408
        reject(new PartError(xhr.status, code || `http_${xhr.status}`, `S3 answered ${xhr.status} to a part upload.`, { retry }))
      }
    }
    xhr.onerror = () => {
      done()
      reject(new PartError(0, 'network_error', 'The connection to S3 failed during a part upload.'))
    }
    xhr.onabort = () => {
      done()
      reject(new DOMException('stopped', 'AbortError'))
    }
    xhr.send(body)
  })
}

/**
 * One file's upload. ``start()`` creates the job (or, with ``resumeJobId``, picks up an
 * unfinished one) and sends the parts; ``pause()``, ``resume()`` and ``cancel()`` steer it.
 * Events (callbacks in ``hooks``): created({jobId, partSize, partCount}), progress({sent,
 * total, bytesPerSecond, secondsLeft}), partDone(partNumber), and the returned promise
 * settles with the completed job or the error that stopped it.
 */
export class MultipartUpload {
  constructor(api, file, { concurrency = DEFAULT_CONCURRENCY, checksums = true, hooks = {} } = {}) {
    this.api = api
    this.file = file
    this.concurrency = Math.max(1, Math.floor(concurrency) || DEFAULT_CONCURRENCY)
    this.checksums = checksums
    this.hooks = hooks
    this.withCrc32c = false // the upload was created with checksum_algorithm CRC32C
    this.crc32cs = new Map() // part number -> the CRC32C of the file's bytes there
    this.jobId = null
    this.partSize = 0
    this.partCount = 0
    this.etags = new Map() // part number -> ETag, for the parts S3 holds
    this.inFlight = new Map() // part number -> bytes sent so far
    this.signed = new Map() // part number -> {url, headers}
    this.paused = false
    this.cancelled = false
    this.controller = new AbortController()
    this.rate = { since: 0, sentAtStart: 0 }
    this.maxInFlight = 0
  }

  get sentBytes() {
    let sent = 0
    for (const number of this.etags.keys()) sent += this.partBytes(number)
    for (const bytes of this.inFlight.values()) sent += bytes
    return sent
  }

  partBytes(number) {
    const start = (number - 1) * this.partSize
    return Math.max(0, Math.min(this.partSize, this.file.size - start))
  }

  partBlob(number) {
    const start = (number - 1) * this.partSize
    return this.file.slice(start, start + this.partBytes(number))
  }

  /** Create the job, or adopt ``resumeJobId`` and learn which parts S3 already holds. */
  async start({ resumeJobId = null } = {}) {
    if (resumeJobId) {
      const job = await this.api.job(resumeJobId)
      if (job.status !== 'awaiting_upload') {
        throw new ApiError(409, 'not_resumable', `That upload cannot be resumed: its job is ${job.status.replace('_', ' ')}.`)
      }
      this.jobId = job.job_id
      this.partSize = job.part_size
      this.partCount = job.part_count
      // Whatever the setting says now: completion of a CRC32C upload needs the file's CRC.
      this.withCrc32c = job.checksum_algorithm === 'CRC32C'
      const held = await this.api.uploadedParts(this.jobId)
      for (const part of held) {
        // A part of the wrong size (a PUT cut short elsewhere) is sent again.
        if (part.size === this.partBytes(part.part_number)) this.etags.set(part.part_number, part.etag)
      }
    } else {
      const created = await this.api.createUpload({
        filename: this.file.name,
        size: this.file.size,
        content_type: this.file.type || undefined,
        checksum_algorithm: this.checksums ? 'CRC32C' : undefined,
      })
      this.withCrc32c = this.checksums
      this.jobId = created.job_id
      this.partSize = created.part_size
      this.partCount = created.part_count
      // The first batch comes signed without checksums; with checksums every part is
      // signed again with its CRC32C just before it is sent.
      if (!this.withCrc32c) {
        for (const part of created.parts || []) this.signed.set(part.part_number, part)
      }
    }
    this.hooks.created?.({
      jobId: this.jobId,
      partSize: this.partSize,
      partCount: this.partCount,
      heldParts: this.etags.size,
    })
    return this.run()
  }

  pause() {
    if (this.paused || this.cancelled) return
    this.paused = true
    this.controller.abort() // parts in flight are dropped and sent again on resume
  }

  resume() {
    if (!this.paused || this.cancelled) return Promise.resolve(null)
    this.paused = false
    this.controller = new AbortController()
    return this.run()
  }

  /** Stop and abort the multipart upload (the job ends cancelled). */
  async cancel() {
    this.cancelled = true
    this.controller.abort()
    if (this.jobId) await this.api.abortUpload(this.jobId)
  }

  missingParts() {
    const missing = []
    for (let number = 1; number <= this.partCount; number += 1) {
      if (!this.etags.has(number)) missing.push(number)
    }
    return missing
  }

  /** Sends the missing parts; resolves with the completed job, or null when paused. */
  async run() {
    const signal = this.controller.signal
    const queue = this.missingParts()
    this.rate = { since: performance.now(), sentAtStart: this.sentBytes }
    this.reportProgress(true)
    const preparer = new PartPreparer(this, queue, signal)
    const worker = async () => {
      for (;;) {
        const part = await preparer.next()
        if (!part) return
        await this.sendPart(part, preparer, signal)
      }
    }
    try {
      await Promise.all(Array.from({ length: Math.min(this.concurrency, queue.length) }, worker))
    } catch (error) {
      this.inFlight.clear()
      if (error?.name === 'AbortError' && (this.paused || this.cancelled)) {
        this.reportProgress(true)
        return null
      }
      this.controller.abort() // stop the other workers
      throw error
    }
    if (this.paused || this.cancelled) return null
    const parts = [...this.etags.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([part_number, etag]) => ({ part_number, etag }))
    const crc32c = await this.fileCrc32c()
    try {
      return await this.api.completeUpload(this.jobId, parts, crc32c)
    } catch (error) {
      if (!(error instanceof ApiError && error.code === 'checksum_mismatch')) throw error
      // S3 holds parts of another version of the file (it changed between the start of
      // the upload and a resume): they can never make this file, so the upload goes.
      await this.api.abortUpload(this.jobId).catch(() => {})
      throw new ApiError(409, 'checksum_mismatch', `${this.file.name} changed since its upload started: the parts already uploaded are not this file’s. Pick it again to upload it afresh.`)
    }
  }

  /** The CRC32C of the parts S3 held before this page sent any (a resumed upload),
   *  computed from the file's bytes: if the file changed there, the whole file's CRC
   *  then differs from the object's and S3 refuses to complete. Started as soon as the
   *  parts to send are hashed, so it overlaps their PUTs. */
  hashHeldParts() {
    if (!this.withCrc32c) return Promise.resolve()
    this.hashingHeld ??= (async () => {
      for (const number of this.etags.keys()) {
        if (!this.crc32cs.has(number)) this.crc32cs.set(number, await partCrc32c(this.partBlob(number)))
      }
    })().finally(() => {
      this.hashingHeld = null
    })
    return this.hashingHeld
  }

  /** The whole file's CRC32C (base64), combined from its parts'; null without CRC32C. */
  async fileCrc32c() {
    if (!this.withCrc32c) return null
    await this.hashHeldParts()
    const pieces = []
    for (let number = 1; number <= this.partCount; number += 1) {
      pieces.push({ crc: this.crc32cs.get(number), size: this.partBytes(number) })
    }
    return crc32cBase64(crc32cOfPieces(pieces))
  }

  async sendPart(part, preparer, signal) {
    let attempt = 0
    let { url, headers } = part
    for (;;) {
      attempt += 1
      this.inFlight.set(part.number, 0)
      this.maxInFlight = Math.max(this.maxInFlight, this.inFlight.size)
      try {
        const etag = await putPart(url, headers, this.partBlob(part.number), (loaded) => {
          this.inFlight.set(part.number, loaded)
          this.reportProgress()
        }, signal)
        this.inFlight.delete(part.number)
        this.etags.set(part.number, etag)
        this.hooks.partDone?.(part.number)
        this.reportProgress(true)
        return
      } catch (error) {
        this.inFlight.delete(part.number)
        if (!(error instanceof PartError)) throw error
        if (!error.retry || attempt >= MAX_ATTEMPTS) {
          if (error.code === 'bad_digest') {
            throw new ApiError(400, 'checksum_mismatch', `${this.file.name} changed while it was being uploaded (part ${part.number} no longer matches its checksum). Pick the file again.`)
          }
          throw new ApiError(error.status, error.code, `${error.message} Gave up after ${attempt} tries.`)
        }
        await pause(Math.min(8000, 250 * 2 ** attempt) * (0.5 + Math.random()), signal)
        if (error.resign || error.code === 'bad_digest') {
          // A new URL (an old one may have expired), with the part hashed again.
          ;({ url, headers } = await preparer.resign(part.number))
        }
      }
    }
  }

  /** Tells the page how far the upload is: at most every 100 ms (a DOM update per
   *  progress event of six PUTs costs the CPU the upload needs), and always when forced. */
  reportProgress(force = false) {
    const now = performance.now()
    if (!force && now - (this.lastReport || 0) < 100) return
    this.lastReport = now
    const total = this.file.size
    const sent = Math.min(this.sentBytes, total)
    const seconds = (performance.now() - this.rate.since) / 1000
    const bytesPerSecond = seconds > 0.5 ? (sent - this.rate.sentAtStart) / seconds : 0
    const secondsLeft = bytesPerSecond > 0 ? (total - sent) / bytesPerSecond : null
    this.hooks.progress?.({
      sent,
      total,
      bytesPerSecond,
      secondsLeft,
      paused: this.paused,
      maxInFlight: this.maxInFlight,
    })
  }
}

/**
 * Hands the workers their parts, each with a signed URL (and the headers to send with
 * it). Signing is done ahead, in batches: when fewer than ``concurrency`` signed parts
 * are waiting, the next batch (with CRC32Cs: each part hashed first) is signed in one
 * call, so the API is asked about once per ``concurrency`` parts, not once per part
 * (after the first few batches, which are smaller to start sooner).
 */
class PartPreparer {
  constructor(upload, queue, signal) {
    this.upload = upload
    this.queue = queue.slice()
    this.signal = signal
    this.ready = []
    this.preparing = null
    // The first batches are small, so the first PUTs start after one part is hashed,
    // not ``concurrency`` parts; they double up to ``concurrency``.
    this.batchSize = 1
  }

  async next() {
    for (;;) {
      if (this.signal.aborted) throw new DOMException('stopped', 'AbortError')
      if (this.ready.length) {
        const part = this.ready.shift()
        this.topUp() // sign the next batch while this part goes up
        return part
      }
      if (!this.queue.length && !this.preparing) {
        this.upload.hashHeldParts().catch(() => {}) // a failure shows at completion
        return null
      }
      await this.topUp()
    }
  }

  topUp() {
    const upload = this.upload
    if (this.preparing || !this.queue.length || this.ready.length >= upload.concurrency) {
      return this.preparing
    }
    const batch = this.queue.splice(0, Math.min(this.batchSize, SIGN_BATCH_MAX))
    this.batchSize = Math.min(this.batchSize * 2, upload.concurrency)
    this.preparing = this.prepare(batch).finally(() => {
      this.preparing = null
    })
    // A failure reaches the worker that waits on it; the others see the abort.
    this.preparing.catch(() => {})
    return this.preparing
  }

  async prepare(numbers) {
    const upload = this.upload
    const unsigned = numbers.filter((n) => !upload.signed.has(n))
    if (unsigned.length) await this.sign(unsigned)
    for (const number of numbers) {
      const { url, headers } = upload.signed.get(number)
      upload.signed.delete(number)
      this.ready.push({ number, url, headers: headers || {} })
    }
  }

  async sign(numbers) {
    const upload = this.upload
    let crc32cs
    if (upload.withCrc32c) {
      crc32cs = {}
      for (const number of numbers) {
        const crc = await partCrc32c(upload.partBlob(number))
        if (this.signal.aborted) throw new DOMException('stopped', 'AbortError')
        upload.crc32cs.set(number, crc)
        crc32cs[String(number)] = crc32cBase64(crc)
      }
    }
    const signed = await upload.api.signParts(upload.jobId, numbers, crc32cs, this.signal)
    for (const part of signed) upload.signed.set(part.part_number, part)
  }

  async resign(number) {
    await this.sign([number])
    const { url, headers } = this.upload.signed.get(number)
    this.upload.signed.delete(number)
    return { url, headers: headers || {} }
  }
}
