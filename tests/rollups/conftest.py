"""Fixtures of the rollup tests: a fresh, fully built ecommerce project on each warehouse."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.register_assert_rewrite("tests.rollups.helpers")

from tests.rollups.helpers import make_shop  # noqa: E402
from tests.servers import WAREHOUSE_KINDS, warehouse_url_for  # noqa: E402


@pytest.fixture(params=WAREHOUSE_KINDS)
def kind(request) -> str:
    return request.param


@pytest.fixture
def warehouse_url(kind, request) -> Iterator[str]:
    with warehouse_url_for(kind, request) as url:
        yield url


@pytest.fixture
def shop(warehouse_url, tmp_path) -> tuple[Path, str]:
    """A fresh, fully built ecommerce project: (folder, warehouse URL)."""
    return make_shop(tmp_path / "shop", warehouse_url), warehouse_url
