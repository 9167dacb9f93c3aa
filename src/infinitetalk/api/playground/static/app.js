// The playground: a form over POST /v1/uploads, /v1/estimate and /v1/tasks, progress from the task's
// events, cancel, the finished video, the key's history, and the same request as code.
import { Api, ApiError } from "./api.js";
import { Picture, Recorder } from "./picture.js";
import { TARGETS, snippets } from "./snippets.js";
import { TimeLeft } from "./eta.js";

const $ = (selector, root = document) => root.querySelector(selector);
const KEY_STORE = "infinitetalk.apiKey";
const MADE_STORE = "infinitetalk.made"; // what this browser sent for each task: the API keeps no prompt to show
const HLS_PLAYLIST = "application/vnd.apple.mpegurl";
const VIDEO_EXT = /\.(mp4|mov|m4v|webm|mkv|avi)(\?|#|$)/i;

const api = new Api("", () => localStorage.getItem(KEY_STORE) || "");
const base = location.origin;

// What the form holds: references the API takes (an upload's URL, or a URL typed in).
const state = {
  source: null, // {kind: "image" | "video", ref}
  audio: [null, null],
  audioNames: [null, null], // what the person chose, for the history
  mask: [null, null],
  pending: 0, // uploads under way
  task: null, // the task on show
  watching: null, // AbortController of its event stream
};

const picture = new Picture($("#picture"), {
  speaker: () => Number($("#face-speaker").value),
  onChange: () => {
    showBoxFields();
    refresh();
  },
});

// The boxes as numbers too, for a keyboard (and for a box more exact than a drag).
const EDGES = ["x0", "y0", "x1", "y1"];
function showBoxFields() {
  document.querySelectorAll(".box-fields").forEach((group) => {
    const box = picture.boxes[Number(group.dataset.speaker)];
    for (const input of group.querySelectorAll("input")) {
      if (document.activeElement !== input) input.value = box ? box[input.dataset.edge] : "";
    }
  });
}
document.querySelectorAll(".box-fields").forEach((group) => {
  group.addEventListener("change", () => {
    const values = EDGES.map((edge) => $(`input[data-edge=${edge}]`, group).value.trim());
    if (values.every((v) => v === "")) {
      picture.setBox(Number(group.dataset.speaker), null);
    } else if (values.every((v) => v !== "" && Number.isFinite(Number(v)))) {
      const [x0, y0, x1, y1] = values.map(Number);
      picture.setBox(Number(group.dataset.speaker), { x0, y0, x1, y1 });
    }
  });
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
    $("#engine").textContent = `Engine: ${models.data[0].engine}.`;
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

$("#key-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const key = $("#api-key").value.trim();
  if (key) localStorage.setItem(KEY_STORE, key);
  else localStorage.removeItem(KEY_STORE);
  $("#api-key").value = "";
  $("#api-key").placeholder = key ? "saved (type to replace)" : "itk_...";
  if (await checkKey()) {
    // files chosen before the key was saved were refused (401): send them again now that it is
    const retries = [...refused.values()];
    refused.clear();
    quote = { asked: "" };
    retries.forEach((retry) => retry());
    refresh();
  }
});

// --- inputs --------------------------------------------------------------------------------------------
// The server's messages mostly start with their field already ("audio: could not read..."): said once.
function describe(err) {
  if (!(err instanceof ApiError) || !err.field || err.message.startsWith(err.field)) return err.message;
  return `${err.field}: ${err.message}`;
}

function showError(err) {
  const box = $("#form-error");
  box.hidden = !err;
  box.textContent = err ? describe(err) : "";
}

// Uploads the server refused for want of a key, by input: sent again once a key is saved.
const refused = new Map();

// Upload a picked file and keep its URL; the form stays usable while it goes.
async function uploaded(file, slot, retry) {
  refused.delete(slot);
  state.pending += 1;
  refresh();
  try {
    return (await api.upload(file)).url;
  } catch (err) {
    if (err.status !== 401) throw err;
    refused.set(slot, retry);
    throw new Error("the server needs your API key before it takes files: paste it above and press Save "
      + "(the files chosen are sent then)");
  } finally {
    state.pending -= 1;
  }
}

// The server decodes more formats than a browser draws, and may fetch a URL the browser cannot: such a
// picture is still sent, but its faces cannot be chosen here, and the person is told so at once.
async function showPicture(url, isVideo) {
  const note = $("#picture-note");
  try {
    await picture.show(url, isVideo);
    note.hidden = true;
  } catch {
    note.hidden = false;
    note.textContent = "This browser cannot show this file, so faces cannot be chosen on it. It is still sent "
      + "(the server reads some files a browser does not, and says so when you submit if it cannot).";
  }
  $("#picture-box").hidden = !picture.source;
}

async function setSource(file, url) {
  showError(null);
  state.source = null;
  picture.reset(); // the old picture's boxes must not go with the new file
  $("#picture-box").hidden = true;
  $("#picture-note").hidden = true;
  try {
    if (file) {
      const kind = file.type.startsWith("video/") ? "video" : "image";
      state.source = { kind, ref: await uploaded(file, "source", () => setSource(file, null)), name: file.name };
      await showPicture(URL.createObjectURL(file), kind === "video");
    } else if (url) {
      const kind = VIDEO_EXT.test(url) ? "video" : "image";
      state.source = { kind, ref: url, name: url.split(/[?#]/)[0].split("/").pop() || url };
      await showPicture(url, kind === "video");
    }
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
  $(".box-fields[data-speaker='1']").hidden = !e.target.checked;
  refresh();
});

const audioSetters = [];
for (const index of [0, 1]) {
  const box = $(`#speaker-${index}`);
  const preview = $(".audio-preview", box);
  const setAudio = async (file, url) => {
    showError(null);
    try {
      state.audio[index] = file ? await uploaded(file, `audio-${index}`, () => setAudio(file, null)) : url || null;
      state.audioNames[index] = file ? file.name : (url || "").split(/[?#]/)[0].split("/").pop() || null;
      preview.hidden = !(file || url);
      if (file || url) preview.src = file ? URL.createObjectURL(file) : url;
    } catch (err) {
      state.audio[index] = null;
      showError(err);
    }
    refresh();
  };
  audioSetters[index] = setAudio;
  $(".audio-file", box).addEventListener("change", (e) => {
    $(".audio-url", box).value = "";
    setAudio(e.target.files[0], null);
  });
  $(".audio-url", box).addEventListener("change", (e) => {
    $(".audio-file", box).value = "";
    setAudio(null, e.target.value.trim());
  });
  const setMask = async (file) => {
    try {
      state.mask[index] = file ? await uploaded(file, `mask-${index}`, () => setMask(file)) : null;
    } catch (err) {
      state.mask[index] = null;
      showError(err);
    }
    refresh();
  };
  $(".mask-file", box).addEventListener("change", (e) => setMask(e.target.files[0]));
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
// A file handed over by the page (a sample, a drop) goes into its input as if picked there.
function putFile(input, file) {
  const transfer = new DataTransfer();
  transfer.items.add(file);
  input.files = transfer.files;
}

for (const zone of document.querySelectorAll(".source")) {
  const input = $("input[type=file]", zone);
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    const file = e.dataTransfer.files[0];
    if (!file) return;
    putFile(input, file);
    input.dispatchEvent(new Event("change"));
  });
}

// The inputs `infinitetalk generate --demo` uses, served by this server, uploaded as if picked.
$("#try-sample").addEventListener("click", async () => {
  showError(null);
  try {
    const [portrait, speech] = await Promise.all(["portrait.jpg", "speech.mp3"].map(async (name) => {
      const response = await fetch(`playground/samples/${name}`);
      if (!response.ok) throw new Error(`this server has no sample ${name} (it answered ${response.status})`);
      return new File([await response.blob()], name, { type: response.headers.get("Content-Type") || "" });
    }));
    putFile($("#source-file"), portrait);
    $("#source-url").value = "";
    putFile($("#speaker-0 .audio-file"), speech);
    $("#speaker-0 .audio-url").value = "";
    await Promise.all([setSource(portrait, null), audioSetters[0](speech, null)]);
  } catch (err) {
    showError(err);
  }
});

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
// The last price asked for: {asked, ok, text, price}; asked is the request it was for (the form may change
// while an answer is on its way, and an upload that changes nothing priced keeps the price it had).
let quote = { asked: "" };
async function refresh() {
  const body = request();
  const button = $("#submit");
  button.disabled = true;
  showCode(body);
  const price = $("#price");
  if (state.pending) {
    price.textContent = "Uploading...";
    return;
  }
  if (!body) {
    price.textContent = "Choose a picture and speech to see the price.";
    delete price.dataset.price;
    return;
  }
  const ask = { audio: body.audio, audio_layout: body.audio_layout || "para", resolution: body.resolution };
  const asked = JSON.stringify(ask);
  if (asked !== quote.asked) {
    quote = { asked, ok: false, text: "Pricing..." };
    price.textContent = quote.text;
    delete price.dataset.price;
    let answer;
    try {
      const q = await api.estimate(ask);
      answer = { asked, ok: true, price: q.price, seconds: q.audio_seconds, text: `$${q.price.toFixed(2)} for ${q.audio_seconds.toFixed(1)} s `
        + `of speech (${q.billed_seconds} s billed at $${q.rate}/s)` };
    } catch (err) {
      // said here only: the button stays off, so the same error never comes back from a submit as well
      answer = { asked, ok: false, text: `No price: ${describe(err)}` };
    }
    if (quote.asked !== asked) return; // the form changed meanwhile, and its own refresh shows that
    quote = answer;
    refresh();
    return;
  }
  price.textContent = quote.text;
  if (quote.ok) Object.assign(price.dataset, { price: quote.price, seconds: quote.seconds });
  else delete price.dataset.price;
  button.disabled = !quote.ok;
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
    const task = await api.submit(askToTellEnd(body));
    remember(task.id, body);
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

const timeLeft = new TimeLeft();
function seconds(ms) { return ms == null ? "" : `${(ms / 1000).toFixed(1)} s`; }

function show(task) {
  const changed = !state.task || state.task.id !== task.id;
  state.task = task;
  $("#task").dataset.status = task.status;
  $("#task-id").textContent = task.id;
  const running = task.status === "queued" || task.status === "running";
  const progress = task.progress || {};
  $("#progress").value = task.status === "succeeded" ? 1 : progress.fraction || 0;
  let parts = [];
  if (running && task.cancel_requested) parts = ["canceling: it stops at the end of this step"];
  else if (running) {
    parts = [progress.stage, `${Math.round((progress.fraction || 0) * 100)}%`,
      timeLeft.words(task.id, progress.fraction || 0, progress.eta_s)];
  }
  $("#stage").textContent = parts.filter(Boolean).join(" · ");
  // the rule the README states: refunded before it starts; once started, charged for the video made
  $("#cancel-hint").hidden = !running || task.cancel_requested;
  $("#cancel-hint").textContent = task.status === "queued"
    ? "Not started yet: canceled now, it is refunded in full."
    : "Already rendering: canceled now, the video made so far is charged and the rest refunded.";
  const cost = task.cost.refunded ? "refunded" : `$${task.cost.price.toFixed(2)}`;
  const took = task.timings.execution_ms != null ? `, took ${seconds(task.timings.execution_ms)}` : "";
  $("#task-status").textContent = `${task.status}: ${task.cost.audio_seconds.toFixed(1)} s of speech, ${cost}${took}`;
  $("#cancel").hidden = !running || task.cancel_requested;
  $("#cancel").disabled = false;
  $("#task-error").hidden = !task.error;
  $("#task-error").textContent = task.error ? `${task.error.code}: ${task.error.message}` : "";
  // the finished video; before it, the live preview of the chunks made so far (an HLS playlist)
  const output = (task.outputs || []).find((o) => o.content_type === "video/mp4");
  const playlist = running && (task.outputs || []).find((o) => o.content_type === HLS_PLAYLIST);
  const video = $("#result");
  video.hidden = !output && !playlist;
  $("#download").hidden = !output;
  $("#live-note").hidden = Boolean(output) || !playlist;
  if (output && (changed || video.dataset.task !== task.id)) {
    // from the preview to the video at the same moment, so a person watching sees no jump back
    const at = video.dataset.live === task.id ? video.currentTime : 0;
    const playing = at > 0 && !video.paused;
    stopPreview();
    video.dataset.task = task.id;
    video.src = output.url;
    if (at) {
      video.addEventListener("loadedmetadata", () => {
        video.currentTime = Math.min(at, video.duration || at);
        if (playing) video.play().catch(() => {});
      }, { once: true });
    }
    $("#download").href = output.url;
    $("#download").setAttribute("download", `${task.id}.mp4`);
  } else if (!output && playlist) {
    playPreview(task.id, playlist.url);
  } else if (!output) {
    stopPreview();
    video.removeAttribute("src");
    delete video.dataset.task;
  }
}

// --- the live preview ----------------------------------------------------------------------------------
// Chromium plays no HLS itself: hls.js (vendored, see hls.min.js's header) feeds the segments to the <video>
// through Media Source Extensions. Loaded on the first preview only: most visits never need its 600 kB.
let hlsLoading = null;
let live = null; // the hls.js player on show

function loadHls() {
  hlsLoading ||= new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = "playground/hls.min.js";
    script.onload = () => resolve(window.Hls);
    script.onerror = () => reject(new Error("the live preview's player did not load"));
    document.head.append(script);
  });
  return hlsLoading;
}

async function playPreview(taskId, url) {
  const video = $("#result");
  if (video.dataset.live === taskId) return;
  stopPreview();
  video.dataset.live = taskId;
  delete video.dataset.task;
  let Hls = null;
  try {
    Hls = await loadHls();
  } catch { /* Safari plays it natively; elsewhere the bar still shows progress */ }
  if (video.dataset.live !== taskId) return; // the task ended, or another was opened, meanwhile
  if (Hls && Hls.isSupported()) {
    // from the start, not the live edge: the preview is the video so far. No worker: the page's policy
    // allows scripts of this origin only, and hls.js makes its worker from a blob.
    live = new Hls({ startPosition: 0, enableWorker: false });
    live.loadSource(url);
    live.attachMedia(video);
  } else if (video.canPlayType(HLS_PLAYLIST)) {
    video.src = url;
  } else {
    return;
  }
  // muted if the browser refuses sound before the person has touched the page
  video.play().catch(() => {
    video.muted = true;
    video.play().catch(() => {});
  });
}

function stopPreview() {
  if (live) {
    live.destroy();
    live = null;
  }
  delete $("#result").dataset.live;
}

async function watch(id) {
  if (state.watching) state.watching.abort();
  const controller = new AbortController();
  state.watching = controller;
  try {
    await api.events(id, (kind, task) => {
      if (kind === "segment") return; // the live preview's new segment: its data is not a task
      if (state.task && state.task.id === id) show(task);
      if (kind === "done") {
        loadHistory();
        tellEnded(task);
      }
    }, controller.signal);
  } catch (err) {
    if (controller.signal.aborted) return;
    // the stream broke (a restart, a proxy): fall back to one read of the task
    try { show(await api.task(id)); } catch { /* the history still has it */ }
  }
}

// --- a notice when a long task ends -----------------------------------------------------------------------
// A render of a minute or more is long enough to look at another tab: its end is told in the tab's title and,
// where the person allowed it when submitting, by a system notification.
const LONG_TASK_S = 30;
const TITLE = document.title;

function tellEnded(task) {
  if (task.cost.audio_seconds < LONG_TASK_S && !document.hidden) return;
  const words = task.status === "succeeded" ? "Your video is ready" : `Your task ${task.status}`;
  if (document.hidden) document.title = `${words} - ${TITLE}`;
  if ("Notification" in window && Notification.permission === "granted" && document.hidden) {
    new Notification(words, { body: `${task.cost.audio_seconds.toFixed(1)} s of speech`, tag: task.id });
  }
}
document.addEventListener("visibilitychange", () => {
  if (!document.hidden) document.title = TITLE;
});

function askToTellEnd(body) {
  const seconds = Number($("#price").dataset.seconds || 0);
  if (seconds >= LONG_TASK_S && "Notification" in window && Notification.permission === "default") {
    Notification.requestPermission().catch(() => {});
  }
  return body;
}

// --- history -------------------------------------------------------------------------------------------
function made() {
  try {
    return JSON.parse(localStorage.getItem(MADE_STORE)) || {};
  } catch {
    return {};
  }
}

function remember(taskId, body) {
  const all = made();
  all[taskId] = { body, names: [state.source && state.source.name, ...state.audioNames.slice(0, body.audio.length)]
    .filter(Boolean), at: Date.now() };
  // the newest 100 are plenty for a page that lists 20
  const kept = Object.entries(all).sort(([, a], [, b]) => b.at - a.at).slice(0, 100);
  localStorage.setItem(MADE_STORE, JSON.stringify(Object.fromEntries(kept)));
}

// The form as it was for an earlier task: its inputs (still on the server while their uploads last) and its
// settings. The picture cannot be drawn again (an upload is not a public file), so its boxes are kept as sent.
function rerun(record) {
  const { body } = record;
  const kind = body.video ? "video" : "image";
  $("#source-file").value = "";
  $("#source-url").value = "";
  picture.reset();
  $("#picture-box").hidden = true;
  state.source = { kind, ref: body[kind], name: record.names[0] };
  $("#two-speakers").checked = body.audio.length > 1;
  $("#speaker-1").hidden = body.audio.length < 2;
  $(".box-fields[data-speaker='1']").hidden = body.audio.length < 2;
  body.audio.forEach((ref, i) => {
    state.audio[i] = ref;
    state.audioNames[i] = record.names[i + 1] || null;
    $(`#speaker-${i} .audio-file`).value = "";
    $(`#speaker-${i} .audio-url`).value = ref.startsWith(`${base}/v1/uploads/`) ? "" : ref;
  });
  state.mask = body.mask ? [...body.mask, null].slice(0, 2) : [null, null];
  picture.boxes = body.bbox ? [...body.bbox, null].slice(0, 2) : [null, null];
  showBoxFields();
  $("#prompt").value = body.prompt || "";
  $("#resolution").value = body.resolution;
  $("#seed").value = body.seed;
  $("#fps").value = body.fps;
  if (body.audio_layout) $("#layout").value = body.audio_layout;
  $("#form-error").hidden = true;
  $("#rerun-note").hidden = false;
  $("#rerun-note").textContent = `The form holds the inputs and settings of that task (${record.names.join(", ")}): `
    + "change what you like, then make the video again.";
  refresh();
  $("#task-form").scrollIntoView({ behavior: "smooth" });
}

function thumbnail(output) {
  if (!output) return document.createTextNode("");
  // a frame from a second in: the first frames of a portrait video all look alike
  const video = document.createElement("video");
  video.className = "thumb";
  video.muted = true;
  video.preload = "metadata";
  video.src = `${output.url}#t=1`;
  video.setAttribute("aria-hidden", "true");
  return video;
}

function action(label, onClick, className = "quiet") {
  const button = document.createElement("button");
  button.type = "button";
  button.className = className;
  button.textContent = label;
  button.addEventListener("click", (e) => {
    e.stopPropagation();
    onClick();
  });
  return button;
}

async function loadHistory() {
  let page;
  try {
    page = await api.tasks(20);
  } catch {
    return;
  }
  const records = made();
  const body = $("#history");
  body.replaceChildren();
  $("#history-empty").hidden = page.data.length > 0;
  for (const task of page.data) {
    const row = body.insertRow();
    row.dataset.taskId = task.id;
    row.tabIndex = 0;
    const record = records[task.id];
    const output = (task.outputs || []).find((o) => o.content_type === "video/mp4");
    const cost = task.cost.refunded ? "refunded" : `$${task.cost.price.toFixed(2)}`;
    row.insertCell().append(thumbnail(output));
    const what = row.insertCell();
    what.className = "what";
    const prompt = document.createElement("div");
    prompt.textContent = record ? record.body.prompt || "(no prompt)" : "(made elsewhere)";
    const names = document.createElement("div");
    names.className = "hint";
    names.textContent = record ? record.names.join(" + ") : task.id;
    what.append(prompt, names);
    const cells = [new Date(task.timings.created_at).toLocaleString(), task.status, cost,
      `${task.cost.audio_seconds.toFixed(1)} s`, seconds(task.timings.execution_ms)];
    for (const text of cells) row.insertCell().textContent = text;
    row.cells[3].className = `status ${task.status}`;
    if (task.status === "succeeded" && !output) row.cells[3].textContent = "succeeded, files deleted";
    const open = () => {
      show(task);
      if (task.status === "queued" || task.status === "running") watch(task.id);
    };
    const actions = row.insertCell();
    actions.className = "actions";
    if (output) {
      actions.append(action("Play", () => {
        open();
        const video = $("#result");
        video.play().catch(() => {});
        video.scrollIntoView({ behavior: "smooth", block: "center" });
      }));
    }
    if (record) actions.append(action("Re-run", () => rerun(record)));
    if (!(task.status === "queued" || task.status === "running") && (output || task.outputs.length)) {
      actions.append(action("Delete", async () => {
        if (!confirm("Delete this task's video and inputs from the server? Its cost stays in the history.")) return;
        try {
          const left = await api.remove(task.id);
          if (state.task && state.task.id === task.id) show(left);
        } catch (err) {
          showError(err);
        }
        loadHistory();
      }, "quiet danger"));
    }
    row.addEventListener("click", open);
    row.addEventListener("keydown", (e) => { if (e.key === "Enter" && e.target === row) open(); });
  }
}
$("#refresh-history").addEventListener("click", loadHistory);

for (const [id, label] of TARGETS) $("#code-target").add(new Option(label, id));
if (localStorage.getItem(KEY_STORE)) $("#api-key").placeholder = "saved (type to replace)";
checkKey();
refresh();
