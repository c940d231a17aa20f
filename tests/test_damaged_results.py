"""Damaged result files (issue 13): a truncated or garbled Parquet file of a finished sweep. A re-run checks the files
it trusts and moves the damaged ones aside (nothing is lost), so that their trials run again; `sparsity status`
names the damaged file; `sparsity report` reports on the readable rows and says, on the terminal and at the top
of the report, which file it left out. The re-run on a real Ray, from the checkpoints the trials ended with, is
in tests/test_interrupts.py (with an interrupted sweep: one Ray run for both).

The finished sweep is trained in this process (the debug mode's code path): no Ray here."""

from __future__ import annotations

import dataclasses
import os
import shutil

import pyarrow.parquet as pq
import pytest

from sweep import plan, runner, spec
from sweep.cli import main
from tests.conftest import SPECS
from trainables.records import integrity, paths
from trainables.training.loop import run_trial
from trainables.training.session import LocalSession


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished two-trial sweep as a run leaves it: manifest, spec, results, a final checkpoint per trial."""
    root = tmp_path_factory.mktemp("finished")
    spec_path = str(root / "tiny.yaml")
    text = open(os.path.join(SPECS, "tiny.yaml")).read()
    short = text.replace("epochs: 2", "epochs: 1").replace("end_step: 600", "end_step: 300")  # 390 steps
    open(spec_path, "w").write(short)
    parsed = spec.load(spec_path)
    sweep_dir = paths.sweep_dir(str(root / "store"), parsed.name)
    trials = plan.expand(parsed, sweep_dir, spec_path)
    runner.write_manifest(sweep_dir, trials, spec_path)
    for trial in trials:
        run_trial(trial, LocalSession(os.path.join(paths.tune_dir(sweep_dir), trial.trial_id, "checkpoint_000001")))
    # (the final state where Tune keeps a trial's checkpoints, as a run leaves it)
    return root, trials


@pytest.fixture
def sweep(finished, tmp_path):
    """A copy of the finished sweep: (spec path, storage root, sweep folder, trials)."""
    root, trials = finished
    shutil.copytree(root, tmp_path / "copy")
    storage = tmp_path / "copy" / "store"
    moved = [dataclasses.replace(t, sweep_dir=str(storage / "tiny")) for t in trials]
    return str(tmp_path / "copy" / "tiny.yaml"), storage, storage / "tiny", moved


def truncate(path) -> bytes:
    """Cut a file to half its size (a copy or a write interrupted): the Parquet footer is gone."""
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    return data[: len(data) // 2]


def garble(path) -> bytes:
    """Overwrite the second half of a file (its footer metadata among it) with other bytes; the size stays."""
    data = bytearray(open(path, "rb").read())
    half = len(data) // 2
    data[half:-8] = bytes((b * 7 + 13) % 256 for b in data[half:-8])
    with open(path, "wb") as f:
        f.write(data)
    return bytes(data)


def test_status_names_the_damaged_file_and_the_report_reports_the_readable_rows(sweep, capsys):
    """`sparsity status` cannot count what it cannot read: one line naming the file and how to repair it. The
    report reports on the readable rows and says which file it left out, on the terminal and first in the report
    (tests/test_interrupts.py has the repair itself: a re-run on a real Ray)."""
    _, _, sweep_dir, trials = sweep
    cut = paths.result_file(str(sweep_dir), "trials", trials[0].trial_id)
    truncate(cut)
    assert main(["status", str(sweep_dir)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"sparsity: error: {cut}: damaged results file (Parquet magic"), err
    assert err[0].endswith(f"; `sparsity resume {sweep_dir}` moves it aside and runs its trials again")

    assert main(["report", str(sweep_dir)]) == 0
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        f"sparsity: warning: 1 damaged results file left out of the report ({cut}); "
        f"`sparsity resume {sweep_dir}` moves them aside and runs their trials again"
    ]
    readme = (sweep_dir / "report" / "README.md").read_text().splitlines()
    assert readme[2].startswith(
        f"**Left out: 1 damaged result file**, whose rows are missing from this report: `{cut}`"
    )
    assert readme[4].startswith("**Not finished: 1 of 2 planned trials have finished."), readme[:6]  # the other's rows
    assert readme[6].startswith("1 trials (1 completed)"), readme[:8]
    assert "| random |" in out and "| magnitude |" not in out  # the readable trial's row only


def test_a_rerun_moves_damaged_files_aside_with_the_trials_file_that_said_finished(sweep):
    """What the re-run does before Ray starts (trainables/records/integrity.py): a truncated `trials` file and a
    garbled `evals` file are moved under damaged/, the second with its unit's intact `trials` file, one line each;
    neither trial counts as finished any more, so both run again."""
    _, _, sweep_dir, trials = sweep
    cut, scrambled = trials[0].trial_id, trials[1].trial_id
    cut_file = paths.result_file(str(sweep_dir), "trials", cut)
    scrambled_file = paths.result_file(str(sweep_dir), "evals", scrambled)
    damaged = {("trials", cut): truncate(cut_file), ("evals", scrambled): garble(scrambled_file)}
    intact = open(paths.result_file(str(sweep_dir), "trials", scrambled), "rb").read()

    found, lines = integrity.set_aside(str(sweep_dir), integrity.scan(str(sweep_dir), remember=True))
    assert found.finished_ids() == set() and found.damaged == []
    aside = {key: paths.damaged_file(str(sweep_dir), *key) for key in damaged}
    also = paths.damaged_file(str(sweep_dir), "trials", scrambled)
    first, second = sorted(lines, key=lambda line: cut not in line)
    assert first == (
        f"{cut_file} is damaged (Parquet magic bytes not found in footer. Either the file is corrupted or this is "
        f"not a parquet file.): moved to {aside['trials', cut]}; its trials run again"
    )
    assert second.startswith(f"{scrambled_file} is damaged (") and second.endswith(
        f"): moved to {aside['evals', scrambled]}, and its intact trials file to {also}; its trials run again"
    )
    for key, data in damaged.items():
        assert open(aside[key], "rb").read() == data
    assert open(also, "rb").read() == intact
    assert not os.path.exists(cut_file) and not os.path.exists(scrambled_file)
    assert integrity.scan(str(sweep_dir)).damaged == []  # what is left reads


def test_the_check_reads_only_files_that_changed_since_the_last_one(sweep, monkeypatch):
    """A re-run of a large sweep lists its folders and reads what changed: each file's size and time are kept
    (results-checked.json) with what its trials rows said."""
    _, _, sweep_dir, trials = sweep
    first = integrity.scan(str(sweep_dir), remember=True)
    assert first.damaged == [] and first.finished_ids() == {t.trial_id for t in trials}
    assert os.path.exists(paths.checked_file(str(sweep_dir)))

    opened = []
    real = integrity._check
    monkeypatch.setattr(integrity, "_check", lambda fs, table, info: opened.append(info.path) or real(fs, table, info))
    again = integrity.scan(str(sweep_dir), remember=True)
    assert opened == [] and again.finished == first.finished

    path = paths.result_file(str(sweep_dir), "layers", trials[0].trial_id)
    truncate(path)
    found = integrity.scan(str(sweep_dir), remember=True)
    assert opened == [path] and [(d.table, d.unit) for d in found.damaged] == [("layers", trials[0].trial_id)]


def test_a_file_cut_anywhere_is_found(sweep):
    """Every length short of the whole file, down to nothing, is found damaged (one scan per length)."""
    _, _, sweep_dir, trials = sweep
    path = paths.result_file(str(sweep_dir), "trials", trials[0].trial_id)
    data = open(path, "rb").read()
    assert pq.read_metadata(path).num_rows == 1
    for size in sorted({0, 1, 4, 8, len(data) // 3, len(data) // 2, len(data) - 9, len(data) - 1}):
        with open(path, "wb") as f:
            f.write(data[:size])
        found = integrity.scan(str(sweep_dir), ("trials",))
        assert [d.unit for d in found.damaged] == [trials[0].trial_id], size
        assert trials[0].trial_id not in found.finished_ids()


def test_a_report_with_no_readable_trials_rows_is_one_line(sweep, capsys):
    _, _, sweep_dir, trials = sweep
    for trial in trials:
        truncate(paths.result_file(str(sweep_dir), "trials", trial.trial_id))
    assert main(["report", str(sweep_dir)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "damaged results file" in err[0] and "and 1 more, and no readable trials rows" in err[0]


def test_a_trial_or_pack_resumed_from_the_checkpoint_it_ended_with_writes_its_files_again(sweep, tmp_path):
    """What the re-run of a trial whose files were set aside does (here without Ray): it restores its final
    checkpoint, trains no step, and writes every file again with the very rows it had, wall times included."""
    from trainables.packing.loop import run_pack
    from trainables.packing.pack import Pack, pack_id

    _, _, sweep_dir, trials = sweep
    members = [dataclasses.replace(t, sweep_dir=str(tmp_path / "packed")) for t in trials if t.method == "magnitude"]
    members += [dataclasses.replace(members[0], trial_id=members[0].trial_id + "-b", seed=1)]
    pack = Pack(pack_id(members), tuple(members))
    run_pack(pack, LocalSession(str(tmp_path / "pack-state")))
    units = [(str(sweep_dir), trials[0].trial_id, paths.tune_dir(str(sweep_dir)) + f"/{trials[0].trial_id}")]
    units += [(str(tmp_path / "packed"), pack.pack_id, str(tmp_path / "pack-state"))]
    for folder, unit, _ in units:
        for table in ("trials", "evals", "layers"):
            path = paths.result_file(folder, table, unit)
            os.rename(path, path + ".before")
    steps = []
    run_trial(trials[0], LocalSession(units[0][2] + "/checkpoint_000001"), on_step=lambda *a: steps.append(a))
    run_pack(pack, LocalSession(units[1][2]), on_step=lambda *a: steps.append(a))
    assert steps == []  # nothing trained again
    for folder, unit, _ in units:
        for table in ("trials", "evals", "layers"):
            path = paths.result_file(folder, table, unit)
            assert pq.read_table(path).equals(pq.read_table(path + ".before")), (unit, table)
