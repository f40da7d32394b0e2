"""The committed type stub lists every option of `separate`, as stubgen.py writes it."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import stubgen  # noqa: E402


def test_the_stub_is_current():
    assert stubgen.STUB.read_text() == stubgen.render(), "run: python bindings/python/stubgen.py"
