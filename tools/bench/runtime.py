"""The interpreter a benchmarked CCM runs on: the production install, not the dev venv.

A Pod runs the image's venv: the locked runtime dependencies and nothing else. The
dev venv adds test and lint packages, and some libraries import what they find
installed (about 7 MiB more after start, measured), so a CCM run from it
overstates what a Pod holds. Each build runs on a venv made from its own
``requirements.lock`` (``pip install --no-deps -r``, as the Dockerfile does), its
``src`` first on ``PYTHONPATH``: the same code and the same dependencies as its
image. The venvs are cached under ``~/.cache/xenorchestra-ccm/bench-runtime/``,
one per lock file content.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

CACHE = Path(os.environ.get("XOCCM_CACHE", Path.home() / ".cache" / "xenorchestra-ccm"))


def production_python(lock: Path) -> Path:
    """The python of a venv holding exactly what ``lock`` pins (made once)."""
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()[:16]
    venv = CACHE / "bench-runtime" / digest
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    if python.exists() and stamp.exists():
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "-r", str(lock)],
        check=True,
    )
    stamp.write_text(lock.read_text(encoding="utf-8"), encoding="utf-8")
    return python
