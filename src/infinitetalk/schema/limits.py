"""Hard limits on inputs. One place, so the docs, the API and the engines agree."""

MAX_SEED = 2_147_483_647
MIN_FPS, DEFAULT_FPS, MAX_FPS = 16, 25, 30
MAX_PROMPT_CHARS = 2_000

MAX_AUDIO_SECONDS = 600.0
MAX_AUDIO_BYTES = 128 * 1024 * 1024
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_VIDEO_BYTES = 512 * 1024 * 1024
#: Decoded pixels above this are refused as a likely decompression bomb (about 8K x 5K).
MAX_IMAGE_PIXELS = 40_000_000
#: Largest request body: a multipart submit with every file at its cap (a video, two audio tracks, an
#: image and two masks), plus room for the form's other fields.
MAX_REQUEST_BYTES = MAX_VIDEO_BYTES + 2 * MAX_AUDIO_BYTES + 3 * MAX_IMAGE_BYTES + 1024 * 1024
