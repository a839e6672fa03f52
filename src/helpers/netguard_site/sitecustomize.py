"""Imported at start-up by every Python process whose PYTHONPATH holds this folder (children of an offline
profile's process): install the network guard before anything else runs. Loads `netguard.py` by path, so the
`helpers` package itself is not imported."""

import importlib.util
import os
from pathlib import Path

if os.environ.get("HELPERS_BLOCK_REMOTE") == "1":
    _spec = importlib.util.spec_from_file_location("_helpers_netguard", Path(__file__).parent.parent / "netguard.py")
    _guard = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_guard)
    _guard.block_remote()
