"""``hfdeploy up``: the whole flow on one machine, ending in a measured endpoint and a report.

``run_up`` (``flow``) runs the steps over the library calls; ``local`` serves and benches the
model on this machine; ``report`` writes report.md, report.html and report.json; ``steps``
holds the result types and the step timer.
"""

from hfdeploy.errors import UpError
from hfdeploy.up.flow import run_up
from hfdeploy.up.steps import Step, UpResult

__all__ = ["Step", "UpError", "UpResult", "run_up"]
