// Unfinished uploads, remembered in localStorage so that a reload (or a closed laptop)
// does not lose them: which job, for which API, and enough about the file to know it
// when it is picked again (name, size, last modified). Never the file's bytes: the
// browser cannot reopen a file by itself, so the person picks it again and the upload
// carries on with the parts S3 does not hold yet.

const STORAGE_KEY = 'audiolift.pending-uploads'
const MAX_REMEMBERED = 20

function readAll() {
  try {
    const parsed = JSON.parse(window.localStorage.getItem(STORAGE_KEY) || '[]')
    return Array.isArray(parsed) ? parsed.filter((entry) => entry && entry.jobId) : []
  } catch {
    return []
  }
}

function writeAll(entries) {
  try {
    window.localStorage.setItem(STORAGE_KEY, JSON.stringify(entries.slice(-MAX_REMEMBERED)))
  } catch {
    // Storage full or disabled: resuming after a reload is then not offered.
  }
}

function sameFile(entry, file) {
  return entry.name === file.name && entry.size === file.size && entry.lastModified === file.lastModified
}

/** Remember an upload that has started (replacing any older entry for the same file). */
export function rememberUpload(apiUrl, file, { jobId, partSize, partCount }) {
  const entries = readAll().filter((entry) => entry.jobId !== jobId && !(entry.apiUrl === apiUrl && sameFile(entry, file)))
  entries.push({
    jobId,
    apiUrl,
    name: file.name,
    size: file.size,
    lastModified: file.lastModified,
    partSize,
    partCount,
    startedAt: new Date().toISOString(),
  })
  writeAll(entries)
}

export function forgetUpload(jobId) {
  writeAll(readAll().filter((entry) => entry.jobId !== jobId))
}

/** The unfinished upload of this very file to this API, if there is one. */
export function findUpload(apiUrl, file) {
  return readAll().find((entry) => entry.apiUrl === apiUrl && sameFile(entry, file)) || null
}

export function pendingUploads(apiUrl) {
  return readAll().filter((entry) => entry.apiUrl === apiUrl)
}
