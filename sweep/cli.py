"""`sparsity`: run sweeps of sparsification methods and compare them."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
from importlib import resources

EXIT_BAD_INPUT = 2


def demo_spec() -> str:
    return str(resources.files("sweep") / "specs" / "demo.yaml")


def _storage_default() -> str:
    return os.environ.get("SPARSITY_STORAGE", "sweeps")


def cmd_run(args) -> int:
    from sweep import runner, spec
    from trainables.records import paths

    with _local_spec(args.spec) as local:
        parsed = spec.load(local)
        if os.environ.get("SPARSITY_JOB"):
            # A Ray job starts in its unpacked working dir, which a raylet may delete and unpack again under the
            # driver (seen with two raylets on one host: os.getcwd() then fails at the end of tuner.fit). Work from
            # absolute paths and a stable directory; imports still resolve through the unpacked dir's path.
            local = os.path.abspath(local)
            if not paths.is_uri(args.storage):
                args.storage = os.path.abspath(args.storage)
                os.makedirs(args.storage, exist_ok=True)
            os.chdir(args.storage if not paths.is_uri(args.storage) else os.path.expanduser("~"))
        said = lambda outcome: _say_interrupted(outcome, args)
        outcome = runner.run(parsed, local, args.storage, args.address, args.num_cpus, on_stuck=said)
    if outcome.interrupted:
        from sweep.interrupts import exit_code

        _say_interrupted(outcome, args)
        return exit_code(outcome.interrupted)
    print(
        f"{outcome.completed}/{outcome.trials} trials finished in {outcome.wall_time_s:.0f} s"
        + (f" ({outcome.skipped} of a later stage not run: see above)" if outcome.skipped else "")
        + "; "
        f"results in {paths.redact(paths.results_dir(outcome.sweep_dir))}"
    )
    if args.report or args.command == "demo":
        _print_report(outcome.sweep_dir)
    return 0 if outcome.errored == 0 else 1


def _say_interrupted(outcome, args) -> None:
    """What an interrupted run says: how many trials really finished (as a re-run counts them), and how to go on."""
    import signal

    from trainables.records import paths

    print(
        f"sparsity: interrupted ({signal.Signals(outcome.interrupted).name}): {outcome.completed} of "
        f"{outcome.trials} trials finished, results in {paths.redact(paths.results_dir(outcome.sweep_dir))}; "
        f"resume with: {_again(args)}",
        file=sys.stderr,
        flush=True,
    )


def _again(args) -> str:
    """The command that resumes this run (`sparsity run SPEC --storage ...`, `resume SWEEP_DIR` or `demo`)."""
    import shlex

    from trainables.records import paths

    if args.command == "resume":
        words = ["resume", args.sweep_dir]
    elif args.command == "demo":
        words = ["demo", "--storage", args.storage]
    else:
        words = ["run", args.spec, "--storage", args.storage]
    if args.address:
        words += ["--address", args.address]
    if args.num_cpus:
        words += ["--num-cpus", str(args.num_cpus)]
    return " ".join(["sparsity", *(shlex.quote(paths.redact(w)) for w in words)])


@contextlib.contextmanager
def _local_spec(path: str):
    """A spec file to read: the path itself, or a local copy of a spec on a filesystem URI (the copy a sweep keeps
    on S3, which `sparsity resume s3://...` runs from)."""
    from trainables.records import paths, storage

    if not paths.is_uri(path):
        yield path
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="sparsity-spec-") as folder:
        local = os.path.join(folder, paths.name(path))
        with open(local, "wb") as f:
            f.write(storage.read_bytes(path))
        yield local


def cmd_resume(args) -> int:
    """Run a sweep again from the spec saved in its folder (when the original spec file is gone)."""
    from sweep.spec import SpecError
    from trainables.records import paths, storage

    folder = args.sweep_dir if paths.is_uri(args.sweep_dir) else args.sweep_dir.rstrip("/")
    manifest = paths.manifest_file(folder)
    if not storage.exists(manifest):
        raise SpecError(f"{paths.redact(folder)}: not a sweep folder (no {paths.name(manifest)})")
    args.spec, args.storage = paths.spec_file(folder), paths.parent(folder)
    return cmd_run(args)


def _sweep_folder(args) -> str:
    """A SWEEP argument: a sweep folder (a path or URI), or a sweep name under --storage."""
    from trainables.records import paths

    if paths.is_uri(args.sweep) or os.path.isdir(args.sweep):
        return args.sweep
    return paths.sweep_dir(args.storage, args.sweep)


def cmd_submit(args) -> int:
    from cluster import jobs
    from sweep import plan, runner, spec
    from trainables.records import paths

    parsed = spec.load(args.spec)
    storage = args.storage
    if "://" not in storage and not os.path.isabs(storage):
        storage = os.path.abspath(storage)
        print(f"storage: {storage} (the cluster's nodes must see this path; use s3://... otherwise)")
    folder = paths.sweep_dir(storage, parsed.name)
    trials = plan.expand(parsed, folder, args.spec)
    if "://" not in folder:
        runner.check_existing(folder, trials, args.spec)  # a different plan under this name is refused here
    env = {"SPARSITY_STORAGE": storage, "SPARSITY_JOB": "1"}
    sid, new = jobs.submit(args.spec, parsed.name, args.address, storage, args.install_deps, env_vars=env)
    if not new:
        print(f"sweep {parsed.name!r} already has an active job: {sid} (not submitted again)")
    else:
        print(f"submitted sweep {parsed.name!r} ({len(trials)} trials) as job {sid} to {args.address}")
    print(f"  sparsity status {parsed.name} --storage {storage} --address {args.address}")
    print(f"  sparsity logs {parsed.name} --address {args.address}")
    if args.wait:
        final = jobs.wait(args.address, sid, args.wait)
        print(f"job {sid}: {final}")
        return 0 if final == "SUCCEEDED" else 1
    return 0


def cmd_status(args) -> int:
    from analysis.load import status_counts
    from trainables.records import paths, storage

    folder = _sweep_folder(args)
    name = paths.name(folder)
    manifest = paths.manifest_file(folder)
    if storage.exists(manifest):
        import json

        planned = len(json.loads(storage.read_text(manifest))["trial_ids"])
        seen = status_counts(folder)  # the trial_id and status columns only: fast at 100,000s of trials
        parts = ", ".join(f"{n} {s}" for s, n in sorted(seen.counts.items())) or "none finished yet"
        print(
            f"sweep {name!r} at {paths.redact(folder)}: {planned} trials planned{_phase2_note(folder)}; {parts}; "
            f"{len(seen.running)} in progress"
        )
    elif not args.address:
        from sweep.spec import SpecError

        raise SpecError(
            f"{paths.redact(folder)}: no sweep there (give its folder, or --storage, or --address for its jobs)"
        )
    if args.address:
        from cluster import jobs

        rows = jobs.status(args.address, name)
        print(f"jobs of sweep {name!r} at {args.address}:" if rows else f"no jobs of sweep {name!r} at {args.address}")
        for sid, state, started in rows:
            print(f"  {sid:<40} {state:<10} started {started}")
    return 0


def _phase2_note(folder: str) -> str:
    """A search whose phase 2 is not planned yet (phase 1 chooses its structure) says so."""
    from sweep import search

    if not search.phase2_pending(folder):
        return ""
    return f" (and stage {search.PHASE2}'s, once stage {search.PHASE1} has chosen its structure)"


def cmd_logs(args) -> int:
    from cluster import jobs
    from trainables.records import paths

    sid, text = jobs.logs(args.address, paths.name(args.sweep), args.job)
    print(f"--- logs of job {sid} ---")
    print(text, end="")
    return 0


def cmd_demo(args) -> int:
    args.spec = demo_spec()
    return cmd_run(args)


def cmd_plan(args) -> int:
    """Validate a spec; summarise its trials (per stage and method) and how they run (packs), or list them."""
    from sweep import packing, plan, search, spec
    from trainables.records import paths

    parsed = spec.load(args.spec)
    folder = paths.sweep_dir(args.storage, parsed.name)
    trials = plan.expand(parsed, folder, args.spec)
    print(f"{parsed.name}: {len(trials)} trials of task {parsed.task} -> {paths.redact(folder)}")
    skipped = plan.skipped_targets(parsed)
    if skipped:
        print(
            f"  nnz_beyond_model: skip left out {skipped} (task configuration, nnz) pairs at or above the model's weights"
        )
    slots = packing.auto_slots(os.cpu_count() or 1, runner_cpus(parsed))
    by_stage = plan.stage_of(trials)
    for stage, members in by_stage.items():
        lay = packing.layout(members, parsed.resources.pack, slots, bool(parsed.stages))
        _print_stage(stage, members, lay, parsed.resources.pack, slots, len(by_stage) > 1)
    if args.list:
        index = {t.trial_id: i for i, t in enumerate(trials)}
        for i, t in enumerate(trials):
            origin = f"  (stage {t.stage}, from [{index[t.parent_trial_id]}])" if t.parent_trial_id else ""
            print(f"  [{i}] {t.trial_id}{origin}")
    else:
        print(f"  (list every trial with: sparsity plan {args.spec} --list)")
    if parsed.search is not None and search.PHASE2 not in by_stage:
        expected = parsed.search.expected_structure
        size = f"; for {tuple(expected)} (expected_structure): {plan.phase2_size(parsed, tuple(expected)):,} trials, "
        total = f"{len(trials) + plan.phase2_size(parsed, tuple(expected)):,} in all" if expected else ""
        print(
            f"  stage {search.PHASE2}: its structure is the smallest that reaches accuracy {parsed.search.target:g} "
            f"in stage {search.PHASE1}, chosen when that has run" + (size + total if expected else "")
        )
    for name, stage in parsed.stages.items():
        if stage.parents == "best":
            print(f"stage {name}: parents: best, so only the children of each sparsity's best configuration run")
    return 0


def runner_cpus(parsed) -> float:
    from sweep.runner import trial_cpus

    return trial_cpus(parsed)


def _print_stage(stage: str, members, lay, pack, slots: int, staged: bool) -> None:
    """Per method: trials, task shapes, and how they run (packs and their sizes, or one Tune trial each)."""
    label = f"stage {stage}: " if staged else ""
    how = (
        "one Tune trial each"
        if pack == 1
        else f"pack: {pack}" + (f" ({slots} trial slots here)" if pack == "auto" else "")
    )
    print(f"  {label}{len(members)} trials as {lay.size} Tune trials ({how})")
    rows, shapes = {}, {}
    for t in members:
        rows.setdefault(t.method, {"trials": 0, "shapes": set(), "packs": [], "single": 0})
        rows[t.method]["trials"] += 1
        if id(t.task_options) not in shapes:  # one options dict per grid point, shared by its trials
            shapes[id(t.task_options)] = _shape(t)
        rows[t.method]["shapes"].add(shapes[id(t.task_options)])
    for p in lay.packs:
        rows[p.members[0].method]["packs"].append(len(p.members))
    for t in lay.singles:
        rows[t.method]["single"] += 1
    width = max(len(m) for m in rows)
    for method, r in rows.items():
        sizes = sorted(set(r["packs"]))
        packs = f"{len(r['packs'])} packs of {'/'.join(map(str, sizes))}" if r["packs"] else "no packs"
        print(
            f"    {method:<{width}}  {r['trials']:>7} trials  {len(r['shapes']):>4} task shapes  {packs}, "
            f"{r['single']} single"
        )
    for why, n in lay.refusals.items():
        print(f"    {n} trials run unpacked: {why}")


def _shape(trial) -> str:
    from trainables import tasks

    task_cls = tasks.declared(trial.task)
    return repr(sorted((k, str(v)) for k, v in trial.task_options.items() if k not in task_cls.pack_options))


def cmd_debug(args) -> int:
    """One trial of a spec in this process: no Ray, breakpoints work, a line per step."""
    import dataclasses
    import time

    from sweep import plan, spec
    from sweep.spec import SpecError
    from trainables.records import paths, storage
    from trainables.training.loop import pick_device, run_trial
    from trainables.training.session import LocalSession

    parsed = spec.load(args.spec)
    folder = paths.sweep_dir(args.storage, parsed.name + "-debug")
    trials = plan.expand(parsed, folder, args.spec)
    if not 0 <= args.trial < len(trials):
        raise SpecError(f"{args.spec}: --trial {args.trial} is out of range; this spec has trials 0..{len(trials) - 1}")
    trial = dataclasses.replace(trials[args.trial], sweep_dir=folder, workers=1)
    if trial.parent_trial_id:
        from trainables.records import artifacts

        if not artifacts.exists(folder, trial.parent_trial_id, artifacts.MASKS):
            parent = next(i for i, t in enumerate(trials) if t.trial_id == trial.parent_trial_id)
            raise SpecError(
                f"{args.spec}: --trial {args.trial} (stage {trial.stage}) starts from trial [{parent}], which has not "
                f"finished in {paths.redact(folder)}; run `sparsity debug {args.spec} --trial {parent}` first"
            )
    device = pick_device()
    ckpt = os.path.join(_debug_checkpoints(folder), trial.trial_id)
    print(
        f"debug: trial [{args.trial}] {trial.trial_id} on {device}; results in {paths.redact(folder)}, "
        f"checkpoint in {ckpt}"
    )
    if parsed.resources.workers > 1:
        print(f"debug: one process instead of resources.workers {parsed.resources.workers} (same global batch)")
    started = time.perf_counter()

    def log(step, loss, lr, sparsifier):
        if step % args.log_every == 0:
            print(
                f"step {step:>7}  loss {loss:.5f}  lr {lr:.5g}  sparsity {sparsifier.sparsity():.4f}  "
                f"{time.perf_counter() - started:7.1f}s",
                flush=True,
            )

    if args.fresh:
        import shutil

        shutil.rmtree(ckpt, ignore_errors=True)
        for table in ("evals", "trials", "layers"):  # a finished trial's rows would make it skip training
            storage.delete_file(paths.result_file(folder, table, trial.trial_id))
    row = run_trial(trial, LocalSession(ckpt), device, max_steps=args.steps, on_step=log)
    print(f"{row['status']} at step {row['steps']}: {row['metric']} {row['value']:.4f}, sparsity {row['sparsity']:.4f}")
    return 0


def _debug_checkpoints(folder: str) -> str:
    """The debug trial's checkpoint folder: beside its results, or in the user's cache when those are on a
    filesystem URI (the debug session saves plain local files)."""
    from trainables.records import paths

    if not paths.is_uri(folder):
        return os.path.join(folder, "checkpoints")
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "sparsity", "debug", paths.name(folder), "checkpoints")


def cmd_report(args) -> int:
    from trainables.records import paths, storage

    if args.out:  # before anything is read: one line, not a traceback once the report is drawn
        storage.check_root(args.out, "--out")
    elif paths.is_uri(args.sweep_dir) or os.path.isdir(args.sweep_dir):  # (no such sweep: said by the report)
        storage.check_root(paths.report_dir(args.sweep_dir), "report folder")
    _print_report(args.sweep_dir, args.heatmap_sparsity, args.reference, args.metric, args.out)
    return 0


def _print_report(
    sweep_dir: str,
    heatmap_level: float | None = None,
    reference: str | None = None,
    metric: str | None = None,
    out: str | None = None,
) -> None:
    from analysis.report import write_report
    from trainables.records import paths

    report = write_report(sweep_dir, heatmap_level, reference, metric, out)
    if report.damaged:
        print(
            f"sparsity: warning: {_count(len(report.damaged), 'damaged results file')} left out of the report "
            f"({', '.join(report.damaged)}); `sparsity resume {paths.redact(sweep_dir)}` moves them aside and runs "
            "their trials again",
            file=sys.stderr,
        )
    print()
    if report.progress:
        print(report.progress)
        print()
    print(report.markdown)
    print()
    print(f"report: {paths.redact(paths.join(report.folder, 'README.md'))}")
    print(f"page:   {paths.redact(paths.join(report.folder, 'index.html'))}")


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def _print_options(rows) -> None:
    width = max((len(f) for f, _, _ in rows), default=0)
    dwidth = min(max((len(d) for _, d, _ in rows), default=0), 24)
    for field, default, help in rows:
        print(f"  {field:<{width}}  {default:<{dwidth}}  {help}")


def cmd_methods(args) -> int:
    import methods
    from sweep.spec import describe

    for name in methods.names():
        decl = methods.declared(name)
        print(f"{name}:{'' if decl.targets_sparsity else ' (no target sparsity)'}")
        if decl.summary:
            print(f"  {decl.summary}")
        _print_options(describe(decl.Config))
    return 0


def cmd_tasks(args) -> int:
    from sweep.spec import describe
    from trainables import tasks

    for name in tasks.names():
        cls = tasks.declared(name)
        print(f"{name}: metric {cls.metric} ({cls.mode}); task_options:")
        _print_options(describe(cls.Options))
    return 0


def _whole(minimum: int, what: str):
    """An argparse type: a whole number >= minimum (e.g. --num-cpus: an embedded Ray with no CPUs waits forever)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            least = "above 0" if minimum == 1 else f"of at least {minimum}"
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of {what} {least}")
        return value

    return parse


