"""Recall and false alarms of `hfdeploy audit` over the indirection corpus, per class.

The corpus (tests/audit/corpus/, its manifest.toml) holds deployment files written the way
public guides and repositories write them, whose faults hide behind variables, engine
environment, build scripts and node labels, with the clean twin of most. Each case is
audited on its own, with the corpus's _hub-cache/ as the local Hugging Face cache.

    python scripts/audit_corpus.py [-v]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from tests.audit._corpus import ClassScore, score


def _row(name: str, s: ClassScore) -> str:
    recall = f"{s.found}/{s.expected} {s.recall:.2f}"
    return f"{name:<24} {s.faulty_files:>6} {s.clean_files:>5} {recall:>12} {s.false_alarms:>12}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("-v", "--verbose", action="store_true", help="list each file that differs")
    args = ap.parse_args()
    total = ClassScore()
    print(f"{'class':<24} {'faulty':>6} {'clean':>5} {'recall':>12} {'false alarms':>12}")
    for name, s in score().items():
        print(_row(name, s))
        total.found += s.found
        total.expected += s.expected
        total.false_alarms += s.false_alarms
        total.faulty_files += s.faulty_files
        total.clean_files += s.clean_files
        total.misses += s.misses
    print(_row("all", total))
    if args.verbose:
        for m in total.misses:
            print(f"  {m.file}: missed {list(m.missed)}, false alarms {list(m.false_alarms)}")


if __name__ == "__main__":
    main()
