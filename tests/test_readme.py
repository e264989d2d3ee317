"""The README's sample outputs are the code's: its sample job document has a real one's keys."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

README = Path(__file__).parent.parent / "README.md"


def test_the_readmes_sample_job_document_has_a_real_ones_keys(client: Any) -> None:
    # The document printed after the README's `curl -s '127.0.0.1:8000/run?...'` line.
    found = re.search(r"\$ curl -s '127\.0\.0\.1:8000(/run\?[^']*)'.*?\n(\{.*?\n\})\n", README.read_text(), re.DOTALL)
    assert found is not None
    sample = json.loads(found.group(2))
    real = client.get(found.group(1)).get_json()
    assert list(sample) == list(real)
    assert list(sample["links"]) == list(real["links"])
    assert list(sample["stats"]) == list(real["stats"])
