"""Schemathesis over each service's OpenAPI document, against the running processes over real HTTP.

Every operation of the assignment, progress and audit services is called with generated input
(valid by the schema, and deliberately invalid: schemathesis' positive and negative modes) as a
department, a supervisor, a verifier, an auditor and nobody, half of the time on ids that exist (a
programme dispatched for this test) so that requests reach the workflows and the ledger, not only
the 404 path. The check: never a 5xx (`not_a_server_error`).

Short form: a few examples per operation and role, derandomized (the same requests every run).
FAULTS_ROUNDS=N: N times as many, freshly random each run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok

from tests.faults.figures import say, table
from tests.faults.harness import FaultStack, rounds
from tests.faults.scenario import Driver, programme
from tests.support.clock import china_today

pytestmark = pytest.mark.timeout(300 * rounds())  # generous: a noisy 2-core machine, N rounds

EXAMPLES = 3
ROLES: list[tuple[str | None, str | None]] = [
    ("department", "d00"),
    ("supervisor", None),
    ("verifier", None),
    ("auditor", None),
    (None, None),
]


@dataclass
class FuzzWorld:
    stack: FaultStack
    pid: str
    aid: str


@pytest.fixture(scope="module")
async def fuzz_world(fault_stack: FaultStack) -> AsyncIterator[FuzzWorld]:
    year = china_today().year
    body = programme(tasks=1, units=2, start_year=year, horizon=year + 1, tag="fuzz")
    async with httpx.AsyncClient(timeout=60) as http:
        driver = Driver(fault_stack, http)
        aid, _ = await driver.import_and_dispatch(body)
        await driver.must(aid, "accept", "progress", f"/v1/assignments/{aid}/accept", "department", "d00")
    yield FuzzWorld(fault_stack, body.programme_id, aid)


REAL_PARAMETERS = {"assignment_id": "aid", "programme_id": "pid"}


@pytest.mark.parametrize("service", ["assignment", "progress", "audit"])
def test_no_server_error_for_any_generated_request(service: str, fuzz_world: FuzzWorld) -> None:
    stack = fuzz_world.stack
    base = stack.url(service)
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    n = rounds()
    answers: Counter[int] = Counter()
    operations = 0
    session = requests.Session()

    def fuzz(operation: Any, headers: dict[str, str]) -> None:
        @settings(
            max_examples=EXAMPLES * n,
            deadline=None,
            database=None,
            derandomize=n == 1,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
        )
        @given(case=st.one_of(*(operation.as_strategy(mode) for mode in GenerationMode)), real=st.booleans())
        def call(case: Any, real: bool) -> None:
            if real and case.path_parameters:
                for name, attr in REAL_PARAMETERS.items():
                    if name in case.path_parameters:
                        case.path_parameters[name] = getattr(fuzz_world, attr)
                if "unit_id" in case.path_parameters:
                    case.path_parameters["unit_id"] = "d00"
            try:
                response = case.call(base_url=base, session=session, headers=headers, timeout=60)
            except (requests.exceptions.InvalidHeader, UnicodeEncodeError, ValueError):
                return  # the client could not even send it (e.g. a header value that is not latin-1)
            answers[response.status_code] += 1
            case.validate_response(response, checks=[not_a_server_error])

        call()

    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"{service}'s OpenAPI document has an invalid operation: {result.err()}"
        operation = result.ok()
        operations += 1
        for role, unit in ROLES:
            fuzz(operation, stack.headers(role, unit) if role else {})
    table(
        f"schemathesis: {service}",
        [
            ("operations", operations),
            ("roles (and no token)", len(ROLES)),
            ("requests", sum(answers.values())),
            ("answers", dict(sorted(answers.items()))),
            ("5xx", sum(v for k, v in answers.items() if k >= 500)),
        ],
    )
    say()
    assert operations > 0
    assert not any(k >= 500 for k in answers)
