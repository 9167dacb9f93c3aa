"""Fuzz every operation of /openapi.json against a real keyed server on loopback (schemathesis).

Bounded and repeatable: a fixed number of examples per operation, derandomized (the same cases every run),
no example database. Run it with ``.venv/bin/pytest -m fuzz`` (it is not part of the default run). It fails on
any 5xx, and on any answer whose status, content type or body the schema does not describe."""

from __future__ import annotations

import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api_servers import Server
from infinitetalk.api import create_app
from infinitetalk.config import Settings

pytestmark = pytest.mark.fuzz

#: Cases per operation (the schema's own examples come on top); ~40 operations x 25 stays within minutes.
MAX_EXAMPLES = 25
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


# The schema the server serves is the app's own (same code); building the app touches no disk, so it is read here
# and the cases go to the real server. (schemathesis' fixture-loaded schemas do not work with pytest 9 yet.)
schema = schemathesis.openapi.from_dict(create_app(Settings()).openapi())


@schema.parametrize()
@hypothesis.settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
                     suppress_health_check=list(hypothesis.HealthCheck))
def test_openapi_operations(case: schemathesis.Case, fuzz_server: tuple[Server, str]) -> None:
    server, key = fuzz_server
    case.call_and_validate(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, checks=CHECKS,
                           timeout=60)
