"""What a sweep costs per trial above bare Ray Tune: 100 Cubist-Spiral trials of one epoch at width 3.

    .venv/bin/python bench/overhead.py [--trials 100] [--cpus 2]

Three runs of the same training, timed from the command's start to its end (Ray's start included in each):
  bare      a plain Tune function trainable training the same MLP with torch.optim.SGD,
            TuneConfig(reuse_actors=True), no results files, no checkpoints
  pack 1    `sparsity run` of the spec, one Tune trial per trial (the project's loop, rows, checkpoints)
  pack auto `sparsity run` of the same spec, packed
The figure is (sweep − bare) / trials: the sweep's bookkeeping and process cost per trial.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import yaml

BARE = r"""
import sys, time
import ray
from ray import tune

def train(config):
    import torch
    from trainables.tasks import get
    torch.set_num_threads(1)
    task_cls = get("cubist_spiral")
    task = task_cls(task_cls.Options(width=3, epochs=1, eval_every=390), config["seed"], torch.device("cpu"))
    torch.manual_seed(config["seed"])
    model = task.build_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    for step in range(1, task.total_steps + 1):
        loss = task.loss(model, task.batch(step))
        opt.zero_grad(); loss.backward(); opt.step()
    tune.report({"accuracy": task.evaluate(model)})

ray.init(num_cpus=int(sys.argv[2]), include_dashboard=False, log_to_driver=False)
tuner = tune.Tuner(
    tune.with_resources(train, {"cpu": 1}),
    param_space={"seed": tune.grid_search(list(range(int(sys.argv[1]))))},
    tune_config=tune.TuneConfig(reuse_actors=True),
    run_config=tune.RunConfig(storage_path=sys.argv[3], verbose=0),
)
tuner.fit()
"""


def spec(trials: int, pack) -> dict:
    return {
        "name": f"overhead-{pack}",
        "task": "cubist_spiral",
        "task_options": {"width": 3, "epochs": 1, "eval_every": 390},
        "methods": {"dense": {}},
        "seeds": list(range(trials)),
        "resources": {"pack": pack},
    }


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()
    exe = os.path.join(os.path.dirname(sys.executable), "sparsity")
    with tempfile.TemporaryDirectory() as folder:
        bare = timed([sys.executable, "-c", BARE, str(args.trials), str(args.cpus), os.path.join(folder, "bare")])
        print(f"bare Tune, reuse_actors=True: {bare:.1f} s")
        for pack in (1, "auto"):
            path = os.path.join(folder, f"spec-{pack}.yaml")
            with open(path, "w") as f:
                yaml.safe_dump(spec(args.trials, pack), f)
            wall = timed([exe, "run", path, "--storage", folder, "--num-cpus", str(args.cpus)])
            per = (wall - bare) / args.trials * 1000
            print(f"sparsity run, pack {pack}: {wall:.1f} s; above bare Tune: {per:+.0f} ms per trial")


if __name__ == "__main__":
    main()
