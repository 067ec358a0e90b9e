"""A grid stage of long runs (the check at the target) moves its bar as its runs train, read
from the jobs' logs, not only when a whole run ends."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from sweep.stages.stage import GridStage


class Display:
    """The driver's progress display, keeping every update."""

    def __init__(self) -> None:
        self.updates: list[dict] = []

    def add_task(self, name: str, **fields) -> int:
        self.updates.append(fields)
        return 0

    def note(self, text: str) -> None:
        self.updates.append({"note": text})

    def update(self, task: int, **fields) -> None:
        self.updates.append(fields)


class LongRuns(GridStage):
    """Two runs of 400 steps; the job trains one, logging its steps as a run does."""

    name = "verify"

    def __init__(self) -> None:
        self.finished: dict[str, float] = {}

    def skipped(self, ctx):
        return None

    def max_rounds(self, ctx):
        return 3

    def read(self, ctx):
        return dict(self.finished)

    def todo(self, ctx, done):
        return [k for k in ("a", "b") if k not in done]

    def specs(self, ctx, todo):
        return [{"run": k} for k in todo]

    def run_steps(self, ctx):
        return 400


def test_the_bar_of_long_runs_moves_with_their_steps(tmp_path: Path):
    stage, display = LongRuns(), Display()
    ctx = SimpleNamespace(run_dir=tmp_path)
    jobs = tmp_path / "jobs" / "verify"
    jobs.mkdir(parents=True)

    def launch(name, fn, specs, on_result, on_poll=None, parallel=False):
        for spec in specs:
            log = jobs / f"{spec['run']}_0_log.out"
            for step in (100, 250, 400):  # what train's live progress prints as it goes
                with log.open("a") as f:
                    f.write(f"verify-{spec['run']}: step {step}/400 | val loss 2.5\n")
                if step == 400:
                    stage.finished[spec["run"]] = 2.5
                on_poll()

    driver = SimpleNamespace(progress=display, launch=launch, report_errors=lambda: None)
    stage.run(ctx, driver)
    completed = [u["completed"] for u in display.updates if "completed" in u]
    assert completed == [0, 100, 250, 400, 500, 650, 800, 800]  # steps, not whole runs
    assert display.updates[0]["total"] == 800  # known when the bar opens: one line, not three
    midway = next(u for u in display.updates if u.get("completed") == 650)
    assert "verify-b 250/400" in midway["msg"]


class GrowingGrid(LongRuns):
    """Two runs, then a third once they are done: a grid extended toward its optimum."""

    def todo(self, ctx, done):
        wanted = ("a", "b", "c") if {"a", "b"} <= set(done) else ("a", "b")
        return [k for k in wanted if k not in done]

    def run_steps(self, ctx):
        return 0  # a grid of short runs: the bar counts runs


def test_a_grid_that_grows_says_so_once_and_its_total_follows(tmp_path: Path):
    stage, display = GrowingGrid(), Display()

    def launch(name, fn, specs, on_result, on_poll=None, parallel=False):
        for spec in specs:
            stage.finished[spec["run"]] = 2.5
            on_poll()

    driver = SimpleNamespace(progress=display, launch=launch, report_errors=lambda: None)
    stage.run(SimpleNamespace(run_dir=tmp_path), driver)
    notes = [u["note"] for u in display.updates if "note" in u]
    assert notes == [
        "verify: 1 more runs (the grids grow until each optimum is bracketed): 3 in all"
    ]
    assert display.updates[0]["total"] == 2 and display.updates[-1]["completed"] == 3
    assert max(u.get("total") or 0 for u in display.updates) == 3
