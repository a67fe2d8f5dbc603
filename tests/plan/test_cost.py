"""Dedicated vs scale-to-zero: the billed share, cold starts and the break-even traffic."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from hfdeploy import inspect_model
from hfdeploy.plan.cost import billed_share, break_even_rate
from hfdeploy.plan.planner import plan_deployment
from tests._synthetic import LLAMA3_8B, config_folder


def _simulate(
    rate: float, cold: float, idle: float, arrivals: int, seed: int
) -> tuple[float, float]:
    """A scale-to-zero replica under Poisson arrivals: (billed share, cold-start share).

    A request to a stopped replica starts it (billed from then, ready ``cold`` s later);
    requests that arrive while it starts are served when it is ready; it stops ``idle`` s
    after the last request it served.
    """
    rng = random.Random(seed)
    t = billed = 0.0
    start = stop = -math.inf
    colds = 0
    for _ in range(arrivals):
        t += rng.expovariate(rate)
        if t >= stop:  # stopped: a cold start
            if stop > -math.inf:
                billed += stop - start
            start, stop = t, t + cold + idle
            colds += 1
        else:
            stop = max(stop, max(t, start + cold) + idle)
    billed += min(stop, t) - start
    return billed / t, colds / arrivals


@pytest.mark.parametrize("per_hour", [0.3, 1.0, 3.0])
def test_billed_share_matches_a_simulation(per_hour: float) -> None:
    rate, cold, idle = per_hour / 3600, 116.0, 3600.0
    billed, colds = _simulate(rate, cold, idle, arrivals=60_000, seed=7)
    share = billed_share(rate, cold, idle)
    assert billed == pytest.approx(share, abs=0.01)
    assert colds == pytest.approx(1 - share, abs=0.01)


def test_break_even_traffic() -> None:
    even = break_even_rate(116.0, 3600.0)
    # Scale-to-zero saves exactly 5% there, more below it and less above it.
    assert 1 - billed_share(even, 116.0, 3600.0) == pytest.approx(0.05, abs=1e-6)
    assert 1 - billed_share(even / 2, 116.0, 3600.0) > 0.05
    assert 1 - billed_share(even * 2, 116.0, 3600.0) < 0.05
    assert even * 3600 == pytest.approx(math.log(20), rel=0.02)  # e^(rate x idle) ~ 20
    # A shorter idle timeout (Knative's minute) pays off at far more traffic.
    assert break_even_rate(116.0, 60.0) > 30 * even


def test_plan_says_which_is_cheaper(tmp_path: Path) -> None:
    model = config_folder(tmp_path / "l8", LLAMA3_8B)
    profile = inspect_model(str(model))
    rare = plan_deployment(profile, gpu="h100", traffic_rps=1 / 3600, active_hours_per_day=24)
    busy = plan_deployment(profile, gpu="h100", traffic_rps=1.0, active_hours_per_day=24)
    assert rare.cost.cheaper == "scale-to-zero"
    assert rare.cost.scale_to_zero_per_month < rare.cost.dedicated_per_month * 0.7
    assert rare.cost.cold_start_share_of_requests > 0.3  # the price: a third wait
    assert busy.cost.cheaper == "dedicated"
    assert busy.cost.cold_start_share_of_requests < 1e-6
    office = plan_deployment(profile, gpu="h100", traffic_rps=1.0, active_hours_per_day=8)
    assert office.cost.cheaper == "scale-to-zero"  # off 15 h a day
    assert office.cost.scale_to_zero_billed_hours_per_day == pytest.approx(9.0, abs=0.01)
    assert rare.cost.break_even_traffic_rps == busy.cost.break_even_traffic_rps
