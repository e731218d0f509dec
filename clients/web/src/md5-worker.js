// Hashes file parts off the page's main thread, so that hashing never delays the
// events that start the next part's PUT. Message in: {id, blob}; out: {id, md5} (base64)
// or {id, error}.

import { blobMd5 } from './md5.js'

self.onmessage = async (event) => {
  const { id, blob } = event.data
  try {
    self.postMessage({ id, md5: await blobMd5(blob) })
  } catch (error) {
    self.postMessage({ id, error: String(error?.message || error) })
  }
}
