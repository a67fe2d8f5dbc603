"""Planning full-duplex models: a GPU that holds the model and real time, one replica per
session, the frame step in plan.json; a GPU too slow or too small is refused with its reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hfdeploy import inspect_model
from hfdeploy.cli.main import app
from hfdeploy.errors import DoesNotFitError, InvalidSettingError
from hfdeploy.model.profile import ModelProfile
from hfdeploy.plan.planner import plan_deployment
from hfdeploy.plan.realtime import REALTIME_BUDGET
from tests._synthetic import kyutai_checkpoint


@pytest.fixture(scope="module")
def profiles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModelProfile]:
    root = tmp_path_factory.mktemp("duplex-plan")
    return {
        "personaplex": inspect_model(
            str(kyutai_checkpoint(root / "pp", "personaplex", voices=True))
        ),
        "moshiko": inspect_model(str(kyutai_checkpoint(root / "mk", "moshiko"))),
    }


def test_h100_holds_real_time_with_margin(profiles: dict[str, ModelProfile]) -> None:
    plan = plan_deployment(profiles["personaplex"], gpu="h100", engine="personaplex")
    d = plan.to_dict()
    rt = d["realtime"]
    assert d["engine"] == "personaplex" and d["gpu"] == {"name": "H100-SXM", "count": 1}
    assert rt["ok"] and rt["frame_ms"] == 80
    assert rt["step_ms"] < 0.5 * 80  # well inside the frame
    assert rt["rtf"] == pytest.approx(rt["step_ms"] / 80, abs=1e-3)
    assert d["cost"]["per_session_hour"] == d["cost"]["price_per_gpu_hour"]


def test_l4_is_not_planned_in_real_time(profiles: dict[str, ModelProfile]) -> None:
    with pytest.raises(DoesNotFitError, match="not real time") as refused:
        plan_deployment(profiles["personaplex"], gpu="l4")
    # And the way out: the cheapest GPU that does hold real time, with its predicted step.
    cheapest = plan_deployment(profiles["personaplex"])
    assert cheapest.gpu is not None and cheapest.realtime is not None
    assert (f"--gpu {cheapest.gpu.name.lower()} holds real time ({cheapest.realtime.step_ms:g} ms"
            in refused.value.hint)  # fmt: skip


def test_t4_does_not_hold_bf16(profiles: dict[str, ModelProfile]) -> None:
    with pytest.raises(DoesNotFitError, match=r"GiB per replica over its 15 GiB"):
        plan_deployment(profiles["personaplex"], gpu="t4")


def test_no_gpu_given_takes_the_cheapest_real_time_one(profiles: dict[str, ModelProfile]) -> None:
    plan = plan_deployment(profiles["personaplex"])
    assert plan.realtime is not None and plan.realtime.ok
    assert plan.realtime.step_ms <= REALTIME_BUDGET * 80
    looked = {a.placement: a for a in plan.alternatives}
    assert not looked["1 x L4"].fits and "not real time" in looked["1 x L4"].why
    assert not looked["1 x T4"].fits
    cheaper = [
        a for a in plan.alternatives if a.fits and a.per_month < plan.cost.dedicated_per_month
    ]  # type: ignore[union-attr]
    assert not cheaper  # nothing cheaper held the model in real time


def test_sessions_make_replicas(profiles: dict[str, ModelProfile]) -> None:
    d = plan_deployment(
        profiles["personaplex"], gpu="h100", concurrency=20, engine="personaplex"
    ).to_dict()
    s = d["scaling"]
    assert s["sessions"] == 20 and s["sessions_per_replica"] == 1
    assert s["replicas"] * s["sessions_per_replica"] >= 20
    assert d["settings"]["concurrency"] == 1  # each replica is sized for its own session


def test_blackwell_is_refused_for_personaplex_only(profiles: dict[str, ModelProfile]) -> None:
    with pytest.raises(DoesNotFitError, match="Blackwell"):
        plan_deployment(profiles["personaplex"], gpu="b200", engine="personaplex")
    assert plan_deployment(profiles["moshiko"], gpu="b200").realtime is not None


def test_commands_read_every_file_from_the_volume(profiles: dict[str, ModelProfile]) -> None:
    pp = plan_deployment(profiles["personaplex"], gpu="h100", engine="personaplex")
    args = list(pp.command.args)
    assert args[args.index("--static") + 1] == "none"
    assert args[args.index("--voice-prompt-dir") + 1] == "/repository/.hfdeploy/voices"
    assert "--ssl" not in args and "--hf-repo" not in args
    assert pp.command.env["HF_HUB_OFFLINE"] == "1"
    assert pp.command.env["HF_HUB_CACHE"] == "/repository/.hfdeploy/hf-cache"
    mk = plan_deployment(profiles["moshiko"], gpu="h100", engine="moshi")
    margs = list(mk.command.args)
    assert margs[margs.index("--config-path") + 1] == "/repository/.hfdeploy/moshi-config.json"
    assert margs[margs.index("--host") + 1] == "0.0.0.0"


def test_wrong_engine_and_cpu_are_refused(profiles: dict[str, ModelProfile]) -> None:
    with pytest.raises(InvalidSettingError, match="personaplex"):
        plan_deployment(profiles["personaplex"], engine="moshi", gpu="h100")
    with pytest.raises(InvalidSettingError, match="not on CPU"):
        plan_deployment(profiles["moshiko"], gpu="cpu")


def test_plan_cli_json_and_text(profiles: dict[str, ModelProfile], tmp_path: Path) -> None:
    folder = profiles["moshiko"].location
    js = CliRunner().invoke(app, ["plan", folder, "--gpu", "h100", "--json"])
    assert js.exit_code == 0, js.output
    assert json.loads(js.output)["realtime"]["ok"] is True
    text = CliRunner().invoke(app, ["plan", folder, "--gpu", "l4"])
    assert text.exit_code != 0 and "not real time" in text.output
