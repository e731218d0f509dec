// The upload page: settings (checked on load) → a picked file checked locally (audio?
// within the size limit? an unfinished upload of it to resume?) → a parallel multipart
// upload over the API's /v1 routes, parts PUT straight to S3 → the job's progress → the
// analysis.

import { ApiClient, ApiError } from './api.js'
import { $, h, show } from './dom.js'
import * as fmt from './format.js'
import { findUpload, forgetUpload, pendingUploads, rememberUpload } from './pending.js'
import { renderResult } from './result.js'
import { loadSettings, normalizeApiUrl, saveSettings } from './settings.js'
import { ACCEPTED_EXTENSIONS, sniffFile } from './sniff.js'
import { MultipartUpload } from './uploader.js'

const FINISHED = new Set(['completed', 'failed', 'cancelled'])
const STATUS_TEXT = {
  awaiting_upload: 'waiting for upload',
  uploaded: 'queued',
  processing: 'analysing',
  completed: 'done',
  failed: 'failed',
  cancelled: 'cancelled',
}

let settings = loadSettings()
let api = new ApiClient(settings)
let limits = null // GET /v1/limits, once the connection check has it
let connection = null // the running connection check (a promise of true/false)
let upload = null // the MultipartUpload in progress
let polling = null // AbortController of the running poll
let currentJobId = null
let redrawWaveform = null

// --- errors --------------------------------------------------------------------------

function showError(error) {
  const apiError = error instanceof ApiError ? error : null
  $('#error-message').textContent = error?.message || String(error)
  $('#error-code').textContent = apiError ? apiError.code : ''
  show($('#error-code'), Boolean(apiError))
  show($('#error'))
}

function clearError() {
  show($('#error'), false)
}

// --- settings and the connection check ------------------------------------------------

function fillSettingsForm() {
  $('#api-url').value = settings.apiUrl
  $('#api-key').value = settings.apiKey
  $('#parallel').value = String(settings.parallel)
  $('#checksums').checked = settings.checksums
  const ready = Boolean(settings.apiUrl && settings.apiKey)
  $('#connection').textContent = ready ? new URL(settings.apiUrl).host : 'not set'
  $('#connection').dataset.state = ready ? 'set' : 'unset'
  if (!ready) $('#settings').open = true
}

/** /health, then one authenticated call (the limits, which the page needs anyway). */
async function checkConnection() {
  const status = $('#settings-status')
  status.textContent = 'Checking…'
  $('#connection').dataset.state = 'checking'
  try {
    await api.health()
    limits = await api.limits()
    if (limits === null) await api.checkKey() // an API without /v1/limits
    status.textContent = 'Connected: the API accepts this key.'
    $('#connection').dataset.state = 'ok'
    return true
  } catch (error) {
    status.textContent = ''
    $('#connection').dataset.state = 'error'
    $('#settings').open = true
    showError(error)
    return false
  }
}

function startConnectionCheck() {
  connection = checkConnection()
  return connection
}

async function onSaveSettings(event) {
  event.preventDefault()
  clearError()
  try {
    settings = {
      apiUrl: normalizeApiUrl($('#api-url').value),
      apiKey: $('#api-key').value.trim(),
      parallel: Number($('#parallel').value),
      checksums: $('#checksums').checked,
    }
  } catch (error) {
    showError(error)
    return
  }
  if (!settings.apiUrl || !settings.apiKey) {
    showError(new Error('Enter both the API URL and the API key.'))
    return
  }
  settings = saveSettings(settings)
  api = new ApiClient(settings)
  fillSettingsForm()
  showPending()
  if (await startConnectionCheck()) $('#settings').open = false
}

// --- checks before an upload ------------------------------------------------------------

/** A reason to refuse this file before any request, or null. */
async function refusal(file) {
  if (file.size === 0) return `${file.name} is empty: there is nothing to analyse.`
  const verdict = await sniffFile(file)
  if (!verdict.ok) return `${file.name}: ${verdict.message}`
  const max = limits?.max_upload_bytes
  if (max && file.size > max) {
    return `${file.name} is ${fmt.bytes(file.size)}; the largest file this service accepts is ${fmt.bytes(max)}.`
  }
  return null
}

