"""The pipeline: configs compose, bad input fails before any job, gpt_tiny runs and resumes."""

import base64
import html
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from jsonschema import Draft202012Validator
from omegaconf import open_dict
from test_report import assert_self_contained
from wandb_records import history, run_info

from sweep.config import available_ladders, compose_config, resolve_vocabulary, validate
from sweep.core.sections import Summary, mismatches
from sweep.core.verdict import SEVERITY, Status
from sweep.edges.report import STATUS_WORDS
from sweep.edges.summary_doc import SCHEMA_FILE
from sweep.pipeline import Pipeline

GROUPS = {
    "data": ["stdlib", "docs", "text", "tokens"],
    "tune": ["tpe", "hyperband"],
    "launcher": ["local", "debug", "slurm"],
    "logger": ["wandb", "none"],
    "warmstart": ["shrink_pad_perturb", "function_preserving", "rc_sampling", "stack", "cold"],
}
CHOICE_FIELD = {"data": "source", "launcher": "kind", "logger": "kind", "warmstart": "method"}
CHOSEN = {("tune", "tpe"): ("pruner", "median"), ("tune", "hyperband"): ("pruner", "hyperband")}
TUNE = ["tune.n_trials=4", "tune.n_startup_trials=2", "tune.widen_trials=0"]
# one round of 3 LRs per series, no noise seeds, the target checked at two neighbours only
FAST = [*TUNE, "ladder.lr_max_points=3", "ladder.noise_seeds=0", "verify.max_runs=2"]


def make_cfg(tmp_path, *overrides):
    return compose_config(f"out_root={tmp_path}", *overrides)


@pytest.mark.parametrize("ladder", ["gpt_tiny", "gpt_small", "gpt_medium"])
def test_every_ladder_composes_and_validates(tmp_path, ladder):
    cfg = make_cfg(tmp_path, f"+ladder={ladder}")
    validate(cfg)
    assert cfg.ladder.widths[0] < cfg.ladder.target and cfg.ladder.lr_max_points >= 3


@pytest.mark.parametrize("group,option", [(g, o) for g, opts in GROUPS.items() for o in opts])
def test_every_config_group_composes(tmp_path, group, option):
    text = tmp_path / "corpus.txt"
    text.write_bytes(b"some text to learn from. " * 2000)
    (tmp_path / "tokens.bin").write_bytes(bytes(range(256)) * 200)
    path = {"text": text, "tokens": tmp_path / "tokens.bin"}.get(option)
    extra = [f"data.path={path}"] if path else []
    cfg = make_cfg(tmp_path, "+ladder=gpt_tiny", f"{group}={option}", *extra)
    validate(cfg)
    field, value = CHOSEN[group, option] if group == "tune" else (CHOICE_FIELD[group], option)
    assert cfg[group][field] == value  # the option's file took effect


def test_structured_config_rejects_typos_and_wrong_types(tmp_path):
    with pytest.raises(Exception, match="widthz"):
        make_cfg(tmp_path, "+ladder=gpt_tiny", "ladder.widthz=[1]")
    with pytest.raises(Exception, match="target"):
        make_cfg(tmp_path, "+ladder=gpt_tiny", "ladder.target=wide")


@pytest.mark.parametrize(
    "override, choices",
    [
        ("tune.sampler=cmaes", "tpe, random"),
        ("tune.pruner=asha", "median, hyperband, none"),
        ("launcher.kind=k8s", "local, debug, slurm"),
        ("logger.kind=mlflow", "wandb, none"),
        ("logger.mode=live", "offline, online, disabled"),
        ("warmstart.method=hypercloning", "shrink_pad_perturb, function_preserving"),
        ("warmstart.sampling=sobol", "stratified, iid"),
        ("ladder.schedule=linear", "constant, cosine"),
        ("data.source=web", "stdlib, docs, text, tokens"),
        ("stages=[tune,bogus]", "plan, tune, transfer, axes, target, verify, report"),
    ],
)
def test_an_unknown_choice_fails_at_composition_naming_the_choices(tmp_path, override, choices):
    """Every choice is an Enum of the schema: a bad one never reaches `validate` or a job."""
    with pytest.raises(Exception, match="Error merging override") as caught:
        make_cfg(tmp_path, "+ladder=gpt_tiny", override)
    assert f"expected one of [{choices}" in str(caught.value.__cause__)


