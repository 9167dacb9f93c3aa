// "As code": the request the form would send, as curl and Python, for the native API and for each
// provider-compatible route. A provider whose API cannot say something the form asks for gets a note saying
// what is left out, so a copied snippet never claims more than it does.

const KEY_VAR = "INFINITETALK_API_KEY";

export const TARGETS = [["native", "infinitetalk (native)"], ["apixo", "APIXO"], ["segmind", "Segmind"],
  ["wavespeed", "WaveSpeed"], ["runpod", "RunPod"], ["eachlabs", "EachLabs"]];

function shellQuote(text) {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

function curl({ url, method = "POST", header, body, extraHeaders = [] }, keyed) {
  const lines = [`curl -s -X ${method} ${shellQuote(url)}`];
  if (keyed) lines.push(`-H "${header}: ${header === "Authorization" ? "Bearer " : ""}$${KEY_VAR}"`);
  for (const [name, value] of extraHeaders) lines.push(`-H ${shellQuote(`${name}: ${value}`)}`);
  if (body !== undefined) {
    lines.push(`-H 'Content-Type: application/json'`);
    lines.push(`-d ${shellQuote(JSON.stringify(body))}`);
  }
  return lines.join(" \\\n  ");
}

// A Python literal of a JSON value. Strings are written by JSON.stringify, whose escapes Python reads the same,
// so true/false/null are spelled the Python way only where they are values, never inside a string.
function pyValue(value, indent, depth = 1) {
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value !== "object") return JSON.stringify(value);
  const inner = indent + "    ".repeat(depth);
  const outer = indent + "    ".repeat(depth - 1);
  const items = Array.isArray(value)
    ? value.map((item) => pyValue(item, indent, depth + 1))
    : Object.entries(value).filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${JSON.stringify(k)}: ${pyValue(v, indent, depth + 1)}`);
  const [open, close] = Array.isArray(value) ? ["[", "]"] : ["{", "}"];
  return items.length ? `${open}\n${items.map((item) => inner + item).join(",\n")}\n${outer}${close}` : open + close;
}

function python({ url, method = "POST", header, body, extraHeaders = [], after }, keyed) {
  const headers = [];
  if (keyed) {
    const value = header === "Authorization" ? `"Bearer " + os.environ["${KEY_VAR}"]` : `os.environ["${KEY_VAR}"]`;
    headers.push(`"${header}": ${value}`);
  }
  for (const [name, value] of extraHeaders) headers.push(`"${name}": "${value}"`);
  const lines = [keyed ? "import os\n\nimport httpx\n" : "import httpx\n"];
  lines.push(`response = httpx.request(`);
  lines.push(`    "${method}",`);
  lines.push(`    "${url}",`);
  if (headers.length) lines.push(`    headers={${headers.join(", ")}},`);
  if (body !== undefined) lines.push(`    json=${pyValue(body, "    ")},`);
  lines.push(`    timeout=330,`);
  lines.push(`)`);
  lines.push(`print(response.status_code, response.json())`);
  if (after) lines.push(`# ${after}`);
  return lines.join("\n");
}

// r: the native request body (TaskCreate). Returns [{id, label, note, curl, python}].
export function snippets(r, base, keyed) {
  const one = r.audio.length === 1;
  const source = r.video ? "video" : "image";
  const seed = r.seed >= 0 ? r.seed : undefined; // providers without "-1 = random" get no seed
  const mask = r.mask ? r.mask[0] : undefined;
  // what the providers whose resolutions are 480p and 720p only are sent, and what they are told of it
  const size = ["480p", "720p"].includes(r.resolution) ? r.resolution : "480p";
  const sizeLost = size !== r.resolution && `resolution ${r.resolution} (this API takes 480p or 720p; 480p is sent)`;
  const fpsLost = r.fps !== 25 && "fps";
  const boxesLost = r.bbox && "face boxes";
  const secondLost = !one && "a second speaker";
  const set = (obj) => Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined && v !== null && v !== ""));

  const targets = [{
    id: "native", label: "infinitetalk (native)",
    note: "Prefer: wait=300 answers when the video is done; leave it out to get the task at once and poll its urls.get.",
    request: { url: `${base}/v1/tasks`, header: "Authorization", body: r, extraHeaders: [["Prefer", "wait=300"]] },
  }, {
    id: "apixo", label: "APIXO",
    missing: [secondLost, r.video && "a source video", boxesLost, sizeLost, fpsLost],
    request: {
      url: `${base}/generateTask/infinitetalk`, header: "Authorization",
      body: { request_type: "async", input: set({
        mode: "image-to-video", image_urls: [r.image || r.video, ...(mask ? [mask] : [])], audio_urls: [r.audio[0]],
        prompt: r.prompt, seed, resolution: size }) },
      after: `then: GET ${base}/statusTask/infinitetalk?taskId=<data.taskId>`,
    },
  }, {
    id: "segmind", label: "Segmind",
    missing: [secondLost, boxesLost, r.mask && "masks"],
    request: {
      url: `${base}/v2/infinite-talk`, header: "x-api-key",
      body: set({ image: r.image || r.video, audio: r.audio[0], prompt: r.prompt, seed, resolution: r.resolution,
        fps: r.fps }),
      after: "then: GET the status_url, and the response_url once COMPLETED",
    },
  }, {
    id: "wavespeed", label: "WaveSpeed",
    missing: [!one && r.video && "a source video with two speakers", boxesLost, !one && r.mask && "masks for two speakers",
      sizeLost, fpsLost],
    request: {
      url: `${base}/api/v3/wavespeed-ai/${!one ? "infinitetalk/multi" : r.video ? "infinitetalk/video-to-video" : "infinitetalk"}`,
      header: "Authorization",
      body: set({
        ...(one ? { [source]: r[source], audio: r.audio[0], mask_image: mask }
          : { image: r.image, left_audio: r.audio[0], right_audio: r.audio[1],
            order: r.audio_layout === "add" ? "left_right" : "meanwhile" }),
        prompt: r.prompt, seed: r.seed, resolution: size }),
      after: `then: GET ${base}/api/v3/predictions/<data.id>/result`,
    },
  }, {
    id: "runpod", label: "RunPod",
    missing: [secondLost, r.video && "a source video", boxesLost, r.mask && "masks", seed !== undefined && "seed",
      sizeLost, fpsLost],
    request: {
      url: `${base}/v2/infinitetalk/run`, header: "Authorization",
      body: { input: { prompt: r.prompt || "a person talking", image: r.image || r.video, audio: r.audio[0], size } },
      after: `then: GET ${base}/v2/infinitetalk/status/<id>`,
    },
  }, {
    id: "eachlabs", label: "EachLabs",
    missing: [secondLost, boxesLost, sizeLost, fpsLost],
    request: {
      url: `${base}/v1/prediction/`, header: "X-API-Key",
      body: { model: r.video ? "infinitalk-video-to-video" : "infinitalk-image-to-video",
        input: set({ [source]: r[source], audio: r.audio[0], prompt: r.prompt, seed, resolution: size, mask_image: mask }) },
      after: `then: GET ${base}/v1/prediction/<predictionID>`,
    },
  }];

  return targets.map(({ id, label, note, missing = [], request }) => {
    const lost = missing.filter(Boolean);
    return {
      id, label,
      note: lost.length ? `This API cannot send: ${lost.join(", ")}. Use the native API for those.` : (note || ""),
      curl: (keyed ? `# export ${KEY_VAR}=<your key>\n` : "") + curl(request, keyed),
      python: python(request, keyed),
    };
  });
}
