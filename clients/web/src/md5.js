// A part's MD5 (base64, as Content-MD5 wants it), read in 4 MiB slices so a part is never
// held whole; in a worker when the page can start one (md5-worker.js), else here.

import { createMD5 } from 'hash-wasm'

const HASH_SLICE_BYTES = 4 * 1024 * 1024

function base64(bytes) {
  let binary = ''
  for (const byte of bytes) binary += String.fromCharCode(byte)
  return btoa(binary)
}

/** The base64 MD5 of a Blob, read in slices (never the whole Blob at once). */
export async function blobMd5(blob) {
  const hasher = await createMD5()
  hasher.init()
  for (let offset = 0; offset < blob.size; offset += HASH_SLICE_BYTES) {
    const slice = blob.slice(offset, Math.min(offset + HASH_SLICE_BYTES, blob.size))
    hasher.update(new Uint8Array(await slice.arrayBuffer()))
  }
  return base64(hasher.digest('binary'))
}

let worker = null
let workerFailed = false
let nextId = 0
const waiting = new Map()

function startWorker() {
  if (worker || workerFailed || typeof Worker === 'undefined') return worker
  try {
    // dist/md5-worker.js sits beside dist/app.js.
    worker = new Worker(new URL('./md5-worker.js', import.meta.url), { type: 'module' })
  } catch {
    workerFailed = true
    return null
  }
  worker.onmessage = (event) => {
    const { id, md5, error } = event.data
    const pending = waiting.get(id)
    waiting.delete(id)
    if (error) pending?.reject(new Error(error))
    else pending?.resolve(md5)
  }
  worker.onerror = () => {
    // The worker could not load: hash on the main thread from now on.
    workerFailed = true
    worker = null
    const stranded = [...waiting.values()]
    waiting.clear()
    for (const pending of stranded) blobMd5(pending.blob).then(pending.resolve, pending.reject)
  }
  return worker
}

/** The base64 MD5 of a Blob, off the main thread where possible. */
export function partMd5(blob) {
  const hasher = startWorker()
  if (!hasher) return blobMd5(blob)
  return new Promise((resolve, reject) => {
    const id = (nextId += 1)
    waiting.set(id, { resolve, reject, blob })
    hasher.postMessage({ id, blob })
  })
}
