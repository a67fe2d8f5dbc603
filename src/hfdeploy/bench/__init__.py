"""Measure any inference endpoint: load profiles, stated metric formulas, cold start, memory.

``run_bench`` drives load (``hfdeploy bench``); ``run_duplex_bench`` holds full-duplex speech
sessions open (``hfdeploy bench --api duplex``); ``profile_coldstart`` and ``profile_memory``
time a server's start and watch its memory (``hfdeploy profile``). Reports render one result
as a console table, JSON, CSV, Markdown or a self-contained HTML page.
"""

from hfdeploy.bench.config import BenchConfig, parse_profile
from hfdeploy.bench.duplex import DuplexResult, run_duplex_bench
from hfdeploy.bench.duplex_config import DuplexConfig
from hfdeploy.bench.memory_profile import MemoryProfile, profile_memory
from hfdeploy.bench.metrics import FORMULAS, Record, Slo, parse_slo, summarize
from hfdeploy.bench.result import BenchResult
from hfdeploy.bench.run import run_bench

__all__ = [
    "FORMULAS",
    "BenchConfig",
    "BenchResult",
    "DuplexConfig",
    "DuplexResult",
    "MemoryProfile",
    "Record",
    "Slo",
    "parse_profile",
    "parse_slo",
    "profile_memory",
    "run_bench",
    "run_duplex_bench",
    "summarize",
]