def test_an_unknown_choice_on_the_command_line_stops_before_printing_the_config(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sweep.run",
            "+ladder=gpt_tiny",
            "tune.sampler=cmaes",
            "--cfg",
            "job",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "Invalid value 'cmaes', expected one of [tpe, random]" in proc.stderr
    assert "ladder:" not in proc.stdout


@pytest.mark.parametrize(
    "overrides,message",
    [
        (
            [],
            "no ladder chosen: add \\+ladder=NAME, "
            "one of gpt_cluster, gpt_deep, gpt_medium, gpt_small, gpt_tiny, gpt_wide",
        ),
        (["+ladder=gpt_tiny", "ladder.target=32"], "ladder.target"),
        (["+ladder=gpt_tiny", "ladder.lr_resolution=0"], "ladder.lr_resolution must be > 0"),
        (["+ladder=gpt_tiny", "ladder.lr_max_points=2"], "ladder.lr_max_points at least"),
        (["+ladder=gpt_tiny", "ladder.regret_tolerance=0"], "regret_tolerance"),
        (["+ladder=gpt_tiny", "ladder.search.lr.low=0"], "ladder.search.lr: log-scaled"),
        (["+ladder=gpt_tiny", "ladder.widths=[32,44]"], "divisible"),
        (["+ladder=gpt_tiny", "ladder.widths=[64,32]"], "strictly increasing"),
        (["+ladder=gpt_tiny", "data=text", "data.path=/no/such/file"], "data.path"),
        (["+ladder=gpt_tiny", "warmstart=rc_sampling", "ladder.target=96"], "multiple of"),
        (["+ladder=gpt_tiny", "warmstart=stack", "ladder.n_layer=3"], "stack_factor"),
    ],
)
def test_bad_input_is_refused_before_any_job(tmp_path, overrides, message):
    cfg = make_cfg(tmp_path, *overrides)
    with pytest.raises(ValueError, match=message):
        Pipeline(cfg)
    assert not any(tmp_path.iterdir())  # nothing written, nothing submitted


def test_command_line_error_is_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "sweep.run", f"out_root={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: no ladder chosen: add +ladder=NAME, one of " + ", ".join(available_ladders())
    ]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """gpt_tiny end to end through real Submitit subprocesses and real offline W&B files, with
    the ladder's own LR grids: every optimum must be bracketed, so the verdict is a real one."""
    root = tmp_path_factory.mktemp("runs")
    cfg = make_cfg(root, "+ladder=gpt_tiny", *TUNE)
    summary = Pipeline(cfg).run()
    return cfg, root / "gpt_tiny", summary


