"""Ray Tune sweeps of λ_dyn, α, δ and λ (§3.3, App. C; Eq. 3, 4, 11, 12/23) on a weak-safe
validation CVR-IDF1 (:mod:`raysys.tune.validation`).

Each trial is a function trainable that builds and fits a Ray Train V2 ``TorchTrainer``
(:func:`raysys.training.trainer.run_training`, DDP inside the trial) and passes its
per-epoch reports on to Tune with ``TuneReportCallback`` (the Train V2 pattern).
ASHA stops trials early, on ``global_epoch`` (the epoch index across the whole staged
schedule), with a grace period that reaches into the last stage a swept parameter acts in
(α, λ_dyn: VC-CMA + BAR; δ, λ: CGCT), so no trial is judged before its parameters act.

The leading stages in which no swept parameter's module trains (the Candidate Generator
stage of the paper's schedule, for the four parameters) are trained once, into
``<out>/prefix``, and every trial starts from that checkpoint (``init_checkpoint``): trials
differ only where their parameters act. (The CG stage's forward runs VC-CMA untrained, so
α and λ_dyn do enter it; the shared prefix runs it with the defaults.)

Resumable: ``resume=True`` continues the sweep in ``<out>/tune`` with ``Tuner.restore``;
finished trials are not run again.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from raysys.errors import UserError
from raysys.io import storage
from raysys.runtime import Resources
from raysys.training.config import TrainConfig
from raysys.tune.space import ACTS_IN, Param, apply_params, to_tune
from raysys.tune.validation import METRIC

__all__ = ["SweepConfig", "run_sweep", "split_prefix", "grace_epoch", "fit_concurrency",
           "EXPERIMENT", "INTERRUPT_ENV"]

log = logging.getLogger(__name__)

EXPERIMENT = "tune"  # Tune's experiment folder under <out>
INTERRUPT_ENV = "RAYSYS_TUNE_INTERRUPT_AFTER"  # tests: stop the sweep after N finished trials


@dataclass(frozen=True)
class SweepConfig:
    trials: int = 12  # trials sampled from the space
    search: str = "random"  # random | optuna
    max_concurrent: int = 1  # trials at once
    val_frac: float = 0.25  # held-out tail of each scene's frames (validation)
    val_scenes: tuple[str, ...] = ()  # or whole scenes held out
    val_expressions: int | None = None  # validation expressions (None: all with targets)
    val_frames: int | None = None  # held-out frames tracked per scene (None: all)
    calib_clips: int = 8  # training clips calibrating the tracker before each validation
    share_prefix: bool = True  # train the stages no parameter acts in once, for all trials
    reduction_factor: int = 2  # ASHA
    trial_cpus: float = 0.25  # CPUs of each trial's driver (its TorchTrainer's workers and
    #                            clip decoders have their own: Resources)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.search not in ("random", "optuna"):
            raise UserError(f"--search must be random or optuna, got {self.search!r}")
        if self.trials < 1 or self.max_concurrent < 1:
            raise UserError("--trials and --max-concurrent must be >= 1")
        if self.search == "optuna":
            import importlib.util

            if importlib.util.find_spec("optuna") is None:
                raise UserError("--search optuna needs optuna: `pip install optuna` (or use "
                                "--search random)")


def _acts(name: str, stage) -> bool:
    if name.startswith("lr."):
        return stage.name == name[3:]
    return ACTS_IN.get(name) in stage.modules


def split_prefix(cfg: TrainConfig, names) -> tuple[tuple, tuple]:
    """(leading stages in which no parameter of ``names`` acts, the rest)."""
    stages = cfg.stages
    for i, s in enumerate(stages):
        if any(_acts(n, s) for n in names):
            return stages[:i], stages[i:]
    return (), stages


def grace_epoch(cfg: TrainConfig, names) -> int:
    """ASHA's grace period: the first epoch (global, across stages) of the last stage in
    which a parameter of ``names`` acts; 1 if none does."""
    start, grace = 0, 1
    for s in cfg.stages:
        if s.epochs and any(_acts(n, s) for n in names):
            grace = start + 1
        start += s.epochs
    return grace


def fit_concurrency(sweep: SweepConfig, res: Resources, total_cpus: float) -> SweepConfig:
    """``sweep`` with ``max_concurrent`` lowered to the trials that fit ``total_cpus``.

    A trial holds its driver's CPUs, its Ray Train workers' and its clip decoders'. At a
    stage boundary the next stage's decoders start before the last stage's have let go of
    their CPUs, so each trial is counted with two sets of decoders: trials packed to the
    last CPU wait for each other's decoders forever (seen on 2 CPUs with 2 trials of 1.0).

    An autoscaling cluster that shows no CPU yet (``total_cpus`` 0) is left to Ray.

    Raises:
        UserError: not even one trial fits.
    """
    if total_cpus <= 0:
        return sweep
    need = (sweep.trial_cpus + res.workers * res.cpus_per_worker
            + 2 * res.loaders * res.loader_cpus)
    fit = int((total_cpus + 1e-9) // need)
    if fit < 1:
        raise UserError(f"one trial needs {need:g} CPUs (driver {sweep.trial_cpus:g}, "
                        f"{res.workers} workers x {res.cpus_per_worker:g}, clip decoders "
                        f"2 x {res.loaders} x {res.loader_cpus:g}); the cluster has "
                        f"{total_cpus:g}: lower --cpus-per-worker or --workers")
    if fit < sweep.max_concurrent:
        log.warning("--max-concurrent %d lowered to %d: a trial needs %g CPUs of the "
                    "cluster's %g", sweep.max_concurrent, fit, need, total_cpus)
        return dataclasses.replace(sweep, max_concurrent=fit)
    return sweep


def _searcher(sweep: SweepConfig):
    if sweep.search == "random":
        from ray.tune.search.basic_variant import BasicVariantGenerator

        # its own limit: Tune ignores max_concurrent_trials with a generator instance
        return BasicVariantGenerator(max_concurrent=sweep.max_concurrent,
                                     random_state=sweep.seed)
    from ray.tune.search.optuna import OptunaSearch

    return OptunaSearch(seed=sweep.seed)


def _trainable(base: TrainConfig, source, res: Resources, validator):
    """The function trainable: one TorchTrainer run of a trial's config."""

    def trial(params: dict) -> None:
        import ray.data
        import ray.tune
        from ray.tune.integration.ray_train import TuneReportCallback

        from raysys.training.trainer import run_training

        ray.data.DataContext.get_current().enable_progress_bars = False
        cfg = apply_params(base, params)
        out = Path(ray.tune.get_context().get_trial_dir()) / "train"
        run_training(source, out, cfg, res, progress=False, validate=validator,
                     callbacks=[TuneReportCallback()])

    return trial


