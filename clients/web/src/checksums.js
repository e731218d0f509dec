// A part's CRC32C, read from the file as a stream (64 KiB chunks from the browser's own
// file reader: about twice as fast as 4 MiB slice().arrayBuffer() reads, and a part is
// never held whole); in a worker when the page can start one (checksum-worker.js), else
// on the main thread.

import { createCRC32 } from 'hash-wasm'

const CASTAGNOLI = 0x82f63b78

/** The CRC32C of a Blob (a number), read as a stream. */
export async function blobCrc32c(blob) {
  const hasher = await createCRC32(CASTAGNOLI)
  hasher.init()
  const reader = blob.stream().getReader()
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    hasher.update(value)
  }
  const digest = hasher.digest('binary') // 4 bytes, big-endian
  return ((digest[0] << 24) | (digest[1] << 16) | (digest[2] << 8) | digest[3]) >>> 0
}

let worker = null
let workerFailed = false
let nextId = 0
const waiting = new Map()

function startWorker() {
  if (worker || workerFailed || typeof Worker === 'undefined') return worker
  try {
    // dist/checksum-worker.js sits beside dist/app.js.
    worker = new Worker(new URL('./checksum-worker.js', import.meta.url), { type: 'module' })
  } catch {
    workerFailed = true
    return null
  }
  worker.onmessage = (event) => {
    const { id, crc, error } = event.data
    const pending = waiting.get(id)
    waiting.delete(id)
    if (error) pending?.reject(new Error(error))
    else pending?.resolve(crc)
  }
  worker.onerror = () => {
    // The worker could not load: hash on the main thread from now on.
    workerFailed = true
    worker = null
    const stranded = [...waiting.values()]
    waiting.clear()
    for (const pending of stranded) blobCrc32c(pending.blob).then(pending.resolve, pending.reject)
  }
  return worker
}

/** The CRC32C of a Blob (a number), off the main thread where possible. */
export function partCrc32c(blob) {
  const hasher = startWorker()
  if (!hasher) return blobCrc32c(blob)
  return new Promise((resolve, reject) => {
    const id = (nextId += 1)
    waiting.set(id, { resolve, reject, blob })
    hasher.postMessage({ id, blob })
  })
}
