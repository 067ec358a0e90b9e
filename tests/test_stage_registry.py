"""A stage is one object: a toy stage registered beside the built-in ones is planned, run through
real jobs, resumed without redoing anything, and summarised, by the same driver, plan and
summary as every other stage; and the built-in stages are exactly the names the config takes."""

import json
import os
from pathlib import Path

from sweep.config import RUN_STAGES, compose_config
from sweep.pipeline import Pipeline
from sweep.stages.plan import StagePlan
from sweep.stages.registry import STAGES
from sweep.stages.stage import Context, GridStage, Section

ITEMS = 5


def toy_job(spec: dict) -> int:
    """Submitit job: square its items, one result file each."""
    folder = Path(spec["run_dir"]) / "toy"
    folder.mkdir(exist_ok=True)
    for item in spec["items"]:
        (folder / f"{item}.json").write_text(json.dumps({"item": item, "square": item * item}))
    return len(spec["items"])


class Toy(GridStage):
    """Squares of 0..ITEMS-1, two items a job, the last ones owed only once the first are in."""

    name = "toy"

    def max_rounds(self, ctx: Context) -> int:
        return 4

    def read(self, ctx: Context) -> dict[int, int]:
        paths = (ctx.run_dir / "toy").glob("*.json")
        return {int(p.stem): json.loads(p.read_text())["square"] for p in paths}

    def todo(self, ctx: Context, done) -> list[int]:
        wanted = range(3) if len(done) < 3 else range(ITEMS)
        return [i for i in wanted if i not in done]

    def specs(self, ctx: Context, todo: list[int]) -> list[dict]:
        return [
            {"run_dir": str(ctx.run_dir), "items": todo[i : i + 2]} for i in range(0, len(todo), 2)
        ]

    def job(self, spec: dict) -> int:
        return toy_job(spec)

    def plan(self, ctx: Context, step_seconds) -> StagePlan:
        todo = self.todo(ctx, self.read(ctx))
        return StagePlan(self.name, len(self.specs(ctx, todo)), len(todo), 0.0, ITEMS, 0.0, 0.0)

    def summary(self, ctx: Context, so_far) -> Section | None:
        done = self.read(ctx)
        if not self.complete(ctx, done):
            return None
        return Section(
            self.name, {"sum": sum(done.values())}, flops=float(len(done)), cost_key="toy_flops"
        )


def test_a_registered_toy_stage_is_planned_run_resumed_and_summarised(tmp_path, monkeypatch):
    here = str(Path(__file__).parent)  # the jobs' processes unpickle the toy from this module
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))
    )
    cfg = compose_config(f"out_root={tmp_path}", "+ladder=gpt_tiny", "logger=none")
    registry = {**STAGES, "toy": Toy()}

    planned = Pipeline(cfg, registry=registry, names=["plan", "toy"]).run()
    assert [s["stage"] for s in planned["stages"]] == ["toy"]
    assert planned["stages"][0]["runs"] == 3 and planned["stages"][0]["jobs"] == 2

    summary = Pipeline(cfg, registry=registry, names=["toy"]).run()
    assert summary["toy"] == {"sum": sum(i * i for i in range(ITEMS))}
    assert summary["cost"]["toy_flops"] == ITEMS
    run_dir = tmp_path / "gpt_tiny"
    jobs = sorted((run_dir / "jobs" / "toy").glob("*_submitted.pkl"))
    assert len(jobs) == 3  # two jobs for 0..2, then one for 3 and 4

    stamps = {p.name: p.stat().st_mtime_ns for p in (run_dir / "toy").glob("*.json")}
    again = Pipeline(cfg, registry=registry, names=["toy"]).run()  # resumed: nothing is owed
    assert again["toy"] == summary["toy"]
    assert len(sorted((run_dir / "jobs" / "toy").glob("*_submitted.pkl"))) == 3
    assert {p.name: p.stat().st_mtime_ns for p in (run_dir / "toy").glob("*.json")} == stamps
    assert json.loads((run_dir / "summary.json").read_text())["toy"] == summary["toy"]

    (run_dir / "toy" / "4.json").unlink()  # a lost result: only it is redone
    Pipeline(cfg, registry=registry, names=["toy"]).run()
    assert len(sorted((run_dir / "jobs" / "toy").glob("*_submitted.pkl"))) == 4
    assert {p.name for p in (run_dir / "toy").glob("*.json")} == set(stamps)


def test_the_registry_holds_every_stage_the_config_names_in_its_order():
    assert list(STAGES) == [str(s) for s in RUN_STAGES]
    assert all(stage.name == name for name, stage in STAGES.items())
