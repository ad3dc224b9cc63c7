import json
from pathlib import Path

from shared.catalogue import catalogue
from shared.events import EVENT_TYPES

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "events.catalogue.json"


def test_the_committed_catalogue_is_current() -> None:
    """Regenerate with `slapay catalogue > docs/events.catalogue.json`."""
    assert json.loads(COMMITTED.read_text()) == json.loads(json.dumps(catalogue()))


def test_every_type_is_in_the_catalogue() -> None:
    assert set(catalogue()["events"]) == set(EVENT_TYPES)
