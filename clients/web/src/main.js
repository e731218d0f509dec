// The upload page: settings → Uppy multipart upload through the API's Companion routes
// (parts PUT straight to S3) → the job's progress → the analysis.

import AwsS3 from '@uppy/aws-s3'
import Uppy from '@uppy/core'

import { ApiClient, ApiError, authorizeCompanionRequests } from './api.js'
import { $, show } from './dom.js'
import * as fmt from './format.js'
import { renderResult } from './result.js'
import { loadSettings, normalizeApiUrl, saveSettings } from './settings.js'

const UPLOAD_PREFIX = 'uploads/'
const FINISHED = new Set(['completed', 'failed', 'cancelled'])
const STATUS_TEXT = {
  awaiting_upload: 'waiting for upload',
  uploaded: 'queued',
  processing: 'analysing',
  completed: 'done',
  failed: 'failed',
  cancelled: 'cancelled',
}
const AUDIO_TYPES = ['audio/*', '.wav', '.wave', '.flac', '.mp3', '.ogg', '.oga', '.opus', '.aif', '.aiff', '.aifc', '.caf', '.w64', '.rf64']

let settings = loadSettings()
const companion = authorizeCompanionRequests(() => settings)
let api = new ApiClient(settings)
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

// --- settings ------------------------------------------------------------------------

function fillSettingsForm() {
  $('#api-url').value = settings.apiUrl
  $('#api-key').value = settings.apiKey
  const ready = Boolean(settings.apiUrl && settings.apiKey)
  $('#connection').textContent = ready ? new URL(settings.apiUrl).host : 'not set'
  $('#connection').dataset.state = ready ? 'set' : 'unset'
  if (!ready) $('#settings').open = true
}

async function checkConnection() {
  const status = $('#settings-status')
  status.textContent = 'Checking…'
  try {
    await api.health()
    await api.checkKey()
    status.textContent = 'Connected: the API accepts this key.'
    $('#connection').dataset.state = 'ok'
    return true
  } catch (error) {
    status.textContent = ''
    $('#connection').dataset.state = 'error'
    showError(error)
    return false
  }
}

async function onSaveSettings(event) {
  event.preventDefault()
  clearError()
  try {
    settings = { apiUrl: normalizeApiUrl($('#api-url').value), apiKey: $('#api-key').value.trim() }
  } catch (error) {
    showError(error)
    return
  }
  if (!settings.apiUrl || !settings.apiKey) {
    showError(new Error('Enter both the API URL and the API key.'))
    return
  }
  saveSettings(settings)
  api = new ApiClient(settings)
  configureUploader()
  fillSettingsForm()
  if (await checkConnection()) $('#settings').open = false
}

// --- upload --------------------------------------------------------------------------

const uppy = new Uppy({
  id: 'audiolift',
  autoProceed: false,
  restrictions: { allowedFileTypes: AUDIO_TYPES, maxNumberOfFiles: 1 },
})

function configureUploader() {
  const existing = uppy.getPlugin('AwsS3')
  if (existing) uppy.removePlugin(existing)
  if (!settings.apiUrl) return
  uppy.use(AwsS3, {
    // Our API serves Companion's S3 multipart routes under /s3/multipart.
    companionEndpoint: settings.apiUrl,
    // The API offers multipart only (no Companion /s3/params single PUT), whatever the size.
    shouldUseMultipart: true,
    limit: 1,
  })
}

function jobIdFromKey(key) {
  return typeof key === 'string' && key.startsWith(UPLOAD_PREFIX)
    ? key.slice(UPLOAD_PREFIX.length)
    : null
}

let uploadStartedAt = 0

function startUpload(file) {
  clearError()
  if (!settings.apiUrl || !settings.apiKey) {
    $('#settings').open = true
    showError(new Error('Enter the API URL and key first.'))
    return
  }
  if (file.size === 0) {
    // Uppy sends an empty file as one PUT through Companion's /s3/params, which the API
    // does not offer; and there is nothing to analyse anyway.
    showError(new Error(`${file.name} is empty: there is nothing to analyse.`))
    return
  }
  stopPolling()
  uppy.clear()
  companion.lastError = null
  try {
    uppy.addFile({
      name: file.name,
      type: file.type,
      data: file,
      source: 'local',
      // Sent as Companion metadata: lets the API refuse an oversized file at once.
      meta: { size: file.size },
    })
  } catch (error) {
    showError(
      error?.isRestriction
        ? new Error(`${file.name} is not an audio file. Choose a WAV, FLAC, MP3, OGG, AIFF or CAF recording.`)
        : error,
    )
    return
  }
  $('#upload-title').textContent = 'Uploading'
  $('#upload-name').textContent = file.name
  show($('#cancel-upload'))
  delete $('#upload').dataset.state
  delete $('#upload').dataset.jobId
  $('#upload-progress').value = 0
  $('#upload-text').textContent = `0 of ${fmt.bytes(file.size)}`
  show($('#picker'), false)
  show($('#upload'))
  show($('#job'), false)
  show($('#result'), false)
  show($('#again'), false)
  uploadStartedAt = performance.now()
  uppy.upload().catch(showError)
}

