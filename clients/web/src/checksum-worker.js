// Hashes file parts off the page's main thread, so that hashing never delays the
// events that start the next part's PUT. Message in: {id, blob}; out: {id, crc} (the
// CRC32C, a number) or {id, error}.

import { blobCrc32c } from './checksums.js'

self.onmessage = async (event) => {
  const { id, blob } = event.data
  try {
    self.postMessage({ id, crc: await blobCrc32c(blob) })
  } catch (error) {
    self.postMessage({ id, error: String(error?.message || error) })
  }
}
