// The upload page of a request: the file goes in parts (each at most the server's part size,
// so a proxy's body limit is never hit), straight to the bucket where the server has one,
// a few parts at a time, each retried on its own; then the upload is reported complete.
(() => {
  const root = document.getElementById('upload');
  const maxSize = Number(root.dataset.maxSize);
  const fixedName = root.dataset.fixedName;
  const uploadsUrl = root.dataset.uploadsUrl;
  const status = document.getElementById('status');
  const bar = document.getElementById('progress');
  const button = document.getElementById('send');
  const PARALLEL = 3;
  const ATTEMPTS = 4;

  class Refused extends Error {
    constructor(message, status) {
      super(message);
      this.status = status;
    }
  }

  async function call(method, url, body) {
    const response = await fetch(url, {
      method,
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let answer = {};
    try {
      answer = await response.json();
    } catch (_) {
      answer = {};
    }
    if (!response.ok) {
      const message = (answer.error && answer.error.message) || `HTTP ${response.status}`;
      throw new Refused(message, response.status);
    }
    return answer;
  }

  // One part, with progress; resolves to the storage's tag of the part.
  function put(url, blob, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open('PUT', url);
      xhr.upload.onprogress = (event) => onProgress(event.loaded);
      xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300) {
          const etag = xhr.getResponseHeader('ETag');
          if (etag) resolve(etag.replace(/"/g, ''));
          else reject(new Refused('the storage did not say it kept the part (no ETag: check the bucket CORS rules)', 0));
        } else {
          let message = `HTTP ${xhr.status}`;
          try {
            const answer = JSON.parse(xhr.responseText);
            if (answer.error && answer.error.message) message = answer.error.message;
          } catch (_) {
            // An S3 error is XML; the status says enough.
          }
          reject(new Refused(message, xhr.status));
        }
      };
      xhr.onerror = () => reject(new Refused('the connection broke', 0));
      xhr.send(blob);
    });
  }

  async function upload(file) {
    const started = await call('POST', uploadsUrl, {
      filename: fixedName || file.name,
      size: file.size,
      content_type: file.type || undefined,
    });
    const ticket = started.upload;
    const multipart = ticket.multipart;
    const partSize = multipart.part_size;
    const count = Math.max(1, Math.ceil(file.size / partSize));
    const urls = new Map(multipart.parts.map((part) => [part.number, part.url]));
    const loaded = new Array(count).fill(0);
    const etags = new Array(count);
    const show = () => {
      const total = loaded.reduce((sum, bytes) => sum + bytes, 0);
      bar.value = file.size === 0 ? 1 : total / file.size;
    };

    async function urlFor(number, fresh) {
      if (!fresh && urls.has(number)) return urls.get(number);
      const answer = await call('POST', multipart.parts_url, { part_numbers: [number] });
      for (const part of answer.parts) urls.set(part.number, part.url);
      return urls.get(number);
    }

    async function sendPart(number) {
      const start = (number - 1) * partSize;
      const blob = file.slice(start, Math.min(start + partSize, file.size));
      let fresh = false;
      for (let attempt = 1; ; attempt++) {
        try {
          const url = await urlFor(number, fresh);
          etags[number - 1] = await put(url, blob, (bytes) => {
            loaded[number - 1] = bytes;
            show();
          });
          loaded[number - 1] = blob.size;
          show();
          return;
        } catch (error) {
          loaded[number - 1] = 0;
          // 409 (the part holds other bytes) and 413 will not get better.
          if (attempt >= ATTEMPTS || error.status === 409 || error.status === 413) throw error;
          fresh = error.status === 403;
          await new Promise((resolve) => setTimeout(resolve, 500 * attempt));
        }
      }
    }

    let next = 1;
    async function worker() {
      while (next <= count) {
        const number = next++;
        await sendPart(number);
      }
    }
    await Promise.all(Array.from({ length: Math.min(PARALLEL, count) }, worker));
    await call('POST', ticket.complete_url, {
      parts: etags.map((etag, index) => ({ part_number: index + 1, etag })),
    });
  }

  button.addEventListener('click', async () => {
    const file = document.getElementById('file').files[0];
    if (!file) {
      status.textContent = 'Choose a file first.';
      return;
    }
    if (file.size > maxSize) {
      status.textContent = 'This file is larger than allowed.';
      return;
    }
    button.disabled = true;
    bar.hidden = false;
    bar.value = 0;
    status.textContent = 'Uploading…';
    try {
      await upload(file);
      bar.value = 1;
      status.textContent = 'Uploaded. Thank you, you can close this page.';
    } catch (error) {
      status.textContent = `Upload failed: ${error.message}. You can try again.`;
      button.disabled = false;
    }
  });
})();
