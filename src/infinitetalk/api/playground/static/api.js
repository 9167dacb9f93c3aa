// The public API, as any client calls it: same routes, same key headers, same error bodies.

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

export class Api {
  // base: the server's URL ("" for this origin); key(): the API key to send, or "" for none (open mode)
  constructor(base, key) {
    this.base = base;
    this.key = key;
  }

  headers(extra = {}) {
    const key = this.key();
    return key ? { Authorization: `Bearer ${key}`, ...extra } : extra;
  }

  async call(method, path, { json, form, headers } = {}) {
    const init = { method, headers: this.headers(headers) };
    if (json !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(json);
    } else if (form !== undefined) {
      init.body = form; // the browser sets the multipart boundary
    }
    let response;
    try {
      response = await fetch(this.base + path, init);
    } catch (err) {
      throw new ApiError(0, "unreachable", `the server did not answer (${err.message}); is it still running?`);
    }
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const error = body && body.error ? body.error : {};
      throw new ApiError(response.status, error.code || `http_${response.status}`,
        error.message || `the server answered ${response.status}`, error.field);
    }
    return body;
  }

  models() { return this.call("GET", "/v1/models"); }
  upload(file) {
    const form = new FormData();
    form.append("file", file, file.name || "file");
    return this.call("POST", "/v1/uploads", { form });
  }
  estimate(payload) { return this.call("POST", "/v1/estimate", { json: payload }); }
  submit(payload) { return this.call("POST", "/v1/tasks", { json: payload }); }
  task(id) { return this.call("GET", `/v1/tasks/${encodeURIComponent(id)}`); }
  cancel(id) { return this.call("POST", `/v1/tasks/${encodeURIComponent(id)}/cancel`); }
  remove(id) { return this.call("DELETE", `/v1/tasks/${encodeURIComponent(id)}`); }
  tasks(limit = 20) { return this.call("GET", `/v1/tasks?limit=${limit}`); }

  // Server-sent events of one task. EventSource cannot send an Authorization header, so the stream is read
  // with fetch and split into events here. Calls onEvent(kind, task) until `done`, or until signal aborts.
  async events(id, onEvent, signal) {
    const response = await fetch(`${this.base}/v1/tasks/${encodeURIComponent(id)}/events`,
      { headers: this.headers({ Accept: "text/event-stream" }), signal });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      const error = body.error || {};
      throw new ApiError(response.status, error.code, error.message || `events answered ${response.status}`);
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let kind = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) kind = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
        }
        if (!data.length) continue; // a keep-alive comment
        onEvent(kind, JSON.parse(data.join("\n")));
        if (kind === "done") {
          reader.cancel().catch(() => {});
          return;
        }
      }
    }
  }
}
