// The playground: a form over POST /v1/uploads, /v1/estimate and /v1/tasks, progress from the task's
// events, cancel, the finished video, the key's history, and the same request as code.
import { Api, ApiError } from "./api.js";
import { Picture, Recorder } from "./picture.js";
import { TARGETS, snippets } from "./snippets.js";

const $ = (selector, root = document) => root.querySelector(selector);
const KEY_STORE = "infinitetalk.apiKey";
const VIDEO_EXT = /\.(mp4|mov|m4v|webm|mkv|avi)(\?|#|$)/i;

const api = new Api("", () => localStorage.getItem(KEY_STORE) || "");
const base = location.origin;

// What the form holds: references the API takes (an upload's URL, or a URL typed in).
const state = {
  source: null, // {kind: "image" | "video", ref}
  audio: [null, null],
  mask: [null, null],
  pending: 0, // uploads under way
  task: null, // the task on show
  watching: null, // AbortController of its event stream
};

const picture = new Picture($("#picture"), {
  speaker: () => Number($("#face-speaker").value),
  onChange: () => refresh(),
});

function speakers() { return $("#two-speakers").checked ? 2 : 1; }

// --- the key -------------------------------------------------------------------------------------------
async function checkKey() {
  const status = $("#key-status");
  const hasKey = Boolean(localStorage.getItem(KEY_STORE));
  try {
    const models = await api.models();
    status.textContent = hasKey ? "key accepted" : "no key needed (this server is open to this machine)";
    status.className = "ok";
    const offered = new Map(models.data[0].resolutions.map((r) => [r.resolution, r]));
    for (const option of $("#resolution").options) {
      const r = offered.get(option.value);
      option.disabled = !r;
      if (r) option.textContent = `${r.resolution} (${r.square_size}, $${r.usd_per_second}/s)`;
    }
    $("#source-info").textContent += ` Engine: ${models.data[0].engine}.`;
    loadHistory();
    return true;
  } catch (err) {
    status.className = "error";
    status.textContent = err.status === 401
      ? (hasKey ? "this key was refused: check it, or make one with `infinitetalk keys create NAME`"
        : "this server needs an API key: paste one (`infinitetalk keys create NAME` makes one)")
      : err.message;
    return false;
  }
}

$("#key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const key = $("#api-key").value.trim();
  if (key) localStorage.setItem(KEY_STORE, key);
  else localStorage.removeItem(KEY_STORE);
  $("#api-key").value = "";
  $("#api-key").placeholder = key ? "saved (type to replace)" : "itk_...";
  checkKey();
});

// --- inputs --------------------------------------------------------------------------------------------
function showError(err) {
  const box = $("#form-error");
  box.hidden = !err;
  box.textContent = err ? (err instanceof ApiError && err.field ? `${err.field}: ${err.message}` : err.message) : "";
}

// Upload a picked file and keep its URL; the form stays usable while it goes.
async function uploaded(file) {
  state.pending += 1;
  refresh();
  try {
    return (await api.upload(file)).url;
  } finally {
    state.pending -= 1;
  }
}

async function setSource(file, url) {
  showError(null);
  try {
    if (file) {
      const kind = file.type.startsWith("video/") ? "video" : "image";
      state.source = { kind, ref: await uploaded(file) };
      // the server decodes more formats than a browser shows: a picture we cannot draw is still fine to send
      await picture.show(URL.createObjectURL(file), kind === "video").catch(() => {});
    } else if (url) {
      const kind = VIDEO_EXT.test(url) ? "video" : "image";
      state.source = { kind, ref: url };
      await picture.show(url, kind === "video").catch(() => {}); // a URL the browser may not fetch is still fine to send
    } else {
      state.source = null;
    }
    $("#picture-box").hidden = !picture.source;
  } catch (err) {
    state.source = null;
    showError(err);
  }
  refresh();
}

$("#source-file").addEventListener("change", (e) => {
  $("#source-url").value = "";
  setSource(e.target.files[0], null);
});
$("#source-url").addEventListener("change", (e) => {
  $("#source-file").value = "";
  setSource(null, e.target.value.trim());
});
$("#clear-boxes").addEventListener("click", () => picture.clear());
$("#two-speakers").addEventListener("change", (e) => {
  $("#speaker-1").hidden = !e.target.checked;
  refresh();
});

