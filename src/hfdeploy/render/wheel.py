"""The wheel of the running hfdeploy, for the images ``generate`` writes Dockerfiles for.

hfdeploy's server and fetch images install hfdeploy from ``dist/`` beside their Dockerfile:
``generate`` writes that wheel from the installed package (its files, and its metadata and
entry points as installed), so the folder holds everything its build needs, whether hfdeploy
came from a wheel or from an editable checkout. Same package, same bytes: names are sorted and
every entry carries the same timestamp.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import io
import zipfile
from pathlib import Path

from hfdeploy._version import __version__

__all__ = ["build_wheel"]

_DIST_INFO = f"hfdeploy-{__version__}.dist-info"
_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can hold
_WHEEL = "Wheel-Version: 1.0\nGenerator: hfdeploy\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def _package_files() -> dict[str, bytes]:
    root = Path(__file__).resolve().parents[1]  # the hfdeploy package folder
    return {
        f"hfdeploy/{p.relative_to(root).as_posix()}": p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


def build_wheel() -> bytes:
    """A ``py3-none-any`` wheel of the installed hfdeploy: package files, METADATA, entry
    points, WHEEL and RECORD.

    Raises:
        importlib.metadata.PackageNotFoundError: hfdeploy's metadata is not installed.
    """
    dist = importlib.metadata.distribution("hfdeploy")
    files = _package_files()
    files[f"{_DIST_INFO}/METADATA"] = (dist.read_text("METADATA") or "").encode()
    files[f"{_DIST_INFO}/entry_points.txt"] = (dist.read_text("entry_points.txt") or "").encode()
    files[f"{_DIST_INFO}/WHEEL"] = _WHEEL.encode()
    record = [f"{name},{_record_hash(data)},{len(data)}" for name, data in files.items()]
    files[f"{_DIST_INFO}/RECORD"] = ("\n".join([*record, f"{_DIST_INFO}/RECORD,,"]) + "\n").encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return buf.getvalue()