def test_end_to_end_summary(tiny_run):
    cfg, run_dir, summary = tiny_run
    on_disk = json.loads((run_dir / "summary.json").read_text())
    assert mismatches(on_disk, Summary) == []  # every section as its type says
    schema = json.loads(SCHEMA_FILE.read_text())  # and as the published schema says
    assert list(Draft202012Validator(schema).iter_errors(on_disk)) == []
    assert next(iter(on_disk)) == "format" and on_disk["format"] == "musweep-summary 1"
    assert on_disk["status"]["run"] == on_disk["verdict"]["status"]
    assert on_disk["status"]["transfer"] == on_disk["transfer"]["verdict"]["status"]
    assert on_disk["status"]["target"] == on_disk["verify"]["verdict"]["status"]
    assert sum(on_disk["cost_share"].values()) == pytest.approx(1.0)
    broken = on_disk | {"status": {"transfer": 1}}
    assert not Draft202012Validator(schema).is_valid(broken)
    assert on_disk["tune"]["n_trials"] == 4
    assert set(on_disk["tune"]["best_params"]) == set(cfg.ladder.search)
    transfer = on_disk["transfer"]
    for p in ("mup", "sp"):
        assert set(transfer[p]["optimum_log2_lr"]) == {"32", "64"}
        assert transfer[p]["bracketed"] == {"32": True, "64": True}
        assert all(math.isfinite(r) or r is None for r in transfer[p]["regret"].values())
        tuned = transfer["tuned_log2_lr"]
        for curve in transfer[p]["curves"].values():  # a grid centred on the tuned LR
            assert any(math.isclose(x, tuned) for x, _ in curve)
    assert transfer["conclusive"]
    assert transfer["verdict"]["text"].startswith(("µP ", "the tuned LR "))
    assert transfer["noise"]["dof"] > 0 and transfer["noise"]["std"] > 0
    verify = on_disk["verify"]
    assert verify["runs"] >= 2 and math.isfinite(verify["regret"])
    assert verify["flops_vs_target"] == pytest.approx(verify["runs"], rel=0.01)
    assert on_disk["verdict"]["text"].endswith(verify["verdict"]["text"])
    parts = [Status(on_disk[k]["verdict"]["status"]) for k in ("transfer", "verify")]
    coord_fails = not on_disk["coord_check"]["mup"]["passes"]
    worst = Status.fails if coord_fails else max(parts, key=SEVERITY.index)
    assert on_disk["verdict"]["status"] == worst
    for kind in ("warm", "cold"):
        assert math.isfinite(on_disk["target"][kind]["final_val_loss"])
    target = on_disk["target"]
    assert target["source_from_transfer"]  # the widest transfer point, reused
    if target["speedup"] is not None:  # so the warm start costs nothing more
        assert target["speedup_with_source"] == target["speedup"]
    sources = list((run_dir / "target").glob("source_*.ckpt"))
    assert len(sources) == 1  # written by the transfer stage, read by the target stage
    assert all(on_disk["cost"][k] > 0 for k in ("tuning_flops", "transfer_flops", "target_flops"))
    assert summary["tune"]["best_params"] == on_disk["tune"]["best_params"]