for (const index of [0, 1]) {
  const box = $(`#speaker-${index}`);
  const preview = $(".audio-preview", box);
  const setAudio = async (file, url) => {
    showError(null);
    try {
      state.audio[index] = file ? await uploaded(file) : url || null;
      preview.hidden = !(file || url);
      if (file || url) preview.src = file ? URL.createObjectURL(file) : url;
    } catch (err) {
      state.audio[index] = null;
      showError(err);
    }
    refresh();
  };
  $(".audio-file", box).addEventListener("change", (e) => {
    $(".audio-url", box).value = "";
    setAudio(e.target.files[0], null);
  });
  $(".audio-url", box).addEventListener("change", (e) => {
    $(".audio-file", box).value = "";
    setAudio(null, e.target.value.trim());
  });
  $(".mask-file", box).addEventListener("change", async (e) => {
    try {
      state.mask[index] = e.target.files[0] ? await uploaded(e.target.files[0]) : null;
    } catch (err) {
      state.mask[index] = null;
      showError(err);
    }
    refresh();
  });
  const button = $(".record", box);
  let recorder = null;
  button.addEventListener("click", async () => {
    if (!recorder) {
      try {
        recorder = new Recorder();
        await recorder.start();
        button.textContent = "Stop";
        button.classList.add("recording");
      } catch (err) {
        recorder = null;
        showError(new Error(`could not record (${err.message}); allow the microphone, or pick a file`));
      }
      return;
    }
    const file = await recorder.stop();
    recorder = null;
    button.textContent = "Record";
    button.classList.remove("recording");
    $(".audio-url", box).value = "";
    setAudio(file, null);
  });
}
for (const id of ["#prompt", "#resolution", "#seed", "#fps", "#layout"]) {
  $(id).addEventListener("change", () => refresh());
}

// The request body the form stands for, or null while something needed is missing.
function request() {
  const n = speakers();
  const audio = state.audio.slice(0, n);
  if (!state.source || audio.some((a) => !a)) return null;
  const body = { [state.source.kind]: state.source.ref, audio };
  if (n === 2) body.audio_layout = $("#layout").value;
  const masks = state.mask.slice(0, n);
  if (masks.every(Boolean)) body.mask = masks; // one per speaker, or none
  const boxes = picture.boxes.slice(0, n);
  if (boxes.every(Boolean)) body.bbox = boxes;
  const prompt = $("#prompt").value.trim();
  if (prompt) body.prompt = prompt;
  body.resolution = $("#resolution").value;
  body.seed = Number($("#seed").value);
  body.fps = Number($("#fps").value);
  return body;
}

// --- price and code, as the form changes ----------------------------------------------------------------
let priced = "";
async function refresh() {
  const body = request();
  $("#submit").disabled = !body || state.pending > 0;
  showCode(body);
  const price = $("#price");
  if (state.pending) {
    price.textContent = "Uploading...";
    return;
  }
  if (!body) {
    price.textContent = "Choose a picture and speech to see the price.";
    return;
  }
  const ask = { audio: body.audio, audio_layout: body.audio_layout || "para", resolution: body.resolution };
  const asked = JSON.stringify(ask);
  if (asked === priced) return;
  priced = asked;
  price.textContent = "Pricing...";
  try {
    const quote = await api.estimate(ask);
    if (priced !== asked) return; // the form changed meanwhile
    price.textContent = `$${quote.price.toFixed(2)} for ${quote.audio_seconds.toFixed(1)} s of speech `
      + `(${quote.billed_seconds} s billed at $${quote.rate}/s)`;
    price.dataset.price = quote.price;
  } catch (err) {
    priced = "";
    price.textContent = `No price: ${err.message}`;
  }
}

let shown = [];
function showCode(body) {
  const select = $("#code-target");
  if (!body) {
    $("#code-curl").textContent = "Fill in the form to see the request.";
    $("#code-python").textContent = "";
    $("#code-note").textContent = "";
    return;
  }
  shown = snippets(body, base, Boolean(localStorage.getItem(KEY_STORE)));
  const current = shown.find((s) => s.id === select.value) || shown[0];
  $("#code-curl").textContent = current.curl;
  $("#code-python").textContent = current.python;
  $("#code-note").textContent = current.note;
}
$("#code-target").addEventListener("change", () => showCode(request()));

async function copy(id, button) {
  const text = $(id).textContent;
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    // no clipboard permission (some browsers, plain http): select the text for Ctrl+C instead
    getSelection().selectAllChildren($(id));
    button.textContent = "Selected: press Ctrl+C";
  }
  setTimeout(() => { button.textContent = "Copy"; }, 2000);
}
$("#copy-curl").addEventListener("click", (e) => copy("#code-curl", e.target));
$("#copy-python").addEventListener("click", (e) => copy("#code-python", e.target));

