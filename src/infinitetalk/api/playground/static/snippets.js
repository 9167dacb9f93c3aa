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

function pyValue(value, indent) {
  // JSON that is also a Python literal (true/false/null spelled the Python way)
  const json = JSON.stringify(value, null, 4).replace(/\n/g, `\n${indent}`);
  return json.replace(/\btrue\b/g, "True").replace(/\bfalse\b/g, "False").replace(/\bnull\b/g, "None");
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
  const pick = (obj) => Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined && v !== null && v !== ""));
  const lost = (what) => what.filter(Boolean);
  const onlyResolutions = (allowed) => (allowed.includes(r.resolution) ? null : `resolution ${r.resolution} (this API takes ${allowed.join(" or ")}; 480p is sent)`);
  const res2 = allowed => (allowed.includes(r.resolution) ? r.resolution : "480p");
  const targets = [];

  targets.push({
    id: "native", label: "infinitetalk (native)",
    note: "Prefer: wait=300 answers when the video is done; leave it out to get the task at once and poll its urls.get.",
    request: { url: `${base}/v1/tasks`, header: "Authorization", body: r, extraHeaders: [["Prefer", "wait=300"]] },
  });

  targets.push({
    id: "apixo", label: "APIXO",
    missing: lost([!one && "a second speaker", r.video && "a source video", r.bbox && "face boxes",
      onlyResolutions(["480p", "720p"]), r.fps !== 25 && "fps"]),
    request: {
      url: `${base}/generateTask/infinitetalk`, header: "Authorization",
      body: { request_type: "async", input: pick({ mode: "image-to-video", image_urls: [r.image || r.video, ...(r.mask ? [r.mask[0]] : [])],
        audio_urls: [r.audio[0]], prompt: r.prompt, seed: r.seed >= 0 ? r.seed : undefined, resolution: res2(["480p", "720p"]) }) },
      after: `then: GET ${base}/statusTask/infinitetalk?taskId=<data.taskId>`,
    },
  });

  targets.push({
    id: "segmind", label: "Segmind",
    missing: lost([!one && "a second speaker", r.bbox && "face boxes", r.mask && "masks"]),
    request: {
      url: `${base}/v2/infinite-talk`, header: "x-api-key",
      body: pick({ image: r.image || r.video, audio: r.audio[0], prompt: r.prompt, seed: r.seed >= 0 ? r.seed : undefined,
        resolution: r.resolution, fps: r.fps }),
      after: "then: GET the status_url, and the response_url once COMPLETED",
    },
  });

  const wsPath = !one ? "infinitetalk/multi" : r.video ? "infinitetalk/video-to-video" : "infinitetalk";
  const wsBody = !one
    ? { image: r.image, left_audio: r.audio[0], right_audio: r.audio[1], order: r.audio_layout === "add" ? "left_right" : "meanwhile" }
    : { [source]: r[source], audio: r.audio[0], mask_image: r.mask ? r.mask[0] : undefined };
  targets.push({
    id: "wavespeed", label: "WaveSpeed",
    missing: lost([!one && r.video && "a source video with two speakers", r.bbox && "face boxes",
      !one && r.mask && "masks for two speakers", onlyResolutions(["480p", "720p"]), r.fps !== 25 && "fps"]),
    request: {
      url: `${base}/api/v3/wavespeed-ai/${wsPath}`, header: "Authorization",
      body: pick({ ...wsBody, prompt: r.prompt, seed: r.seed, resolution: res2(["480p", "720p"]) }),
      after: `then: GET ${base}/api/v3/predictions/<data.id>/result`,
    },
  });

  targets.push({
    id: "runpod", label: "RunPod",
    missing: lost([!one && "a second speaker", r.video && "a source video", r.bbox && "face boxes", r.mask && "masks",
      r.seed >= 0 && "seed", onlyResolutions(["480p", "720p"]), r.fps !== 25 && "fps"]),
    request: {
      url: `${base}/v2/infinitetalk/run`, header: "Authorization",
      body: { input: { prompt: r.prompt || "a person talking", image: r.image || r.video, audio: r.audio[0], size: res2(["480p", "720p"]) } },
      after: `then: GET ${base}/v2/infinitetalk/status/<id>`,
    },
  });

  targets.push({
    id: "eachlabs", label: "EachLabs",
    missing: lost([!one && "a second speaker", r.bbox && "face boxes", onlyResolutions(["480p", "720p"]), r.fps !== 25 && "fps"]),
    request: {
      url: `${base}/v1/prediction/`, header: "X-API-Key",
      body: { model: r.video ? "infinitalk-video-to-video" : "infinitalk-image-to-video",
        input: pick({ [source]: r[source], audio: r.audio[0], prompt: r.prompt, seed: r.seed >= 0 ? r.seed : undefined,
          resolution: res2(["480p", "720p"]), mask_image: r.mask ? r.mask[0] : undefined }) },
      after: `then: GET ${base}/v1/prediction/<predictionID>`,
    },
  });

  return targets.map(({ id, label, note, missing, request }) => ({
    id, label,
    note: missing && missing.length ? `This API cannot send: ${missing.join(", ")}. Use the native API for those.` : (note || ""),
    curl: (keyed ? `# export ${KEY_VAR}=<your key>\n` : "") + curl(request, keyed),
    python: python(request, keyed),
  }));
}