def test_end_to_end_report_files(tiny_run):
    _, run_dir, summary = tiny_run
    report = run_dir / "report"
    page = (report / "report.html").read_text()
    images = re.findall(r'<img [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    embedded = {base64.b64decode(m) for m in images}
    for name in ("transfer", "warmstart", "coord_check"):
        assert (report / f"{name}.png").read_bytes() in embedded, name
    for name in ("optuna_history", "optuna_importance"):  # drawn once, interactively
        assert (report / f"{name}.png").read_bytes() not in embedded, name
    body = page[page.index("<body>") :]
    headline = re.search(r'<h1>.*?</h1>\s*<p class="verdict[^"]*"[^>]*>(.*?)</p>', body, re.S)
    status = summary["status"]
    assert headline and html.unescape(headline.group(1)).endswith(
        f"across the ladder {STATUS_WORDS[Status(status['transfer'])]}, "
        f"at the target {STATUS_WORDS[Status(status['target'])]}"
    )  # the run's verdict in a line, then each check with its status word and its own text
    item = r'<li class="verdict [^"]*" data-check="([^"]+)"[^>]*>(.*?)</li>'
    checks = dict(re.findall(item, body))
    assert summary["transfer"]["verdict"]["text"] in html.unescape(checks["across the ladder"])
    assert summary["verify"]["verdict"]["text"] in html.unescape(checks["at the target"])
    assert body.count('<div class="plot">') >= 3  # Optuna's interactive plots
    assert "Plotly.newPlot" in page and "plotly.js" in page.lower()  # the library itself, inline
    assert_self_contained(page)  # nothing fetched: the page works offline


def test_every_training_run_is_an_offline_wandb_run(tiny_run):
    cfg, run_dir, _ = tiny_run
    files = sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    infos = [run_info(f) for f in files]
    job_types = [i["job_type"] for i in infos]
    assert job_types.count("tune") == 4
    assert job_types.count("transfer") == len(list((run_dir / "transfer").glob("*.json")))
    assert {"target-warm", "target-cold", "verify", "report"} <= set(job_types)
    assert {i["group"] for i in infos} == {"gpt_tiny"}
    transfer = next(i for i in infos if i["job_type"] == "transfer")
    assert {"width", "parametrization", "lr", "alpha_out"} <= set(transfer["config"])
    composed = json.loads(transfer["config"]["musweep"])  # the whole composed config
    assert composed["ladder"]["name"] == "gpt_tiny" and composed["seed"] == cfg.seed
    steps = history(files[job_types.index("target-cold")])
    assert any("val/loss" in s for s in steps) and any("train/loss" in s for s in steps)
    assert int(steps[-1]["_step"]) == cfg.ladder.target_steps


def test_the_study_records_its_config_code_and_wandb_runs(tiny_run):
    _, run_dir, _ = tiny_run
    study = optuna.load_study(study_name="gpt_tiny", storage=f"sqlite:///{run_dir / 'study.db'}")
    assert study.user_attrs["config"]["ladder"]["name"] == "gpt_tiny"
    assert study.user_attrs["code_version"]["musweep"] == "0.1.0"
    for trial in study.trials:
        link = Path(trial.user_attrs["wandb"])
        assert link.is_dir() and list(link.glob("run-*.wandb")), trial.number


def test_tuned_file_trains_the_target_cold_run_again(tiny_run, tmp_path):
    """tuned.yaml holds the target's run in plain YAML; `sweep.single --from` retrains it to the
    same losses, and its per-parameter rules are µP's at the target."""
    import yaml

    from sweep.single import main as single

    cfg, run_dir, summary = tiny_run
    tuned = yaml.safe_load((run_dir / "tuned.yaml").read_text())
    assert tuned["proxy"]["hparams"]["lr"] == pytest.approx(
        2 ** summary["transfer"]["tuned_log2_lr"]
    )
    rules = tuned["target"]["parameters"]
    m = cfg.ladder.target / cfg.ladder.widths[0]
    hidden = rules["blocks.*.attn.q.weight"]
    assert hidden["lr"] == pytest.approx(tuned["target"]["hparams"]["lr"] / m)
    assert rules["wte.weight"]["lr"] == pytest.approx(tuned["target"]["hparams"]["lr"])
    assert tuned["target"]["multipliers"]["width_multiplier_m"] == m
    assert single(["--from", str(run_dir / "tuned.yaml"), "--out", str(tmp_path)]) == 0
    again = json.loads((tmp_path / "result.json").read_text())["result"]
    applied = summary["target"]["applied"]
    assert tuned["target"]["hparams"] == applied["hparams"]  # what the target trained at
    assert tuned["target"]["carried"] == applied["carried"] == tuned["proxy"]["hparams"]
    assert tuned["run"]["optim"]["lr"] == pytest.approx(applied["hparams"]["lr"])
    (path,) = (run_dir / "target").glob("cold_*.json")
    record = json.loads(path.read_text())
    assert record["hparams"] == applied["hparams"]
    assert summary["verify"]["applied_log2_lr"] == pytest.approx(math.log2(record["hparams"]["lr"]))
    cold = record["result"]
    assert again["train_loss"] == cold["train_loss"] and again["val_loss"] == cold["val_loss"]


def test_rerun_recomputes_nothing(tiny_run):
    cfg, run_dir, summary = tiny_run
    mtimes = {p: p.stat().st_mtime for p in (run_dir / "transfer").glob("*.json")}
    again = Pipeline(cfg).run()
    reports = [
        info
        for f in run_dir.glob("wandb/offline-run-*/run-*.wandb")
        if (info := run_info(f))["job_type"] == "report"
    ]
    assert len(reports) == 2 and reports[0]["id"] == reports[1]["id"]  # resumed, not doubled
    assert {p: p.stat().st_mtime for p in (run_dir / "transfer").glob("*.json")} == mtimes
    assert again["transfer"] == summary["transfer"] and again["target"] == summary["target"]
    study = optuna.load_study(study_name="gpt_tiny", storage=f"sqlite:///{run_dir / 'study.db'}")
    assert len(study.trials) == 4


def test_resume_after_tune_runs_no_trial_again(tmp_path):
    cfg = make_cfg(
        tmp_path, "+ladder=gpt_tiny", "stages=[tune]", "launcher=debug", "logger=none", *FAST
    )
    Pipeline(cfg).run()
    storage = f"sqlite:///{tmp_path / 'gpt_tiny' / 'study.db'}"
    before = [
        (t.number, t.datetime_start)
        for t in optuna.load_study(study_name="gpt_tiny", storage=storage).trials
    ]
    with open_dict(cfg):
        cfg.stages = ["tune", "transfer"]
    summary = Pipeline(cfg).run()
    after = [
        (t.number, t.datetime_start)
        for t in optuna.load_study(study_name="gpt_tiny", storage=storage).trials
    ]
    assert after == before and len(after) == 4
    assert "transfer" in summary


def test_transfer_before_tune_is_a_clear_error(tmp_path):
    from sweep.pipeline import StageError

    cfg = make_cfg(tmp_path, "+ladder=gpt_tiny", "stages=[transfer]", "logger=none")
    with pytest.raises(StageError, match="run the tune stage first"):
        Pipeline(cfg).run()


def test_interrupted_transfer_reruns_only_missing_points(tmp_path):
    cfg = make_cfg(
        tmp_path,
        "+ladder=gpt_tiny",
        "stages=[tune,transfer]",
        "launcher=debug",
        "logger=none",
        *FAST,
    )
    Pipeline(cfg).run()
    folder = Path(tmp_path) / "gpt_tiny" / "transfer"
    victim = sorted(folder.glob("*.json"))[0]
    kept = {p: p.stat().st_mtime for p in folder.glob("*.json") if p != victim}
    victim.unlink()
    Pipeline(cfg).run()
    assert victim.exists()
    assert {p: p.stat().st_mtime for p in kept} == kept


def test_run_folder_of_another_experiment_is_refused(tmp_path):
    from sweep.pipeline import StageError

    cfg = make_cfg(
        tmp_path, "+ladder=gpt_tiny", "stages=[tune]", "launcher=debug", "logger=none", *FAST
    )
    Pipeline(cfg).run()
    changed = make_cfg(
        tmp_path,
        "+ladder=gpt_tiny",
        "stages=[tune]",
        "launcher=debug",
        "logger=none",
        "ladder.tune_steps=20",
        *FAST,
    )
    with pytest.raises(StageError, match="different experiment") as refused:
        Pipeline(changed).run()
    assert "ladder.tune_steps is 30 there, 20 here" in str(refused.value)
    judged = make_cfg(  # a setting of the analysis, not of what is trained: the folder serves
        tmp_path,
        "+ladder=gpt_tiny",
        "stages=[tune]",
        "launcher=debug",
        "logger=none",
        *FAST,
        "ladder.regret_tolerance=0.01",
        "ladder.lr_max_points=9",
    )
    assert Pipeline(judged).run()["tune"]["n_trials"] == 4
    more_trials = make_cfg(
        tmp_path,
        "+ladder=gpt_tiny",
        "stages=[tune]",
        "launcher=debug",
        "logger=none",
        *FAST[1:],
        "tune.n_trials=5",
        "tune.widen_trials=0",
    )
    assert Pipeline(more_trials).run()["tune"]["n_trials"] == 5


def test_parallel_workers_share_one_journal_study(tmp_path):
    """3 subprocess workers on one journal-file study: the total is met, no trial runs twice."""
    cfg = make_cfg(
        tmp_path,
        "+ladder=gpt_tiny",
        "stages=[tune]",
        "logger=none",
        "tune.workers=3",
        "tune.storage=journal",
        "launcher.max_parallel=3",
        "tune.n_trials=9",
        "tune.widen_trials=0",
        "tune.n_startup_trials=3",
        "ladder.tune_steps=10",
    )
    summary = Pipeline(cfg).run()
    assert summary["tune"]["n_trials"] == 9
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "gpt_tiny" / "study.journal"))
    )
    trials = optuna.load_study(study_name="gpt_tiny", storage=storage).trials
    assert len({t.number for t in trials}) == len(trials)
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) == 9
    params = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(params)) == len(params)  # workers drew different points


