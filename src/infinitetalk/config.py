"""One settings object, read from INFINITETALK_* environment variables and CLI flags."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from platformdirs import user_data_path
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


#: Neural engine speed settings' choices (``engines.neural.speed`` reads them; kept here so checking the
#: settings never imports torch). Backends fetched from the Hugging Face Hub at run time (``*_hub``) are left
#: out: a worker loads nothing from a hub, so the package itself is installed instead.
NeuralQuantize = Literal["none", "int8", "fp8"]
NeuralAttention = Literal[
    "native",
    "_native_math",
    "_native_cudnn",
    "_native_efficient",
    "_native_flash",
    "flash",
    "flash_varlen",
    "_flash_3",
    "_flash_varlen_3",
    "sage",
    "sage_varlen",
    "_sage_qk_int8_pv_fp8_cuda",
    "_sage_qk_int8_pv_fp8_cuda_sm90",
    "_sage_qk_int8_pv_fp16_cuda",
    "_sage_qk_int8_pv_fp16_triton",
    "xformers",
]
NeuralStepCache = Literal["none", "magcache", "taylorseer", "first_block"]
NeuralMode = Literal["quality", "fast", "fast-1p"]


def default_data_dir() -> Path:
    """One folder per user (e.g. ~/.local/share/infinitetalk), whatever the current directory: a
    `keys create` run from another folder must reach the same database as `serve`."""
    return user_data_path("infinitetalk", appauthor=False)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INFINITETALK_", extra="ignore")

    #: Where tasks, uploads and outputs live.
    data_dir: Path = Field(default_factory=default_data_dir)
    #: Hosts (names or IP addresses/networks) that URL inputs may reach even when they are not
    #: public. Empty: only public addresses. For tests and trusted internal file servers.
    #: From the environment: a comma-separated list (`127.0.0.1,files.internal`) or a JSON array.
    fetch_allow_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    fetch_connect_timeout_s: float = 10.0
    fetch_read_timeout_s: float = 60.0
    #: One input URL's whole download (connecting, redirects, every byte) ends after this long: a server that
    #: trickles a byte now and then never trips the read timeout, and would hold a submit thread for ever.
    #: 120 s moves 512 MB (the largest video) at 4.3 MB/s; slower sources should be sent as uploads.
    fetch_total_timeout_s: float = Field(default=120.0, gt=0)
    #: "preview" (CPU, no weights), "neural" (needs weights_dir) or "auto" (neural when weights are set).
    engine: str = "auto"
    weights_dir: Path | None = None
    #: Neural engine: "single" (one speaker) or "multi" (two-speaker) adapter weights.
    neural_variant: str = "single"
    #: Neural engine: stream transformer blocks from CPU memory (for 24-48 GB cards).
    neural_offload: bool = False
    #: Neural engine: the GPU memory to plan for, in GiB (as `infinitetalk models plan --gpu-memory`); a start-up or
    #: job whose planned peak exceeds it is refused up front. Empty: the CUDA device's own. Set it where the engine
    #: starts without a card (a CPU test deployment) to be refused as the target card would refuse it.
    neural_gpu_memory_gb: float | None = Field(default=None, gt=0)
    #: Neural engine sampling (docs/neural-engine.md, "Modes"): "quality" (40 steps, text + audio guidance: three
    #: passes a step), "fast" (4 steps, audio guidance: two passes) or "fast-1p" (4 steps, one pass). The fast
    #: modes need a step-distilled LoRA in neural_lora (lightx2v).
    neural_mode: NeuralMode = "quality"
    #: A LoRA merged into the transformer as it loads: a path, or a file name in the weights folder's loras/.
    neural_lora: Path | None = None
    neural_lora_scale: float = Field(default=1.0, gt=0)
    #: Neural engine speed (docs/neural-engine.md, "Speed"). Defaults are the plain path until a GPU
    #: measurement shows a faster one within tolerance. Transformer block linear layers: "none" (bf16),
    #: "int8" (weight-only, any device), "fp8" (dynamic activations, per-row scales; CUDA compute 8.9+).
    neural_quantize: NeuralQuantize = "none"
    #: diffusers attention backend; the ones that need a package (flash-attn, sageattention, xformers) are
    #: checked at start-up, with the package to install named when it is missing.
    neural_attention: NeuralAttention = "native"
    #: torch.compile of the repeated transformer blocks: a one-time warm-up per worker, then faster steps.
    neural_compile: bool = False
    #: Step cache for many-step runs (reuses block outputs between close steps): "none" or a diffusers cache.
    neural_step_cache: NeuralStepCache = "none"
    #: How far a step may drift before the cache recomputes (the cache's own scale); empty: its default.
    neural_step_cache_threshold: float | None = Field(default=None, ge=0)

    # --- HTTP task service (infinitetalk serve) ---
    #: A fleet: Redis URL of the task queue (redis://host:6379/0). Set, `serve` hands tasks to the queue and
    #: runs no engine; `infinitetalk worker` processes (one per GPU) take them. Empty: render threads in `serve`.
    broker_url: str | None = None
    #: SQLAlchemy URL; empty: an SQLite file in data_dir. PostgreSQL works with the same code.
    database_url: str | None = None
    #: A fleet: s3://bucket/prefix for inputs, uploads and outputs, shared by every process (credentials and
    #: region from the usual AWS variables or profile). Empty: folders in data_dir, on this machine only.
    storage_url: str | None = None
    #: S3-compatible servers (MinIO, SeaweedFS, Cloudflare R2): their endpoint, e.g. http://minio:9000.
    #: Empty: AWS S3 (or AWS_ENDPOINT_URL_S3, which boto3 reads itself).
    s3_endpoint_url: str | None = None
    #: The S3 endpoint clients reach the bucket at, used only to presign output links (the processes keep
    #: s3_endpoint_url): set it when that one is a name only the servers resolve (http://minio:9000 in compose),
    #: e.g. https://s3.example.com. Empty: s3_endpoint_url (or AWS's), which suits AWS S3 and R2.
    s3_public_endpoint_url: str | None = None
    #: How an output link of S3 storage answers: "redirect" (307 to a presigned URL of the bucket, so the bytes
    #: never pass through the API; clients must reach the bucket) or "proxy" (the API streams the object from
    #: the bucket, ranges included; for a bucket clients cannot reach, at the cost of the API's bandwidth).
    s3_links: Literal["redirect", "proxy"] = "redirect"
    #: `serve` and `worker` wait this long at start for the database, the broker and the bucket to answer (one
    #: log line per retry), then stop with one line and exit code 3. 60 s covers a PostgreSQL or MinIO started
    #: beside them (compose, systemd) finishing its own start; 0 tries once.
    startup_wait_s: float = Field(default=60.0, ge=0)
    host: str = "127.0.0.1"
    port: int = 8000
    #: Open connections served at once (capped by the open-files limit). Past it a new connection closes
    #: the one that has waited longest without sending a request; when all are busy, requests get 503.
    max_connections: int = 1000
    #: A client must send a request's headers within this long (slow-header clients hold sockets).
    header_timeout_s: float = 10
    #: A request body, or an answer the client does not read, that stalls this long is dropped.
    idle_timeout_s: float = 60
    #: An idle keep-alive connection is closed after this long.
    keep_alive_timeout_s: float = 5
    #: Connections the kernel queues before the server accepts them.
    backlog: int = 2048
    #: A key that authenticated is trusted this long without another database read (so a revoked key
    #: works for at most this long: its open event streams and waits are checked again this often, at least
    #: every 0.25 s); 0: read the store on every request.
    key_cache_s: float = 1.0
    #: Serve callers that send no API key (loopback callers only). Only ever what the operator asked for
    #: (`serve --open`); an empty key table never opens the server.
    open: bool = False
    #: In-process render threads (one per GPU is right for the neural engine).
    workers: int = 1
    #: Base URL clients reach the server at (for output and webhook URLs); empty: the request's own.
    public_url: str | None = None
    #: Open mode: names (as in the Host header, no port) that key-less callers may send requests to, besides
    #: localhost, 127.0.0.1, [::1], the bind host (unless 0.0.0.0 or ::) and public_url's host. Any other Host is
    #: refused (421) without a key, since a page on a name that resolves to this machine (DNS rebinding) must
    #: not read its tasks. Comma-separated (`gpu-box.lan,10.0.0.5`) or a JSON array.
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: USD per billed second, per resolution.
    rates: dict[str, float] = Field(default_factory=lambda: {"480p": 0.03, "576p": 0.045, "720p": 0.06})
    #: USD per billed second of a fast request (`sampling: fast`, WaveSpeed's infinitetalk-fast routes), per
    #: resolution (a JSON object). A resolution left out costs half its `rates` entry: 4 steps instead of 40,
    #: sold at WaveSpeed's "half the cost".
    fast_rates: dict[str, float] = Field(default_factory=dict)
    #: Fewest seconds a task is billed for: a short clip costs a render's set-up all the same. Also the least a
    #: canceled task pays once it has made some video.
    min_billed_seconds: int = 5
    #: Look for the speakers' faces at submit (mediapipe, some tens of ms a request) and refuse a picture
    #: with too few (400 no_face_detected, nothing charged), so a render that cannot work is never billed.
    #: Off only for pictures the detector cannot read (drawn faces) on an engine that may still animate
    #: them; the preview engine then fails such a task when it runs, refunded.
    face_check: bool = True
    #: Outputs (and their signed URLs) expire this long after a task ends.
    output_ttl_s: float = 7 * 24 * 3600
    #: A finished task's live-preview segments (and its playlist) go this long after its video is stored, so
    #: the video is not kept twice until output_ttl_s; 5 minutes lets a player that is still on the playlist
    #: finish it (the segments are deleted by the next retention sweep after that, every sweep_interval_s).
    preview_grace_s: float = Field(default=300.0, ge=0)
    #: Uploaded inputs not used by a task are deleted after this long.
    upload_ttl_s: float = 24 * 3600
    #: Per key (and for open mode's key-less callers together): unexpired uploads held at once, and their bytes.
    max_uploads_per_key: int = 200
    max_upload_bytes_per_key: int = 2 * 1024**3
    #: Per key: tasks waiting in the queue at once (running ones are max_concurrent's business).
    max_queued_per_key: int = 100
    #: Per key (open mode's key-less callers together), held at once: event streams, `Prefer: wait` answers
    #: (native and provider routes) and input URL downloads (submits and estimates). Past them a 429 with
    #: Retry-After. Connections and threads are shared by every caller; these keep one key's share of them
    #: small (8 streams watch 8 tasks; a client waiting on more should poll or use a callback_url).
    max_streams_per_key: int = Field(default=8, ge=1)
    max_waits_per_key: int = Field(default=16, ge=1)
    max_fetches_per_key: int = Field(default=8, ge=1)
    #: Per key, estimates that download input URLs in any 60 s: an estimate stores and charges nothing, so
    #: without this nothing limits how often a key makes us fetch and decode someone's URL.
    estimates_per_minute: int = Field(default=60, ge=1)
    #: Threads that run submits and estimates (input downloads, decoding, the store): their own pool, so slow
    #: input URLs never take the threads that key checks, polls and every other route run on.
    submit_threads: int = Field(default=32, ge=1)
    #: Largest JSON body; bigger inputs go as uploads or URLs, since a parsed JSON body costs several times
    #: its size in memory.
    max_json_body_bytes: int = 48 * 1024**2
    sweep_interval_s: float = 600
    #: HMAC key for signed output URLs; empty: one is made once and kept in data_dir.
    signing_secret: str | None = None
    #: A running task is failed with Timeout after this long.
    task_timeout_s: float = 3600
    #: How long a database write waits for another writer before the request gets a 503 (SQLite's busy
    #: timeout). Short, so a stuck writer elsewhere cannot pile requests up on every server thread.
    database_busy_timeout_s: float = 5.0
    #: A running task's worker renews its heartbeat this often, whether or not the engine reports progress.
    heartbeat_interval_s: float = 10.0
    #: A running task whose heartbeat is older than this lost its worker: it is queued again (or failed,
    #: refunded, after max_attempts runs). Checked every reap_interval_s.
    stale_after_s: float = 90.0
    reap_interval_s: float = 30.0
    #: With a broker: queued tasks older than this are sent again when the broker's queue is empty (their
    #: message was lost: the broker was down at submit, or restarted without its data).
    redispatch_after_s: float = 30.0
    max_attempts: int = 3
    #: How long the final status write of a task is retried (database locked, disk full) before the reaper
    #: is left to find the task.
    terminal_retry_s: float = 600.0
    #: Delays before each webhook retry; after the last one the delivery is given up.
    webhook_retry_delays_s: list[float] = Field(default_factory=lambda: [5, 30, 120, 600, 1800, 3600])
    #: One webhook attempt ends after this long in all: connecting, sending and the receiver's answer.
    webhook_timeout_s: float = 10
    #: Webhook deliveries under way at once (a hanging receiver holds one of them until its timeout).
    webhook_concurrency: int = 16
    #: Longest `Prefer: wait=N` honoured.
    max_wait_s: int = 300
    #: Waiters (SSE, `Prefer: wait`) are woken at once by changes made in this process; changes made by
    #: other processes (a fleet of API servers) are seen within this long.
    watch_poll_s: float = 2.0
    #: Content-safety checker of outputs, 'module:factory' (infinitetalk.tasks.safety); empty: none (not checked).
    safety_checker: str | None = None

    @field_validator("fetch_allow_hosts", "allowed_hosts", mode="before")
    @classmethod
    def _host_list(cls, value: object) -> object:
        """`a,b` or `["a", "b"]` from the environment; a list from code stays as it is."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not a JSON list ({exc.msg}); or give hosts separated by commas") from None
        return [host.strip() for host in text.split(",") if host.strip()]


@lru_cache
def get_settings() -> Settings:
    return Settings()