def _interrupt_callback():
    """Stops the sweep (as Ctrl-C does) once :data:`INTERRUPT_ENV` trials finished (tests).
    ``Tuner.restore`` brings the callback back with the sweep's state, so it reads
    :data:`INTERRUPT_ENV` again at each trial's end: a resume without it runs to the end."""
    import signal

    from ray.tune import Callback

    class Interrupt(Callback):
        done = 0

        def on_trial_complete(self, iteration, trials, trial, **info) -> None:
            Interrupt.done += 1
            now = int(os.environ.get(INTERRUPT_ENV, "0") or 0)
            if now and Interrupt.done >= now:
                os.kill(os.getpid(), signal.SIGINT)

    return Interrupt()


def _can_restore(out: Path, resume: bool) -> bool:
    """Whether to restore the sweep in ``out``; refuses to start over one without
    ``resume``."""
    from ray.tune import Tuner

    exp = out / EXPERIMENT
    if resume and Tuner.can_restore(str(exp)):
        return True
    if resume:
        log.info("no sweep to resume in %s: starting one", exp)
    elif exp.exists():
        raise UserError(f"{out} already holds a sweep ({exp}); pass --resume to continue it, "
                        "or another --out")
    return False


def _tuner(trainable, space: dict[str, Param], sweep: SweepConfig, cfg: TrainConfig,
           out: Path, resume: bool):
    import ray.tune
    from ray.tune.schedulers import ASHAScheduler

    exp = out / EXPERIMENT
    if _can_restore(out, resume):
        return ray.tune.Tuner.restore(
            str(exp), ray.tune.with_resources(trainable, {"CPU": sweep.trial_cpus}),
            resume_unfinished=True, restart_errored=True)
    names = list(space)
    # max_t past the last epoch: ASHA stops a trial *at* max_t, killing it before its
    # run writes its outputs; trials end by themselves after their last epoch
    scheduler = ASHAScheduler(time_attr="global_epoch", max_t=cfg.total_epochs + 1,
                              grace_period=min(grace_epoch(cfg, names), cfg.total_epochs),
                              reduction_factor=sweep.reduction_factor)
    after = int(os.environ.get(INTERRUPT_ENV, "0") or 0)
    return ray.tune.Tuner(
        ray.tune.with_resources(trainable, {"CPU": sweep.trial_cpus}), param_space=to_tune(space),
        tune_config=ray.tune.TuneConfig(
            metric=METRIC, mode="max", num_samples=sweep.trials, scheduler=scheduler,
            search_alg=_searcher(sweep),
            max_concurrent_trials=sweep.max_concurrent if sweep.search != "random" else None),
        run_config=ray.tune.RunConfig(
            name=EXPERIMENT, **storage.ray_storage(out),
            callbacks=[_interrupt_callback()] if after else None,
            failure_config=ray.tune.FailureConfig(max_failures=0), verbose=0))


