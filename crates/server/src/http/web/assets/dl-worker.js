// The service worker that saves a decrypted download straight to disk (served as /dl/worker.js,
// scope /dl/, after a line that imports openingStream from the hashed seal.js). The landing page
// hands it a job (the download URL, the content key, sizes and the name) and then navigates to
// /dl/JOB; the worker answers that navigation with the ciphertext decrypted record by record as
// it arrives, so the browser writes the file to disk as a normal download and no more than a
// record or two is ever in memory. A record that does not open errors the stream, which makes
// the browser fail the download and delete its partial file; the page is told either way.

const jobs = new Map();

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('message', (event) => {
  const { id, job } = event.data || {};
  const [port] = event.ports;
  if (typeof id !== 'string' || !job || !port) return;
  jobs.set(id, { ...job, port });
  port.postMessage({ state: 'ready' });
});

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (url.origin !== self.location.origin || !url.pathname.startsWith('/dl/')) return;
  const id = url.pathname.slice('/dl/'.length);
  const job = jobs.get(id);
  // Each job is answered once; anything else goes to the server, which knows no /dl/ page.
  if (!job) return;
  jobs.delete(id);
  event.respondWith(decrypted(job));
});

async function decrypted(job) {
  let response;
  try {
    response = await fetch(job.url);
  } catch (error) {
    job.port.postMessage({ state: 'failed', reason: String(error) });
    return new Response('The download could not start.\n', { status: 502 });
  }
  if (!response.ok || !response.body) {
    job.port.postMessage({ state: 'failed', reason: `HTTP ${response.status}` });
    return new Response('The download could not start.\n', { status: 502 });
  }
  const { readable, writable } = new TransformStream();
  response.body
    .pipeThrough(openingStream(job.keys, job.sealedSize))
    .pipeTo(writable)
    .then(
      () => job.port.postMessage({ state: 'done' }),
      (error) => job.port.postMessage({ state: 'failed', reason: String(error && error.message) }),
    );
  return new Response(readable, {
    headers: {
      'Content-Type': job.type || 'application/octet-stream',
      'Content-Length': String(job.plainSize),
      'Content-Disposition': `attachment; filename*=UTF-8''${encodeURIComponent(job.name)}`,
      'Cache-Control': 'no-store',
    },
  });
}
