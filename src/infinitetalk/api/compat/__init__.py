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

router = APIRouter()
for _provider in (apixo, eachlabs, segmind, wavespeed, runpod):
    router.include_router(_provider.router)

__all__ = ["router"]