def _prefix(cfg: TrainConfig, names, source, res: Resources, out: Path, sweep: SweepConfig):
    """The trials' config: the stages after the shared prefix, from its checkpoint (trained
    here once; resumable); and the prefix's epochs."""
    head, tail = split_prefix(cfg, names)
    if not sweep.share_prefix or not head or not sum(s.epochs for s in head):
        return cfg, 0
    from raysys.training.trainer import run_training

    pre = out / "prefix"
    if not (pre / "final" / "checkpoint.json").is_file():
        log.info("training the shared prefix %s once for every trial", [s.name for s in head])
        run_training(source, pre, dataclasses.replace(cfg, stages=head), res, progress=False)
    return dataclasses.replace(cfg, stages=tail, init_checkpoint=str(pre / "final")), \
        sum(s.epochs for s in head)


def run_sweep(labels: str | os.PathLike, out: str | os.PathLike, cfg: TrainConfig,
              space: dict[str, Param], sweep: SweepConfig | None = None,
              resources: Resources | None = None, *, val_gt: str | os.PathLike | None = None,
              track=None, resume: bool = False) -> dict:
    """Run (or resume) a sweep into ``out``; Ray must be initialised (for weak supervision
    with the guard's ``runtime_env``). Writes ``results.parquet``, ``best_config.json``,
    plots and ``summary.md`` (:mod:`raysys.tune.results`); returns the summary dict.

    Args:
        labels: a ``raysys label`` output (training and, by default, validation targets).
        cfg: the training config the parameters modify (the whole schedule).
        space: :func:`raysys.tune.space.load_space`.
        val_gt: a dataset root: validate on its GT of the same held-out frames (oracle).
        track: the validation tracker's :class:`raysys.tracking.config.TrackConfig`.
    """
    import ray

    from raysys.tracking.config import TrackConfig
    from raysys.training.data import ClipSpec
    from raysys.training.sources import open_source
    from raysys.tune.results import write_outputs
    from raysys.tune.validation import HeldOutSource, Validator, link_frames, plan_holdout
    from raysys.viewsam.base import sam2_image_size, sam2_yaml_text

    sweep, res = sweep or SweepConfig(), resources or Resources()
    sweep = fit_concurrency(sweep, res, float(ray.cluster_resources().get("CPU", 0.0)))
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    apply_params(cfg, {})  # the config itself is valid
    _can_restore(out, resume)  # a sweep there without --resume: one line, nothing run
    full = open_source("weak", labels)
    holdout = plan_holdout(full, sweep.val_frac, sweep.val_scenes)
    source = HeldOutSource(labels, full.layout, holdout)
    names = list(space)
    trial_cfg, offset = _prefix(cfg, names, source, res, out, sweep)
    size = cfg.image_size or sam2_image_size(sam2_yaml_text(cfg.sam2_config, cfg.sam2_image_size))
    oracle = val_gt is not None
    target = type(full.layout)(Path(val_gt), full.layout.domain, full.layout.split).gt_root \
        if oracle else Path(labels).resolve() / "crtrack"
    validator = Validator(
        link_frames(full.layout, holdout, out / "val_frames", sweep.val_frames), target,
        source, ClipSpec.from_config(cfg, size), track or TrackConfig(clip_frames=cfg.clip_frames),
        sweep.val_expressions, sweep.calib_clips, cfg.max_samples, offset, oracle, cfg.seed)
    if not validator.units():
        raise UserError(f"no validation expression has a target box in the held-out frames "
                        f"of {target}: hold out more (val_frac) or other scenes")
    tuner = _tuner(_trainable(trial_cfg, source, res, validator), space, sweep, cfg, out,
                   resume)
    grid = tuner.fit()
    return write_outputs(out, grid, cfg, space, sweep, holdout=holdout, oracle=oracle,
                         offset=offset)
