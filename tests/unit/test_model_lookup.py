from __future__ import annotations

from pathlib import Path

import pytest

from embguard.errors import ModelNotFound
from embguard.models import loading as model


def test_hub_id_not_on_disk_is_a_clear_error_not_a_download(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match=r"'BAAI/bge-small-en' is not on disk.*never downloads"):
        model.load("BAAI/bge-small-en", store_dir=tmp_path)
