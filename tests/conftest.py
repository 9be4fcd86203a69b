import os
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # for tests/factories.py

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# KD teacher-output caches of the tests go to a throw-away folder, not ~/.cache
os.environ.setdefault("POLYDISTILL_TEACHER_CACHE", tempfile.mkdtemp(prefix="polydistill-teacher-cache-"))

# transformers binds its log handler to sys.stderr on first use: bind it now, to the session's stream,
# not to a capsys stream that a test closes (later warnings would then print "--- Logging error ---")
from transformers.utils import logging as _hf_logging  # noqa: E402

_hf_logging.get_logger("transformers")

E5_DIR = Path(os.environ.get("POLYDISTILL_E5", Path.home() / ".cache/polydistill/e5-small"))
SHARED_DATA = Path(os.environ.get("POLYDISTILL_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared/data"))


@pytest.fixture(scope="session")
def e5_dir() -> Path:
    if not (E5_DIR / "config.json").is_file():
        pytest.skip(f"real e5 fixture absent at {E5_DIR}: build it with "
                    "python ../shared/tools/build_e5_fixture.py --out ~/.cache/polydistill/e5-small")
    return E5_DIR


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data absent at {SHARED_DATA} (set POLYDISTILL_SHARED_DATA)")
    return SHARED_DATA
