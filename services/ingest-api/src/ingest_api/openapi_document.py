"""Print the API's OpenAPI document (``make console-types`` writes it to console/openapi.json, from which
the console's TypeScript types are generated). The app is built but not started: no broker or database."""

from __future__ import annotations

import json
import sys
from typing import Any

from ingest_api.main import create_app


def document() -> dict[str, Any]:
    return create_app().openapi()


if __name__ == "__main__":
    sys.stdout.write(json.dumps(document(), indent=2) + "\n")
