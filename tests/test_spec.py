"""Spec validation: every kind of bad spec gets one clear line (file, key, what is allowed), exit 2, no writes."""

from __future__ import annotations

import os

import pytest
import yaml

from sweep import plan, spec
from sweep.spec import SpecError
from tests.conftest import SPECS, sparsity_cli
from trainables import tasks


def tiny() -> dict:
    with open(os.path.join(SPECS, "tiny.yaml")) as f:
        return yaml.safe_load(f)


def error_of(data: dict) -> str:
    with pytest.raises(SpecError) as info:
        spec.parse(data, "s.yaml")
    message = str(info.value)
    assert "\n" not in message and message.startswith("s.yaml: ")
    return message


def test_tiny_spec_parses_with_defaults():
    parsed = spec.parse(tiny(), "s.yaml")
    assert parsed.name == "tiny" and parsed.sparsity == [0.9] and parsed.seeds == [0]
    assert parsed.methods["magnitude"] == {"begin_step": 100, "end_step": 600, "frequency": 50}
    assert parsed.failure.max_failures == 3 and parsed.resources.cpus_per_worker == 1.0


def test_unknown_key_names_the_key_and_the_allowed_ones():
    data = tiny()
    data["methods"]["magnitude"]["begin_stp"] = 5
    assert error_of(data) == (
        "s.yaml: methods.magnitude.begin_stp: unknown key; allowed: begin_step, end_step, "
        "frequency, allocation, first_layer_dense, layer_overrides"
    )
    assert "s.yaml: colour: unknown key; allowed: name, task" in error_of({**tiny(), "colour": 1})
    assert "task_options.widht: unknown key" in error_of({**tiny(), "task_options": {"widht": 3}})


def test_wrong_type():
    data = tiny()
    data["task_options"]["epochs"] = "many"
    assert error_of(data) == "s.yaml: task_options.epochs: expected an integer, got a string 'many'"
    data = tiny()
    data["methods"] = ["magnitude"]
    assert error_of(data) == "s.yaml: methods: expected a mapping, got a list ['magnitude']"
    data = tiny()
    data["task_options"]["lr_schedule"] = "linear"
    assert error_of(data) == (
        "s.yaml: task_options.lr_schedule: 'linear' is not allowed; choose one of cosine, multistep, constant"
    )


def test_unknown_method_and_task():
    data = tiny()
    data["methods"]["magnitud"] = {}
    assert error_of(data) == (
        "s.yaml: methods.magnitud: unknown method; registered: dense, force, gmp, grasp, imp_rewind, iterative_snip, l0, magnitude, prospr, random, rigl, snip, synflow, variational_dropout"
    )
    registered = ", ".join(tasks.names())
    assert "cubist_spiral" in registered and "resnet50_imagenet" in registered
    assert error_of({**tiny(), "task": "mnist"}) == f"s.yaml: task: unknown task 'mnist'; registered: {registered}"


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5])
def test_sparsity_outside_unit_interval(bad):
    assert error_of({**tiny(), "sparsity": [0.5, bad]}) == f"s.yaml: sparsity[1]: {bad} is outside [0, 1)"


def test_missing_required_and_other_value_errors():
    data = tiny()
    del data["methods"]["random"]["end_step"]
    assert error_of(data).startswith("s.yaml: methods.random.end_step: missing; this key is required")
    assert "sparsity: duplicate values [0.9]" in error_of({**tiny(), "sparsity": [0.9, 0.9]})
    data = tiny()
    data["methods"]["magnitude"]["end_step"] = 50
    assert error_of(data) == "s.yaml: methods.magnitude: end_step (50) must be greater than begin_step (100)"
    assert "name: 'a b' is not a valid folder name" in error_of({**tiny(), "name": "a b"})
    assert "resources.workers: 4 is not supported by task cubist_spiral" in error_of(
        {**tiny(), "resources": {"workers": 4}}
    )