uppy.on('upload-progress', (file, progress) => {
  if (!file || !progress.bytesTotal) return
  const done = progress.bytesUploaded
  const total = progress.bytesTotal
  const seconds = (performance.now() - uploadStartedAt) / 1000
  $('#upload-progress').value = Math.round((done / total) * 100)
  const speed = seconds > 0.5 ? ` · ${fmt.rate(done / seconds)}` : ''
  $('#upload-text').textContent = `${fmt.bytes(done)} of ${fmt.bytes(total)}${speed}`
  const key = uppy.getFile(file.id)?.s3Multipart?.key
  const jobId = jobIdFromKey(key)
  if (jobId) $('#upload').dataset.jobId = jobId
})

uppy.on('upload-success', (file, response) => {
  $('#upload-progress').value = 100
  const body = response?.body || {}
  const jobId =
    jobIdFromKey(body.key) ||
    jobIdFromKey(uppy.getFile(file.id)?.s3Multipart?.key) ||
    String(response?.uploadURL || '').split('/v1/jobs/')[1]
  const seconds = (performance.now() - uploadStartedAt) / 1000
  $('#upload-title').textContent = 'Uploaded'
  $('#upload').dataset.state = 'done'
  show($('#cancel-upload'), false)
  $('#upload-text').textContent = `Uploaded ${fmt.bytes(file.size)} in ${seconds.toFixed(1)} s.`
  if (!jobId) {
    showError(new Error('The upload finished but the API did not say which job it became.'))
    return
  }
  followJob(jobId, { filename: file.name, size: file.size })
})

uppy.on('upload-error', (file, error) => {
  showError(companion.lastError || error)
  // Keep the progress of an upload that got somewhere; one refused at the start has none.
  const uploaded = file?.progress?.bytesUploaded || 0
  resetPicker({ keepUpload: uploaded > 0 })
  $('#upload-title').textContent = 'Upload stopped'
  $('#upload').dataset.state = 'failed'
  show($('#cancel-upload'), false)
  $('#upload-text').textContent = `Stopped after ${fmt.bytes(uploaded)}.`
})


function cancelUpload() {
  uppy.cancelAll()
  show($('#upload'), false)
  resetPicker()
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
  let delay = 500
  let failures = 0
  let job = null
  try {
    for (;;) {
      try {
        job = await api.job(jobId, controller.signal)
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
      if (job && FINISHED.has(job.status)) break
      await sleep(delay, controller.signal)
      delay = Math.min(delay * 1.5, 4000)
    }
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
  uppy.clear()
  clearError()
  currentJobId = null
  redrawWaveform = null
  const url = new URL(window.location.href)
  url.hash = ''
  window.history.replaceState(null, '', url)
  for (const id of ['#upload', '#job', '#result', '#again']) show($(id), false)
  resetPicker()
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
    if (file) startUpload(file)
  })
  $('#file-input').addEventListener('change', (event) => {
    const file = event.target.files?.[0]
    if (file) startUpload(file)
  })
}

function start() {
  fillSettingsForm()
  configureUploader()
  wireDropZone()
  $('#settings-form').addEventListener('submit', onSaveSettings)
  $('#cancel-upload').addEventListener('click', cancelUpload)
  $('#cancel-job').addEventListener('click', cancelJob)
  $('#again').addEventListener('click', startOver)
  let resizeTimer = null
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer)
    resizeTimer = setTimeout(() => redrawWaveform?.(), 100)
  })
  const hashJob = new URLSearchParams(window.location.hash.slice(1)).get('job')
  if (hashJob && settings.apiUrl) {
    show($('#picker'), false)
    followJob(hashJob)
  }
  document.body.dataset.ready = 'true'
}

start()
