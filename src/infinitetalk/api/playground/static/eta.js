// The time left, in words that hold still: the server's estimate at a few percent is a guess that swings
// (42 s, then 167 s, for a 5 s task), so none is shown before a tenth is done, and a later one that is up by
// less than half is taken as noise. Rounded to what a person reads at a glance.

const FIRST_FRACTION = 0.1;

export class TimeLeft {
  constructor() {
    this.task = null;
    this.shown = null; // seconds behind the words last shown
  }

  // taskId, progress.fraction, progress.eta_s of a running task -> "about 15 s left", or "" for no estimate yet
  words(taskId, fraction, etaSeconds) {
    if (taskId !== this.task) {
      this.task = taskId;
      this.shown = null;
    }
    if (etaSeconds == null || fraction < FIRST_FRACTION) return this.shown == null ? "" : say(this.shown);
    let seconds = etaSeconds;
    if (this.shown != null && seconds > this.shown && seconds < this.shown * 1.5 + 5) seconds = this.shown;
    this.shown = seconds;
    return say(seconds);
  }
}

function say(seconds) {
  if (seconds < 10) return "a few seconds left";
  if (seconds < 60) return `about ${Math.ceil(seconds / 5) * 5} s left`;
  return `about ${Math.ceil(seconds / 60)} min left`;
}