def test_schedule_beyond_training_is_refused_at_planning():
    data = tiny()
    data["methods"]["magnitude"]["end_step"] = 5000  # 2 epochs = 780 steps
    with pytest.raises(SpecError, match=r"methods.magnitude: end_step \(5000\) is beyond the task's 780 training"):
        plan.expand(spec.parse(data, "s.yaml"), "/tmp/unused", "s.yaml")


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(SpecError, match=r"^nope.yaml: no such spec file$"):
        spec.load("nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match=r"bad.yaml: not valid YAML \(line \d+\)"):
        spec.load(str(bad))


def test_yaml_exponent_without_dot_is_a_float():
    data = tiny()
    data["task_options"]["weight_decay"] = "5e-4"
    assert spec.parse(data).task_options["weight_decay"] == 5e-4


def test_grid_expansion_and_dense_runs_once_per_seed():
    data = tiny()
    data["task_options"]["lr"] = [0.05, 0.1]
    data["methods"]["magnitude"]["frequency"] = [50, 100]
    data["methods"]["dense"] = None
    data["sparsity"] = [0.5, 0.9]
    data["seeds"] = [0, 1]
    trials = plan.expand(spec.parse(data), "/tmp/unused")
    count = {m: sum(t.method == m for t in trials) for m in ("magnitude", "random", "dense")}
    assert count == {"magnitude": 2 * 2 * 2 * 2, "random": 2 * 2 * 2, "dense": 2 * 2}
    assert len({t.trial_id for t in trials}) == len(trials)
    assert {t.target_sparsity for t in trials if t.method == "dense"} == {0.0}


def test_config_hashes_are_pinned():
    """Run identity must not drift: these ids name existing results folders."""
    trials = plan.expand(spec.parse(tiny()), "/tmp/unused")
    assert [t.trial_id for t in trials] == ["magnitude-0.9-8337020287-s0", "random-0.9-6aec133c9a-s0"]


def test_default_valued_option_does_not_change_identity():
    data = tiny()
    data["task_options"]["batch_size"] = 128  # the default
    data["methods"]["magnitude"]["frequency"] = 50
    before = {t.trial_id for t in plan.expand(spec.parse(tiny()), "/x")}
    assert {t.trial_id for t in plan.expand(spec.parse(data), "/x")} == before


def test_cli_bad_spec_exits_2_with_one_line_and_writes_nothing(tmp_path, write_spec):
    data = tiny()
    data["methods"]["magnitude"]["begin_stp"] = 5
    path = write_spec(data)
    storage = tmp_path / "store"
    result = sparsity_cli("run", path, "--storage", str(storage), timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"sparsity: error: {path}: methods.magnitude.begin_stp: unknown key; allowed: begin_step, end_step, "
        "frequency, allocation, first_layer_dense, layer_overrides"
    ]
    assert not storage.exists()
    missing = sparsity_cli("run", str(tmp_path / "missing.yaml"), "--storage", str(storage), timeout=60)
    assert missing.returncode == 2 and "missing.yaml: no such spec file" in missing.stderr
    assert not storage.exists()


def test_a_list_of_grids_runs_their_union():
    data = tiny()
    del data["methods"]["random"]
    data["methods"]["magnitude"] = [{"begin_step": 100, "end_step": [500, 600]}, {"begin_step": 200, "end_step": 700}]
    trials = plan.expand(spec.parse(data), "/x")
    assert sorted((t.method_config["begin_step"], t.method_config["end_step"]) for t in trials) == [
        (100, 500),
        (100, 600),
        (200, 700),
    ]
    data["methods"]["magnitude"][1] = {"begin_step": 100, "end_step": 500}
    with pytest.raises(SpecError, match="the same configuration is listed twice"):
        plan.expand(spec.parse(data), "/x")
    data["methods"]["magnitude"][1] = {"begin_stp": 100}
    assert error_of(data).startswith("s.yaml: methods.magnitude[1].begin_stp: unknown key")


def test_a_trial_bigger_than_the_local_ray_is_refused(tmp_path, write_spec):
    path = write_spec(
        {
            "name": "big",
            "task": "resnet50_imagenet",
            "task_options": {"data_dir": "synthetic"},
            "methods": {"dense": {}},
            "resources": {"workers": 4},
        }
    )
    result = sparsity_cli("run", path, "--storage", str(tmp_path / "s"), "--num-cpus", "2", timeout=60)
    assert result.returncode == 2 and not (tmp_path / "s").exists()
    assert "resources: one trial needs 5 CPUs (1 driver + 4 workers x 1) but the local Ray has 2" in result.stderr