def test_sqlite_with_parallel_workers_is_refused(tmp_path):
    cfg = make_cfg(tmp_path, "+ladder=gpt_tiny", "tune.workers=2")
    with pytest.raises(ValueError, match="cannot share an SQLite study"):
        Pipeline(cfg)


def test_unreachable_storage_is_a_clear_error_before_any_job(tmp_path):
    from sweep.pipeline import StageError

    cfg = make_cfg(
        tmp_path,
        "+ladder=gpt_tiny",
        "logger=none",
        "tune.storage=postgresql+psycopg://nobody@127.0.0.1:1/none",
    )
    with pytest.raises(StageError, match="cannot open the Optuna study"):
        Pipeline(cfg).run()
    assert not (tmp_path / "gpt_tiny" / "jobs").exists()


@pytest.mark.parametrize("method", ["function_preserving", "rc_sampling", "stack"])
def test_each_warmstart_method_runs_the_target_stage(tmp_path, method):
    cfg = make_cfg(
        tmp_path,
        "+ladder=gpt_tiny",
        "logger=none",
        "launcher=debug",
        f"warmstart={method}",
        "stages=[tune,target]",
        "tune.n_trials=2",
        "tune.widen_trials=0",
        "tune.n_startup_trials=1",
    )
    summary = Pipeline(cfg).run()
    assert mismatches(json.loads(json.dumps(summary)), Summary) == []
    target = summary["target"]
    assert target["method"] == method
    assert math.isfinite(target["warm"]["final_val_loss"])
    assert target["warm"]["val_curve"][0][0] == 0
    cold_start = target["cold"]["val_curve"][0][1]
    assert target["warm"]["val_curve"][0][1] < cold_start  # the source's training carried over


