"""Every operation of the running API's /api/openapi.json, fuzzed by schemathesis: data that fits the
schema and data that does not, each case sent without a token, with an invalid one and with a full-scope
token. No answer is a 5xx, every answer is one the document declares (status code, content type, headers,
body), and nothing gets through without a valid token.

Writes are real (configurations, rules, tokens, deletions), so the module runs in a namespace of its own
(see test_sink_resilience) and cannot disturb other tests. Generation is derandomized and bounded: the same
cases every run.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.test_sink_resilience import Namespace, ns  # noqa: F401  (the namespace fixture)

report = logging.getLogger(__name__)  # the figures, with --log-cli-level=INFO

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


# Without a valid token a protected operation answers 401, or refuses the request's form first: its size,
# a NUL character, or a body that is not JSON at all (FastAPI decodes the body before any dependency).
REFUSED = {400, 401, 413}
NO_TOKEN = {"none": {}, "garbage": {"Authorization": "Bearer not-a-token"}, "basic": {"Authorization": "Basic eDp5"}}


def fuzz(base_url: str, token: str, mode: GenerationMode, max_examples: int, calls: Counter[str]) -> list[str]:
    """Every operation, ``max_examples`` cases each. Each case goes without a token, with garbage and with
    Basic credentials (nothing may get through), then with the full-scope token. Returns the failures."""
    schema = schemathesis.openapi.from_url(f"{base_url}/api/openapi.json")
    failures: list[str] = []
    session = requests.Session()
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=max_examples,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: Any) -> None:
            public = (case.operation.method.lower(), case.operation.path) == ("post", "/api/auth")
            for label, headers in [*NO_TOKEN.items(), ("token", {"Authorization": token})]:
                response = case.call(base_url=base_url, headers=headers, session=session)
                calls[f"{label} {response.status_code}"] += 1
                case.validate_response(response, checks=CHECKS)
                if label != "token" and not public:
                    undecodable = response.status_code == 422 and response.json()["detail"][0]["type"] == "json_invalid"
                    assert response.status_code in REFUSED or undecodable, (label, response.status_code, response.text)

        started = time.monotonic()
        try:
            run()
        except Unsatisfiable:
            # Negative data for an operation without parameters or body: nothing to break.
            assert mode == GenerationMode.NEGATIVE, operation.label
        except (Exception, BaseExceptionGroup) as exc:  # every distinct failure hypothesis found for the operation
            failures.append(f"{operation.method.upper()} {operation.path} ({mode}): {str(exc)[:4000]}")
        report.info("%s %s (%s): %.1f s", operation.method.upper(), operation.path, mode, time.monotonic() - started)
    session.close()
    return failures


@pytest.mark.timeout(400)
@pytest.mark.parametrize(("mode", "examples"), [(GenerationMode.POSITIVE, 15), (GenerationMode.NEGATIVE, 8)])
def test_every_operation(ns: Namespace, mode: GenerationMode, examples: int) -> None:  # noqa: F811
    calls: Counter[str] = Counter()
    failures = fuzz(str(ns.api.base_url).rstrip("/"), ns.api.headers["Authorization"], mode, examples, calls)
    report.info("%s: %d calls, by token and status %s", mode, sum(calls.values()), dict(sorted(calls.items())))
    assert not failures, "\n\n".join(failures)
