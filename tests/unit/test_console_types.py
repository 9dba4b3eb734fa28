"""The console's TypeScript types are generated from console/openapi.json: it must be the API's document
as the app makes it now (after an API change, `make console-types` writes both)."""

from __future__ import annotations

import json
from pathlib import Path

from ingest_api.openapi_document import document

CHECKED_IN = Path(__file__).resolve().parents[2] / "console" / "openapi.json"


def test_the_console_is_typed_from_the_current_document() -> None:
    assert json.loads(CHECKED_IN.read_text()) == document(), "stale console/openapi.json: run make console-types"