def _number(low: float, high: float, what: str):
    """An argparse type: a finite number in [low, high)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not low <= value < high:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what} in [{low:g}, {high:g})")
        return value

    return parse


_positive_int = _whole(1, "CPUs")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sparsity", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_storage(sp):
        sp.add_argument(
            "--storage",
            default=_storage_default(),
            help="root folder of sweeps, or a URI such as s3://bucket/prefix (default: $SPARSITY_STORAGE or ./sweeps)",
        )
        return sp

    def with_ray(sp):
        sp.add_argument(
            "--address",
            help="join a running Ray cluster (e.g. auto or HOST:6379) instead of starting an embedded local one",
        )
        sp.add_argument("--num-cpus", type=_positive_int, help="CPUs of the embedded local Ray (default: all)")
        return sp

    run = with_ray(with_storage(sub.add_parser("run", help="run a sweep from a YAML spec, or resume it")))
    run.add_argument("spec", help="path to the sweep spec (YAML)")
    run.add_argument("--report", action="store_true", help="write and print the report at the end")
    run.set_defaults(func=cmd_run)

    resume = with_ray(
        sub.add_parser("resume", help="resume a sweep from the spec saved in its folder (if the spec file is gone)")
    )
    resume.add_argument(
        "sweep_dir", metavar="SWEEP_DIR", help="a sweep folder, e.g. sweeps/demo or s3://bucket/sweeps/demo"
    )
    resume.add_argument("--report", action="store_true", help="write and print the report at the end")
    resume.set_defaults(func=cmd_resume, command="resume")

    submit = with_storage(
        sub.add_parser("submit", help="submit a sweep to a Ray cluster as a job (resumes it if it exists)")
    )
    submit.add_argument("spec", help="path to the sweep spec (YAML)")
    submit.add_argument("--address", required=True, help="the cluster's job server, e.g. http://HEAD:8265")
    submit.add_argument(
        "--install-deps", action="store_true", help="have Ray pip-install the project's dependencies for the job"
    )
    submit.add_argument(
        "--wait", type=_number(0, 1e9, "seconds"), metavar="S", help="wait up to S seconds for the job to end"
    )
    submit.set_defaults(func=cmd_submit)

    status = with_storage(sub.add_parser("status", help="progress of a sweep (and its jobs, with --address)"))
    status.add_argument("sweep", metavar="SWEEP", help="a sweep folder, or a sweep name under --storage")
    status.add_argument("--address", help="also list the sweep's jobs on this job server (http://HEAD:8265)")
    status.set_defaults(func=cmd_status)

    logs = sub.add_parser("logs", help="the driver log of a sweep's latest job")
    logs.add_argument("sweep", metavar="SWEEP", help="the sweep's name (or folder)")
    logs.add_argument("--address", required=True, help="the cluster's job server, e.g. http://HEAD:8265")
    logs.add_argument("--job", help="a specific submission id (default: the latest)")
    logs.set_defaults(func=cmd_logs)

    demo = with_ray(
        with_storage(
            sub.add_parser(
                "demo", help="magnitude vs random pruning on the Cubist Spiral (minutes on a laptop), then the report"
            )
        )
    )
    demo.set_defaults(func=cmd_demo, report=True)

    plan = with_storage(
        sub.add_parser(
            "plan", help="validate a spec and summarise its trials and packs (--list: every trial); writes nothing"
        )
    )
    plan.add_argument("spec", help="path to the sweep spec (YAML)")
    plan.add_argument("--list", action="store_true", help="also list every trial with its index (for `debug --trial`)")
    plan.set_defaults(func=cmd_plan)

    report = sub.add_parser("report", help="write SWEEP_DIR/report/ (tables, plot) and print the table")
    report.add_argument(
        "sweep_dir", metavar="SWEEP_DIR", help="a sweep folder, e.g. sweeps/demo or s3://bucket/sweeps/demo"
    )
    report.add_argument(
        "--out", metavar="DIR", help="write the report here instead of SWEEP_DIR/report/ (a folder or a URI)"
    )
    report.add_argument(
        "--heatmap-sparsity",
        type=_number(0, 1, "a sparsity"),
        metavar="S",
        help="level of the per-layer sparsity heatmap (default: highest level all methods reached)",
    )
    report.add_argument(
        "--reference",
        choices=["gale2019"],
        help="set published results beside the sweep's (gale2019: State of Sparsity, for "
        "resnet50_imagenet and transformer_wmt14_ende)",
    )
    report.add_argument(
        "--metric",
        metavar="NAME",
        help="which metric to compare when the task evaluates several (default: its primary one; e.g. sacrebleu "
        "instead of the Transformer's bleu_tokenized)",
    )
    report.set_defaults(func=cmd_report)

    debug = with_storage(
        sub.add_parser(
            "debug", help="run one trial of a spec in this process, without Ray (breakpoints work), a line per step"
        )
    )
    debug.add_argument("spec", help="path to the sweep spec (YAML)")
    debug.add_argument(
        "--trial", type=_whole(0, "trials"), default=0, help="index of the trial in `sparsity plan SPEC` (default 0)"
    )
    debug.add_argument(
        "--steps", type=_whole(1, "steps"), help="stop after this many steps (default: the whole recipe)"
    )
    debug.add_argument("--log-every", type=_whole(1, "steps"), default=1, help="print every N-th step (default 1)")
    debug.add_argument(
        "--fresh", action="store_true", help="start over: drop the checkpoint and rows of an earlier debug run"
    )
    debug.set_defaults(func=cmd_debug)

    meth = sub.add_parser("methods", help="list the registered methods and their options")
    meth.set_defaults(func=cmd_methods)
    tasks_parser = sub.add_parser("tasks", help="list the registered tasks, their metric and their task_options")
    tasks_parser.set_defaults(func=cmd_tasks)
    return p


def main(argv: list[str] | None = None) -> int:
    """The `sparsity` command. Only what parsing and error reporting need is imported here; each command
    imports its own heavy parts (torch, Ray, pandas), so help, spec errors, plan, status, methods and tasks
    answer at once."""
    from analysis.errors import ReportError
    from cluster import ClusterError
    from sweep.spec import SpecError
    from trainables.records.storage import StorageError

    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (SpecError, ReportError, ClusterError, StorageError) as e:
        print(f"sparsity: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # e.g. `sparsity plan SPEC | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("sparsity: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