// --- the task ------------------------------------------------------------------------------------------
$("#task-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const body = request();
  if (!body) return;
  showError(null);
  $("#submit").disabled = true;
  try {
    const task = await api.submit(body);
    show(task);
    watch(task.id);
    loadHistory();
  } catch (err) {
    showError(err);
  } finally {
    refresh();
  }
});

$("#cancel").addEventListener("click", async () => {
  if (!state.task) return;
  $("#cancel").disabled = true;
  try {
    show(await api.cancel(state.task.id));
  } catch (err) {
    $("#task-error").hidden = false;
    $("#task-error").textContent = err.message;
  }
});

function seconds(ms) { return ms == null ? "" : `${(ms / 1000).toFixed(1)} s`; }

function show(task) {
  const changed = !state.task || state.task.id !== task.id;
  state.task = task;
  $("#task").dataset.status = task.status;
  $("#task-id").textContent = task.id;
  const running = task.status === "queued" || task.status === "running";
  const progress = task.progress || {};
  $("#progress").value = task.status === "succeeded" ? 1 : progress.fraction || 0;
  const parts = [progress.stage, running && `${Math.round((progress.fraction || 0) * 100)}%`,
    running && progress.eta_s != null && `about ${Math.ceil(progress.eta_s)} s left`].filter(Boolean);
  $("#stage").textContent = parts.join(" · ");
  const cost = task.cost.refunded ? "refunded" : `$${task.cost.price.toFixed(2)}`;
  const took = task.timings.execution_ms != null ? `, took ${seconds(task.timings.execution_ms)}` : "";
  $("#task-status").textContent = `${task.status}: ${task.cost.audio_seconds.toFixed(1)} s of speech, ${cost}${took}`;
  $("#cancel").hidden = !running;
  $("#cancel").disabled = false;
  $("#task-error").hidden = !task.error;
  $("#task-error").textContent = task.error ? `${task.error.code}: ${task.error.message}` : "";
  // the video, not the live preview's HLS playlist a running task also lists
  const output = (task.outputs || []).find((o) => o.content_type === "video/mp4");
  const video = $("#result");
  video.hidden = !output;
  $("#download").hidden = !output;
  if (output && (changed || video.dataset.task !== task.id)) {
    video.dataset.task = task.id;
    video.src = output.url;
    $("#download").href = output.url;
    $("#download").setAttribute("download", `${task.id}.mp4`);
  } else if (!output) {
    video.removeAttribute("src");
    delete video.dataset.task;
  }
}

async function watch(id) {
  if (state.watching) state.watching.abort();
  const controller = new AbortController();
  state.watching = controller;
  try {
    await api.events(id, (kind, task) => {
      if (kind === "segment") return; // the live preview's new segment: its data is not a task
      if (state.task && state.task.id === id) show(task);
      if (kind === "done") loadHistory();
    }, controller.signal);
  } catch (err) {
    if (controller.signal.aborted) return;
    // the stream broke (a restart, a proxy): fall back to one read of the task
    try { show(await api.task(id)); } catch { /* the history still has it */ }
  }
}

// --- history -------------------------------------------------------------------------------------------
async function loadHistory() {
  let page;
  try {
    page = await api.tasks(20);
  } catch {
    return;
  }
  const body = $("#history");
  body.replaceChildren();
  $("#history-empty").hidden = page.data.length > 0;
  for (const task of page.data) {
    const row = body.insertRow();
    row.dataset.taskId = task.id;
    row.tabIndex = 0;
    const cost = task.cost.refunded ? "refunded" : `$${task.cost.price.toFixed(2)}`;
    const cells = [new Date(task.timings.created_at).toLocaleString(), task.status, cost,
      `${task.cost.audio_seconds.toFixed(1)} s`, seconds(task.timings.execution_ms)];
    for (const text of cells) row.insertCell().textContent = text;
    row.cells[1].className = `status ${task.status}`;
    const open = () => {
      show(task);
      if (task.status === "queued" || task.status === "running") watch(task.id);
    };
    row.addEventListener("click", open);
    row.addEventListener("keydown", (e) => { if (e.key === "Enter") open(); });
  }
}
$("#refresh-history").addEventListener("click", loadHistory);

for (const [id, label] of TARGETS) $("#code-target").add(new Option(label, id));
if (localStorage.getItem(KEY_STORE)) $("#api-key").placeholder = "saved (type to replace)";
checkKey();
refresh();