async function onFilePicked(file) {
  clearError()
  if (upload) {
    showError(new Error('An upload is already running: cancel it first.'))
    return
  }
  if (!settings.apiUrl || !settings.apiKey) {
    $('#settings').open = true
    showError(new Error('Enter the API URL and key first.'))
    return
  }
  const reason = await refusal(file)
  if (reason) {
    resetPicker()
    showError(new Error(reason))
    return
  }
  // The last check failed (the banner says why): try again, the API may be back.
  if (connection && !(await connection) && !(await startConnectionCheck())) return
  stopPolling()
  const pending = findUpload(settings.apiUrl, file)
  if (pending) offerResume(file, pending)
  else beginUpload(file)
}

// --- resuming an upload after a reload ---------------------------------------------------

async function offerResume(file, pending) {
  const offer = $('#resume-offer')
  let held = []
  try {
    const job = await api.job(pending.jobId)
    if (job.status !== 'awaiting_upload') throw new Error(job.status)
    held = await api.uploadedParts(pending.jobId)
  } catch {
    // Gone, finished, cancelled or expired: this file starts afresh.
    forgetUpload(pending.jobId)
    showPending()
    beginUpload(file)
    return
  }
  const heldBytes = held.reduce((sum, part) => sum + part.size, 0)
  $('#resume-text').textContent =
    `You started uploading ${file.name} on ${new Date(pending.startedAt).toLocaleString()}: ` +
    `${fmt.bytes(heldBytes)} of ${fmt.bytes(file.size)} (${held.length} of ${pending.partCount} parts) ` +
    'are already in S3.'
  offer.dataset.jobId = pending.jobId
  show($('#picker'), false)
  show($('#pending'), false)
  show(offer)
  const choose = (resume) => {
    show(offer, false)
    $('#resume-upload').onclick = null
    $('#restart-upload').onclick = null
    if (resume) {
      beginUpload(file, pending.jobId)
    } else {
      forgetUpload(pending.jobId)
      api.abortUpload(pending.jobId).catch(() => {}) // the old parts go; the job is cancelled
      beginUpload(file)
    }
  }
  $('#resume-upload').onclick = () => choose(true)
  $('#restart-upload').onclick = () => choose(false)
}

function showPending() {
  const list = $('#pending-list')
  list.replaceChildren()
  const entries = settings.apiUrl ? pendingUploads(settings.apiUrl) : []
  for (const entry of entries) {
    const forget = h('button', { type: 'button', class: 'button button-quiet button-small' }, 'Forget')
    forget.addEventListener('click', () => {
      forgetUpload(entry.jobId)
      api.abortUpload(entry.jobId).catch(() => {})
      showPending()
    })
    list.append(
      h('li', { dataset: { jobId: entry.jobId } },
        h('span', { class: 'filename' }, entry.name),
        ` · ${fmt.bytes(entry.size)} · started ${new Date(entry.startedAt).toLocaleString()} `,
        forget),
    )
  }
  show($('#pending'), entries.length > 0 && !upload)
}

// --- the upload ------------------------------------------------------------------------

function showProgress({ sent, total, bytesPerSecond, secondsLeft, paused, maxInFlight }) {
  const percent = total ? (sent / total) * 100 : 0
  $('#upload').dataset.maxInFlight = String(maxInFlight)
  $('#upload-progress').value = Math.floor(percent)
  const parts = [`${Math.floor(percent)} %`, `${fmt.bytes(sent)} of ${fmt.bytes(total)}`]
  if (paused) parts.push('paused')
  else {
    if (bytesPerSecond > 0) parts.push(fmt.rate(bytesPerSecond))
    if (secondsLeft !== null && secondsLeft !== undefined) parts.push(`${fmt.eta(secondsLeft)} left`)
  }
  $('#upload-text').textContent = parts.join(' · ')
}

function uploadPanel(file, { resuming }) {
  $('#upload-title').textContent = resuming ? 'Resuming' : 'Uploading'
  $('#upload-name').textContent = file.name
  const panel = $('#upload')
  delete panel.dataset.state
  delete panel.dataset.jobId
  delete panel.dataset.seconds
  $('#upload-progress').value = 0
  $('#upload-text').textContent = `0 % · 0 B of ${fmt.bytes(file.size)}`
  $('#pause-upload').textContent = 'Pause'
  show($('#pause-upload'))
  show($('#cancel-upload'))
  for (const id of ['#picker', '#pending', '#job', '#result', '#again']) show($(id), false)
  show(panel)
}

