// The picture on a canvas, and a face box per speaker chosen on it: a click puts a face-sized box around the
// point, a drag draws the box. Boxes are kept in the source's own pixels, which is what `bbox` takes.

const COLORS = ["#e4572e", "#1f8ad6"];
const CLICK_PX = 5; // a press that moves less than this is a click, not a drag

export class Picture {
  constructor(canvas, { speaker, onChange }) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.speaker = speaker; // () => index of the speaker the next box is for
    this.onChange = onChange;
    this.source = null; // an <img> or a <video> showing its first frame
    this.boxes = [null, null];
    this.drag = null;
    canvas.addEventListener("pointerdown", (e) => this.press(e));
    canvas.addEventListener("pointermove", (e) => this.move(e));
    canvas.addEventListener("pointerup", (e) => this.release(e));
  }

  get width() { return this.source ? (this.source.naturalWidth || this.source.videoWidth) : 0; }
  get height() { return this.source ? (this.source.naturalHeight || this.source.videoHeight) : 0; }

  // Forget the picture and its boxes: a box drawn on one picture means nothing on the next.
  reset() {
    this.source = null;
    this.boxes = [null, null];
    this.drag = null;
    this.ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    this.onChange();
  }

  // Show an image or a video's first frame from a URL (an object URL of a picked file, or a typed URL).
  // Rejects when the browser cannot draw it, and then shows nothing rather than the picture before.
  async show(url, isVideo) {
    this.reset();
    const element = isVideo ? document.createElement("video") : new Image();
    await new Promise((resolve, reject) => {
      element.onerror = () => reject(new Error("the browser could not show this file"));
      if (isVideo) {
        element.muted = true;
        element.preload = "auto";
        element.onloadeddata = resolve;
      } else {
        element.onload = resolve;
      }
      element.src = url;
    });
    this.source = element;
    this.boxes = [null, null];
    const scale = Math.min(1, 520 / this.width);
    this.canvas.width = Math.round(this.width * scale);
    this.canvas.height = Math.round(this.height * scale);
    this.draw();
    this.onChange();
  }

  // A box typed in (source pixels), or null to drop it: the keyboard's way to what a click or drag does.
  setBox(speaker, box) {
    if (box) {
      const [x0, y0, x1, y1] = [Math.max(0, box.x0), Math.max(0, box.y0),
        this.width ? Math.min(this.width, box.x1) : box.x1, this.height ? Math.min(this.height, box.y1) : box.y1]
        .map(Math.round);
      box = x1 - x0 >= 4 && y1 - y0 >= 4 ? { x0, y0, x1, y1 } : null;
    }
    this.boxes[speaker] = box;
    this.draw();
    this.onChange();
    return box;
  }

  clear() {
    this.boxes = [null, null];
    this.draw();
    this.onChange();
  }

  // Source pixels of a pointer event.
  point(e) {
    const rect = this.canvas.getBoundingClientRect();
    return [(e.clientX - rect.left) / rect.width * this.width, (e.clientY - rect.top) / rect.height * this.height];
  }

  press(e) {
    if (!this.source) return;
    this.canvas.setPointerCapture(e.pointerId);
    this.drag = { start: this.point(e), screen: [e.clientX, e.clientY], now: this.point(e) };
  }

  move(e) {
    if (!this.drag) return;
    this.drag.now = this.point(e);
    this.draw();
  }

  release(e) {
    if (!this.drag) return;
    const [sx, sy] = this.drag.screen;
    const clicked = Math.hypot(e.clientX - sx, e.clientY - sy) < CLICK_PX;
    const [x0, y0] = this.drag.start;
    const [x1, y1] = this.point(e);
    this.drag = null;
    let box;
    if (clicked) {
      const half = Math.min(this.width, this.height) * 0.18; // about a face, in a portrait or a two-shot
      box = [x0 - half, y0 - half * 1.2, x0 + half, y0 + half * 1.2];
    } else {
      box = [Math.min(x0, x1), Math.min(y0, y1), Math.max(x0, x1), Math.max(y0, y1)];
    }
    const [bx0, by0, bx1, by1] = [Math.max(0, box[0]), Math.max(0, box[1]),
      Math.min(this.width, box[2]), Math.min(this.height, box[3])].map(Math.round);
    if (bx1 - bx0 < 4 || by1 - by0 < 4) return;
    this.boxes[this.speaker()] = { x0: bx0, y0: by0, x1: bx1, y1: by1 };
    this.draw();
    this.onChange();
  }

  draw() {
    const { ctx, canvas } = this;
    if (!this.source) return;
    ctx.drawImage(this.source, 0, 0, canvas.width, canvas.height);
    const k = canvas.width / this.width;
    ctx.lineWidth = 3;
    this.boxes.forEach((box, i) => {
      if (!box) return;
      ctx.strokeStyle = COLORS[i];
      ctx.strokeRect(box.x0 * k, box.y0 * k, (box.x1 - box.x0) * k, (box.y1 - box.y0) * k);
      ctx.fillStyle = COLORS[i];
      ctx.font = "bold 14px sans-serif";
      ctx.fillText(`speaker ${i + 1}`, box.x0 * k + 4, box.y0 * k + 16);
    });
    if (this.drag) {
      const [x0, y0] = this.drag.start;
      const [x1, y1] = this.drag.now;
      ctx.strokeStyle = COLORS[this.speaker()];
      ctx.setLineDash([6, 4]);
      ctx.strokeRect(x0 * k, y0 * k, (x1 - x0) * k, (y1 - y0) * k);
      ctx.setLineDash([]);
    }
  }
}

// Speech from the microphone, as a file to upload (the browser's own format: WebM/Opus or MP4/AAC; the
// server decodes either).
export class Recorder {
  async start() {
    this.stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    this.recorder = new MediaRecorder(this.stream);
    this.chunks = [];
    this.recorder.ondataavailable = (e) => this.chunks.push(e.data);
    this.recorder.start();
  }

  stop() {
    return new Promise((resolve) => {
      this.recorder.onstop = () => {
        this.stream.getTracks().forEach((t) => t.stop());
        const type = this.recorder.mimeType || "audio/webm";
        const ext = type.includes("mp4") ? "m4a" : "webm";
        resolve(new File(this.chunks, `recording.${ext}`, { type }));
      };
      this.recorder.stop();
    });
  }
}
