"""Imported at start-up by every Python process whose PYTHONPATH holds this folder (children of an offline
profile's process): install the network guard before anything else runs, or stop the process. Loads
`netguard.py` by path, so the `helpers` package itself is not imported."""

import os
import sys

if os.environ.get("HELPERS_BLOCK_REMOTE") == "1":
    try:
        import importlib.util
        from pathlib import Path

        _spec = importlib.util.spec_from_file_location("_helpers_netguard",
                                                       Path(__file__).parent.parent / "netguard.py")
        _guard = importlib.util.module_from_spec(_spec)
        _spec.loader.exec_module(_guard)
        _guard.block_remote()
        _guard._STATE["inherited"] = True
    except Exception as error:  # site would print and carry on unguarded: fail closed instead
        print(f"network guard: could not install it ({error!r}); stopping this offline process", file=sys.stderr)
        os._exit(1)
