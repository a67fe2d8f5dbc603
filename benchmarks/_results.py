"""What every benchmark result starts with: name, command, date, machine."""

from __future__ import annotations

import os
import platform
import sys
import time
from typing import Any


def header(name: str) -> dict[str, Any]:
    return {
        "benchmark": name,
        "command": f"python benchmarks/{name}.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
    }
