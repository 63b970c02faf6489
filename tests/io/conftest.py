"""Fixtures of the video io tests: the synthetic input files of tests/io/synthetic_videos.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.io.synthetic_videos import make_case_videos


@pytest.fixture(scope="package")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every Case encoded once for the tests/io package, keyed like CASES."""
    return make_case_videos(tmp_path_factory.mktemp("videos"))