function beginUpload(file, resumeJobId = null) {
  uploadPanel(file, { resuming: Boolean(resumeJobId) })
  const startedAt = performance.now()
  upload = new MultipartUpload(api, file, {
    concurrency: settings.parallel,
    checksums: settings.checksums,
    hooks: {
      created: ({ jobId, partSize, partCount, heldParts }) => {
        rememberUpload(settings.apiUrl, file, { jobId, partSize, partCount })
        $('#upload').dataset.jobId = jobId
        $('#upload').dataset.partCount = String(partCount)
        $('#upload').dataset.heldParts = String(heldParts)
      },
      progress: showProgress,
    },
  })
  const current = upload
  finishUpload(current, current.start({ resumeJobId }), startedAt)
}

async function finishUpload(current, running, startedAt) {
  let job
  try {
    job = await running
  } catch (error) {
    if (upload !== current) return
    upload = null
    uploadStopped(current, error)
    return
  }
  if (!job || upload !== current) return // paused or cancelled
  upload = null
  forgetUpload(current.jobId)
  const seconds = (performance.now() - startedAt) / 1000
  const panel = $('#upload')
  panel.dataset.state = 'done'
  panel.dataset.seconds = seconds.toFixed(3)
  $('#upload-title').textContent = 'Uploaded'
  $('#upload-progress').value = 100
  show($('#pause-upload'), false)
  show($('#cancel-upload'), false)
  const average = seconds > 0 ? ` (${fmt.rate(current.file.size / seconds)})` : ''
  $('#upload-text').textContent = `Uploaded ${fmt.bytes(current.file.size)} in ${seconds.toFixed(1)} s${average}.`
  followJob(job.job_id, { filename: current.file.name, size: current.file.size })
}

function uploadStopped(current, error) {
  const known = error instanceof ApiError && [404, 409].includes(error.status)
  if (known && current.jobId) forgetUpload(current.jobId) // nothing left to resume
  if (error instanceof ApiError && error.status === 413) {
    // An API without /v1/limits refuses the size only here, before any part is sent.
    showError(new ApiError(413, error.code, `${current.file.name} (${fmt.bytes(current.file.size)}) is too large: ${error.message}`))
  } else {
    showError(error)
  }
  resetPicker({ keepUpload: current.sentBytes > 0 })
  $('#upload-title').textContent = 'Upload stopped'
  $('#upload').dataset.state = 'failed'
  show($('#pause-upload'), false)
  show($('#cancel-upload'), false)
  $('#upload-text').textContent =
    `Stopped after ${fmt.bytes(current.sentBytes)}.` +
    (known ? '' : ' Pick the same file again to resume.')
  showPending()
}

function togglePause() {
  if (!upload) return
  const button = $('#pause-upload')
  if (upload.paused) {
    button.textContent = 'Pause'
    $('#upload').dataset.state = 'running'
    finishUpload(upload, upload.resume(), performance.now())
  } else {
    upload.pause()
    button.textContent = 'Resume'
    $('#upload').dataset.state = 'paused'
  }
}

async function cancelUpload() {
  const current = upload
  upload = null
  show($('#upload'), false)
  resetPicker()
  if (!current) return
  forgetUpload(current.jobId)
  try {
    await current.cancel()
  } catch (error) {
    showError(error)
  }
  showPending()
}

// --- the job -------------------------------------------------------------------------

function stopPolling() {
  polling?.abort()
  polling = null
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms)
    signal.addEventListener('abort', () => {
      clearTimeout(timer)
      reject(new DOMException('stopped', 'AbortError'))
    })
  })
}

function showJob(job) {
  const status = job.status
  $('#job-status').textContent = STATUS_TEXT[status] || status
  $('#job-status').dataset.status = status
  $('#job').dataset.status = status
  $('#job').dataset.jobId = job.job_id
  const progress = status === 'completed' ? 100 : Number(job.progress) || 0
  $('#job-progress').value = progress
  let detail = `Job ${job.job_id}`
  if (status === 'uploaded') detail += ' · uploaded; waiting for the analysis to start'
  else if (status === 'processing') detail += ` · ${progress} % analysed`
  else if (status === 'awaiting_upload') detail += ' · the upload is not complete yet'
  $('#job-text').textContent = detail
  show($('#cancel-job'), !FINISHED.has(status))
}

