from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def guest_build(tmp_path_factory) -> Path:
    """Where guest programs are compiled (once per session)."""
    return tmp_path_factory.mktemp("guest-build")
