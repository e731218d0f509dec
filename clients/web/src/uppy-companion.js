// Uppy (@uppy/core + @uppy/aws-s3) against the API's Companion-compatible
// /s3/multipart routes: the example for apps that already use Uppy, and the proof (the
// browser tests drive it) that those routes keep working. The main page uploads through
// the /v1 routes instead (uploader.js): parallel parts of the API's own size, per-part
// checksums, resume after a reload. Uppy 6 sends a file's parts one at a time.

import AwsS3 from '@uppy/aws-s3'
import Uppy from '@uppy/core'

import { authorizeCompanionRequests } from './api.js'
import { $ } from './dom.js'
import * as fmt from './format.js'
import { loadSettings } from './settings.js'

const UPLOAD_PREFIX = 'uploads/'
const settings = loadSettings()
const companion = authorizeCompanionRequests(() => settings)

const uppy = new Uppy({ id: 'audiolift-companion', autoProceed: true, restrictions: { maxNumberOfFiles: 1 } })
uppy.use(AwsS3, {
  companionEndpoint: settings.apiUrl,
  // The API offers multipart only (no Companion /s3/params single PUT), whatever the size.
  shouldUseMultipart: true,
  limit: 1,
})

function jobIdFromKey(key) {
  return typeof key === 'string' && key.startsWith(UPLOAD_PREFIX) ? key.slice(UPLOAD_PREFIX.length) : null
}

uppy.on('upload-progress', (file, progress) => {
  if (!progress.bytesTotal) return
  $('#status').textContent = `${fmt.bytes(progress.bytesUploaded)} of ${fmt.bytes(progress.bytesTotal)}`
})

uppy.on('upload-success', (file, response) => {
  const jobId = jobIdFromKey(response?.body?.key) || jobIdFromKey(uppy.getFile(file.id)?.s3Multipart?.key)
  $('#status').textContent = `Uploaded ${file.name}: job ${jobId}`
  $('#status').dataset.jobId = jobId || ''
  $('#status').dataset.state = 'done'
})

uppy.on('upload-error', (file, error) => {
  $('#status').textContent = (companion.lastError || error).message
  $('#status').dataset.state = 'failed'
})

$('#file').addEventListener('change', (event) => {
  const file = event.target.files?.[0]
  if (!file) return
  uppy.clear()
  companion.lastError = null
  uppy.addFile({ name: file.name, type: file.type, data: file, source: 'local', meta: { size: file.size } })
})

document.body.dataset.ready = 'true'
