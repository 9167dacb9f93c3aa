"""Drop-in compatible APIs of the hosted InfiniteTalk providers, one thin translator each.

Point a provider's SDK or code at this server's base URL (see the README's "Provider compatibility"):
APIXO at ``/``, Segmind at ``/v1`` (its SDK's base_url), WaveSpeed at ``/``, RunPod at ``/v2``,
EachLabs at ``/``. Every route maps its wire format to a GenerationRequest, calls the one task service,
and maps the task back to the provider's response shape.
"""

from fastapi import APIRouter

# Order matters where paths overlap: EachLabs' /v1/prediction before Segmind's POST /v1/{slug}, and Segmind's
# literal /v2/requests/... before RunPod's /v2/{endpoint_id}/...
from infinitetalk.api.compat import apixo, eachlabs, runpod, segmind, wavespeed
from infinitetalk.api.compat.apixo.protocol import envelope, task_data
from infinitetalk.api.compat.eachlabs.protocol import webhook as eachlabs_webhook
from infinitetalk.api.compat.runpod.protocol import job as runpod_job
from infinitetalk.tasks.outbox import WebhookFormat

router = APIRouter()
for _provider in (apixo, eachlabs, segmind, wavespeed, runpod):
    router.include_router(_provider.router)

#: The webhook bodies their users expect, by the ``callback_format`` a task was submitted with; the API
#: process's webhook sender formats each delivery with these (a worker process never imports them).
WEBHOOK_FORMATS: dict[str, WebhookFormat] = {
    "apixo": lambda task, public: envelope(task_data(task, public)),
    "eachlabs": eachlabs_webhook,
    "runpod": runpod_job,
}

__all__ = ["WEBHOOK_FORMATS", "router"]
