"""Checkpoints on a timer, published as C2SP signed notes, checked by a verifier written from
the C2SP texts (signed-note, tlog-checkpoint) alone (tests/support/c2sp.py): no policyflow code is used
to verify them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.audit_support import many_events, running, settings_for
from tests.support.c2sp import verify_checkpoint_note
from tests.support.publishing import publish
from tests.support.waiting import until

pytestmark = pytest.mark.usefixtures("event_stream")


async def test_a_grown_ledger_is_signed_within_the_interval_as_a_c2sp_note(tmp_path: Path, nats_url: str) -> None:
    events = many_events(2)  # 28 entries: far below CHECKPOINT_EVERY
    settings = settings_for(tmp_path, nats_url, checkpoint_every=1000, checkpoint_interval=0.5)
    async with running(settings) as svc:
        c, auth = svc.client, svc.auth()
        await publish(nats_url, events)

        async def signed() -> bool:
            r = await c.get("/v1/audit/checkpoints/latest", headers=auth)
            return r.status_code == 200 and r.json()["size"] == len(events)

        await until(signed, "a checkpoint of every entry, made by the timer", timeout=30)
        listing = (await c.get("/v1/audit/checkpoints", headers=auth)).json()
        assert listing["total"] == 1  # one growth, one checkpoint: the timer does not repeat itself
        note = (await c.get("/v1/audit/checkpoints/latest", headers={**auth, "Accept": "text/plain"})).text
        origin, size, root = verify_checkpoint_note(note, listing["verifier_key"])
        assert (origin, size, root.hex()) == ("policyflow.local/audit", len(events), listing["items"][0]["root"])

        forged = note.replace(f"\n{size}\n", f"\n{size + 1}\n", 1)
        with pytest.raises(AssertionError, match="bad note signature"):
            verify_checkpoint_note(forged, listing["verifier_key"])