def test_a_run_folder_of_an_earlier_version_without_newer_fields_is_accepted(tmp_path):
    """experiment.yaml written before a field existed: that field at its default is no change."""
    from omegaconf import OmegaConf

    from sweep.pipeline import StageError

    cfg = make_cfg(
        tmp_path, "+ladder=gpt_tiny", "stages=[tune]", "launcher=debug", "logger=none", *FAST
    )
    Pipeline(cfg).run()
    saved = tmp_path / "gpt_tiny" / "experiment.yaml"
    record = OmegaConf.to_container(OmegaConf.load(saved))
    del record["ladder"]["target_n_layer"], record["warmstart"]["noise"]  # "older" fields
    saved.write_text(OmegaConf.to_yaml(record))
    assert Pipeline(cfg).run()["tune"]["n_trials"] == 4
    deeper = make_cfg(
        tmp_path,
        "+ladder=gpt_tiny",
        "stages=[tune]",
        "launcher=debug",
        "logger=none",
        "ladder.target_n_layer=4",
        *FAST,
    )
    with pytest.raises(StageError, match="different experiment"):
        Pipeline(deeper).run()


def test_a_deeper_target_gets_completep_and_a_stacked_warm_start(tmp_path):
    """ladder.target_n_layer=4 over 2-layer ladder models: the target is 4 deep with CompleteP's
    depth base at the tuned depth; stack grows the widest 2-layer model into it."""
    from sweep.config import run_config, target_depth

    cfg = make_cfg(
        tmp_path,
        "+ladder=gpt_tiny",
        "logger=none",
        "launcher=debug",
        "warmstart=stack",
        "ladder.target_n_layer=4",
        "stages=[tune,target]",
        "tune.n_trials=2",
        "tune.widen_trials=0",
        "tune.n_startup_trials=1",
    )
    target = Pipeline(cfg).run()["target"]
    assert target["n_layer"] == 4 and target["method"] == "stack"
    resolve_vocabulary(cfg)
    model = run_config(cfg, cfg.ladder.target, "mup", dict(cfg.ladder.hparams), 1, 0, 4).model
    assert (model.n_layer, model.depth_base) == (target_depth(cfg), 2)
    assert math.isfinite(target["warm"]["final_val_loss"])
    assert target["warm"]["val_curve"][0][1] < target["cold"]["val_curve"][0][1]


def test_the_last_lines_name_tuned_yaml_the_study_and_how_to_sync_the_wandb_runs(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_DIR", raising=False)
    pipeline = Pipeline(make_cfg(tmp_path, "+ladder=gpt_tiny", "logger=wandb"))
    pipeline.run_dir.mkdir(parents=True)
    (pipeline.run_dir / "tuned.yaml").write_text("format: musweep-tuned 1\n")
    tuned, study, runs = pipeline.where_lines()
    assert tuned == f"tuned    {pipeline.run_dir / 'tuned.yaml'}  (its format: docs/tuned.md)"
    assert study.startswith("study    sqlite:///") and "optuna-dashboard" in study
    folder = pipeline.run_dir / "wandb"
    assert runs == f"wandb    {folder}  (offline; to upload: wandb sync {folder}/offline-run-*)"
    quiet = Pipeline(make_cfg(tmp_path, "+ladder=gpt_tiny", "logger=none", "run_name=quiet"))
    assert [line.split()[0] for line in quiet.where_lines()] == ["study"]