async function pollJob(jobId, signal) {
  let delay = 500
  let failures = 0
  let job = null
  for (;;) {
    try {
      job = await api.job(jobId, signal)
      failures = 0
    } catch (error) {
      if (error.name === 'AbortError') throw error
      // Retry what may pass (network, throttling, 5xx); stop on a definite refusal.
      const transient = !(error instanceof ApiError) || error.status === 0 ||
        error.status === 429 || error.status >= 500
      failures += 1
      if (!transient || failures > 5) throw error
    }
    if (job) showJob(job)
    if (job && FINISHED.has(job.status)) return job
    await sleep(delay, signal)
    delay = Math.min(delay * 1.5, 4000)
  }
}

async function followJob(jobId, known = {}) {
  stopPolling()
  const controller = new AbortController()
  polling = controller
  currentJobId = jobId
  const url = new URL(window.location.href)
  url.hash = `job=${encodeURIComponent(jobId)}`
  window.history.replaceState(null, '', url)
  show($('#job'))
  showJob({ job_id: jobId, status: 'uploaded', progress: 0, ...known })
  try {
    const job = await pollJob(jobId, controller.signal)
    if (job.status === 'completed') {
      const doc = await api.result(jobId, controller.signal)
      const container = $('#result')
      const draw = renderResult(container, doc, job)
      show(container)
      draw()
      redrawWaveform = draw
    } else if (job.status === 'failed') {
      const failure = job.error || {}
      showError(new ApiError(200, failure.code || 'failed', failure.message || 'The analysis failed.'))
    }
  } catch (error) {
    if (error.name !== 'AbortError') showError(error)
  } finally {
    if (polling === controller) polling = null
    show($('#cancel-job'), false)
    show($('#again'))
  }
}

async function cancelJob() {
  if (!currentJobId) return
  try {
    await api.cancelJob(currentJobId)
  } catch (error) {
    showError(error)
  }
}

// --- picking files -------------------------------------------------------------------

function resetPicker({ keepUpload = false } = {}) {
  show($('#picker'))
  if (!keepUpload) show($('#upload'), false)
  $('#file-input').value = ''
}

function startOver() {
  stopPolling()
  clearError()
  currentJobId = null
  redrawWaveform = null
  const url = new URL(window.location.href)
  url.hash = ''
  window.history.replaceState(null, '', url)
  for (const id of ['#upload', '#job', '#result', '#again']) show($(id), false)
  resetPicker()
  showPending()
}

function wireDropZone() {
  const zone = $('#picker')
  const active = (on) => zone.classList.toggle('dragging', on)
  zone.addEventListener('dragover', (event) => {
    event.preventDefault()
    active(true)
  })
  zone.addEventListener('dragleave', () => active(false))
  zone.addEventListener('drop', (event) => {
    event.preventDefault()
    active(false)
    const file = event.dataTransfer?.files?.[0]
    if (file) onFilePicked(file).catch(showError)
  })
  $('#file-input').addEventListener('change', (event) => {
    const file = event.target.files?.[0]
    if (file) onFilePicked(file).catch(showError)
  })
}

function start() {
  // What the file dialog offers comes from the same table the sniffer uses.
  $('#file-input').accept = ['audio/*', ...ACCEPTED_EXTENSIONS].join(',')
  fillSettingsForm()
  wireDropZone()
  $('#settings-form').addEventListener('submit', onSaveSettings)
  $('#pause-upload').addEventListener('click', togglePause)
  $('#cancel-upload').addEventListener('click', cancelUpload)
  $('#cancel-job').addEventListener('click', cancelJob)
  $('#again').addEventListener('click', startOver)
  let resizeTimer = null
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer)
    resizeTimer = setTimeout(() => redrawWaveform?.(), 100)
  })
  window.addEventListener('beforeunload', (event) => {
    // An upload survives a reload (it resumes), but say so before one is interrupted.
    if (upload && !upload.paused) event.preventDefault()
  })
  showPending()
  if (settings.apiUrl && settings.apiKey) startConnectionCheck()
  const hashJob = new URLSearchParams(window.location.hash.slice(1)).get('job')
  if (hashJob && settings.apiUrl) {
    show($('#picker'), false)
    show($('#pending'), false)
    followJob(hashJob)
  }
  document.body.dataset.ready = 'true'
}

start()
