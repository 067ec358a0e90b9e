import math
from dataclasses import replace

import pytest

from sweep.core.checkpoint import CheckpointError
from sweep.core.train import OptimConfig, RunConfig, ended_worse, lr_factor, train


def test_same_config_and_seed_give_the_same_losses(corpus, tiny_run):
    a, _ = train(tiny_run, corpus)
    b, _ = train(tiny_run, corpus)
    assert a.status == "completed" and a.steps_done == 12
    assert a.train_loss == b.train_loss and a.val_loss == b.val_loss
    c, _ = train(replace(tiny_run, seed=1), corpus)
    assert c.train_loss != a.train_loss


def test_training_lowers_the_loss_and_counts_compute(corpus, tiny_run):
    run = replace(tiny_run, steps=40, eval_every=20)
    result, model = train(run, corpus)
    assert [s for s, _ in result.val_loss] == [0, 20, 40]
    assert result.val_loss[-1][1] < result.val_loss[0][1] - 0.5
    assert result.tokens == 40 * run.batch_size * run.model.seq_len
    # at least 6 FLOPs per token for every weight a token is multiplied by (all but the lookups),
    # and not more than twice that: attention adds little at this context length
    weights = sum(
        p.numel() for n, p in model.named_parameters() if not n.startswith(("wte", "wpe"))
    )
    assert 6 * weights * result.tokens < result.flops < 12 * weights * result.tokens


class Crash(Exception):
    pass


def test_resume_after_a_crash_replays_the_exact_losses(corpus, tiny_run, tmp_path):
    reference, _ = train(tiny_run, corpus)
    ckpt = tmp_path / "run.ckpt"

    def crash_at_8(step, _val):
        if step == 8:
            raise Crash
        return False

    with pytest.raises(Crash):
        train(tiny_run, corpus, on_eval=crash_at_8, checkpoint_path=ckpt, checkpoint_every=3)
    resumed, _ = train(tiny_run, corpus, checkpoint_path=ckpt, checkpoint_every=3)
    assert resumed.train_loss == reference.train_loss  # bit-identical on CPU
    assert resumed.val_loss[-1] == reference.val_loss[-1]


def test_finished_run_is_not_trained_again(corpus, tiny_run, tmp_path):
    ckpt = tmp_path / "run.ckpt"
    first, _ = train(tiny_run, corpus, checkpoint_path=ckpt)
    calls = []
    again, _ = train(tiny_run, corpus, checkpoint_path=ckpt, on_eval=lambda s, v: calls.append(s))
    assert again.train_loss == first.train_loss and calls == []


def test_checkpoint_of_another_run_is_refused(corpus, tiny_run, tmp_path):
    ckpt = tmp_path / "run.ckpt"
    train(tiny_run, corpus, checkpoint_path=ckpt)
    with pytest.raises(ValueError, match="different run config"):
        train(replace(tiny_run, seed=5), corpus, checkpoint_path=ckpt)


def test_corrupted_checkpoint_is_an_error_not_a_silent_restart(corpus, tiny_run, tmp_path):
    ckpt = tmp_path / "run.ckpt"
    train(tiny_run, corpus, checkpoint_path=ckpt)
    ckpt.write_bytes(ckpt.read_bytes()[:-100])
    with pytest.raises(CheckpointError):
        train(tiny_run, corpus, checkpoint_path=ckpt)


def test_divergence_ends_the_run_with_a_reason(corpus, tiny_run):
    run = replace(tiny_run, optim=OptimConfig(lr=30.0), steps=30)
    result, _ = train(run, corpus)
    assert result.status == "diverged"
    assert "loss" in result.reason and result.steps_done < 30


def test_eval_callback_can_stop_the_run(corpus, tiny_run):
    seen = []

    def prune_after_first_eval(step, val):
        seen.append((step, val))
        return step >= 4

    result, _ = train(tiny_run, corpus, on_eval=prune_after_first_eval)
    assert result.status == "stopped" and result.steps_done == 4
    assert [s for s, _ in seen] == [0, 4]
    assert len(result.train_loss) == 4
    # compute counts the steps actually trained: a third of the full 12-step run's
    full, _ = train(tiny_run, corpus)
    assert (result.tokens * 3, result.flops * 3) == (full.tokens, full.flops)


def test_warm_start_weights_are_used(corpus, tiny_run):
    _, trained = train(replace(tiny_run, steps=30), corpus)
    run = replace(tiny_run, steps=1, eval_every=1)
    cold, _ = train(run, corpus)
    warm, _ = train(run, corpus, init_state=trained.state_dict())
    assert warm.val_loss[0][1] < cold.val_loss[0][1] - 0.3


def test_lr_schedule_warmup_then_cosine():
    optim = OptimConfig(warmup_steps=10, schedule="cosine", min_lr_ratio=0.1)
    assert lr_factor(0, optim, 110) == pytest.approx(0.1)
    assert lr_factor(9, optim, 110) == pytest.approx(1.0)
    assert lr_factor(10, optim, 110) == pytest.approx(1.0)
    assert lr_factor(60, optim, 110) == pytest.approx(0.55)
    assert lr_factor(110, optim, 110) == pytest.approx(0.1)
    constant = replace(optim, schedule="constant")
    assert lr_factor(100, constant, 110) == 1.0


@pytest.mark.parametrize(
    "build,field",
    [
        (lambda m: RunConfig(model=m, steps=0), "run.steps"),
        (lambda m: RunConfig(model=m, batch_size=-2), "run.batch_size"),
        (lambda m: RunConfig(model=m, optim=OptimConfig(lr=0.0)), "optim.lr"),
        (lambda m: RunConfig(model=m, optim=OptimConfig(schedule="step")), "optim.schedule"),
    ],
)
def test_bad_run_config_names_the_field(tiny_run, build, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        build(tiny_run.model)


def test_context_longer_than_the_corpus_is_refused_before_training(corpus, tiny_run):
    run = replace(tiny_run, model=replace(tiny_run.model, seq_len=10**7))
    with pytest.raises(ValueError, match=r"seq_len"):
        train(run, corpus)


def test_nan_is_reported_as_divergence(corpus, tiny_run):
    run = replace(tiny_run, model=replace(tiny_run.model, alpha_out=math.inf))
    result, _ = train(run, corpus)
    assert result.status == "diverged"


def test_a_run_that_ends_worse_than_it_began_counts_as_diverged(corpus, tiny_run):
    # LR 3 blows the loss up; a divergence factor too large to catch it lets the run finish,
    # above the untrained model's loss: no point of an LR curve, a diverged run
    run = replace(tiny_run, optim=OptimConfig(lr=3.0, warmup_steps=2), steps=30, diverge_factor=1e6)
    result, _ = train(run, corpus)
    assert result.steps_done == 30 and result.final_val_loss > result.val_loss[0][1]
    assert result.status == "diverged" and "above the untrained" in result.reason
    assert ended_worse([(0, 5.5), (10, 8.0)]).startswith("validation loss 8 at step 10")
    assert ended_worse([(0, 5.5), (10, 2.0)]) == ""
    assert ended_worse([(10, 8.0), (20, 9.0)]) == ""  # no step-0 loss to compare with
    fine, _ = train(tiny_run, corpus)
    assert fine.status == "completed"
