"""The study's published tables shipped beside its CSVs (analysis.reference): the README's best-per-sparsity table as
published (papers/state-of-sparsity.md §3), and the lottery-ticket / scratch runs with the tables recomputed from
them (§4.2, §4.3), and that all of it is found through the installed package."""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import math
import os
import subprocess
import sys
from importlib import resources

import pandas as pd
import pytest

from analysis import lth, reference
from analysis.reference import (
    RESNET50,
    TRANSFORMER,
    load_gale2019_lottery,
    published_lottery,
    published_lottery_wide,
    published_readme,
    published_readme_wide,
)

T, R = TRANSFORMER, RESNET50

# papers/state-of-sparsity.md §3, the two tables copied verbatim (bold marks included).
README_TABLES = {
    T: """
| Sparsity | MP | VD | L0 | Random |
|---|---|---|---|---|
| 50% | 26.33 | 26.26 | **26.72** | 24.56 |
| 60% | 25.94 | 25.37 | **26.16** | 24.45 |
| 70% | 25.21 | 25.08 | **25.29** | 24.01 |
| 80% | **24.65** | 24.33 | 24.15 | 23.15 |
| 90% | **23.26** | 21.43 | 20.05 | 20.67 |
| 95% | **20.75** | 19.13 | 19.78 | 17.42 |
| 98% | 16.37 | 14.45 | **16.83** | 10.94 |
""",
    R: """
| Sparsity | MP (uniform, std schedule) | MP extended / non-uniform (1st layer dense) | VD (thr 0.5) | Random | L0 |
|---|---|---|---|---|---|
| 50% | 76.53 | – | **76.55** | 74.59 | failed (≈0.1%) |
| 70% | **76.38** | – | – | 72.20 | failed |
| 80% | 75.58 | **76.52** | 75.28 | 70.21 | failed |
| 90% | 73.91 | **75.16** (target 0.91) | 73.84 | 65.00 | failed |
| 95% | 70.59 | **72.71** (target 0.96) | 71.91 | 58.04 | failed |
| 96.5% | – | 69.26 (target 0.98) | – | – | – |
| 98% | 57.90 | – | **67.36** (achieved 97.9%) | 43.99 | failed |
""",
}
# the captions: "(dense 27.29 mean / 27.52 max)", "(dense 76.69 mean)"
README_DENSE = {T: "27.29 mean / 27.52 max", R: "76.69 mean"}
README_METHODS = {
    T: ["magnitude", "variational_dropout", "l0", "random"],
    R: ["magnitude", "magnitude_extended", "variational_dropout", "random", "l0"],
}

# papers/state-of-sparsity.md §4.2 and §4.3, verbatim.
LOTTERY_TABLES = {
    T: """
| Sparsity | MP (pruned) | scratch-e | scratch-e + augmented init | scratch-b | scratch-b + augmented init | Lottery ticket |
|---|---|---|---|---|---|---|
| 50% | 26.33 | 24.97 | 24.68 | 26.24 | 25.14 | 24.88 |
| 60% | 25.94 | 24.22 | 24.05 | 25.62 | 24.41 | 24.30 |
| 70% | 25.21 | 23.43 | 23.27 | 24.80 | 23.64 | 24.15 |
| 80% | 24.65 | 22.97 | 22.87 | 23.04 | 22.77 | 23.76 |
| 90% | 23.26 | 21.09 | 20.49 | 21.34 | 20.98 | 22.04 |
| 95% | 20.75 | 18.40 | 17.83 | 18.76 | 18.10 | 19.27 |
| 98% | 16.37 | ≥13.80 | ≥13.12 | ≥14.34 | ≥13.58 | ≥14.02 |
""",
    R: """
| s | MP | LT | scratch-e (tm1) base init | scratch-e sparse init | scratch-b (tm2) base init | scratch-b sparse init | tm2 `lr_constant_final` base / sparse |
|---|---|---|---|---|---|---|---|
| .5 | 76.53 | 74.76 | 74.84 | 74.82 | 75.86 | 75.81 | 75.04 / 75.08 |
| .7 | 76.38 | 73.11 | 72.84 | 72.93 | 74.30 | 74.43 | 73.25 / 73.22 |
| .8 | 75.58 | 71.38 | 71.14 | 71.29 | 72.77 | 72.68 | 71.66 / 71.65 |
| .9 | 73.91 | 67.62 | 67.40 | 67.39 | 69.18 | 69.33 | 67.79 / 67.86 |
| .95 | 70.59 | 63.20 | 62.78 | 62.95 | 64.79 | 65.15 | 63.19 / 63.18 |
| .98 | 57.90 | 51.61 | – | – | – | – | – |
""",
}
PUBLISHED_MP = reference.PUBLISHED_MP_COLUMN
LOTTERY_COLUMNS = {  # published column -> published_lottery_wide column(s)
    T: [PUBLISHED_MP, "scratch_e", "sparsity_aware_init", "scratch_b", "scratch_b_sparsity_aware_init", "lottery"],
    R: [
        PUBLISHED_MP,
        "lottery",
        "scratch_e",
        "sparsity_aware_init",
        "scratch_b",
        "scratch_b_sparsity_aware_init",
        ("scratch_b (lr_constant_final)", "scratch_b_sparsity_aware_init (lr_constant_final)"),
    ],
}
# §4.2 marks the 98 % row as lower bounds ("≥"; the author read the files truncated at 16,000 characters). The
# full CSVs give these maxima: equal to the bound except scratch-e, whose two best 98 % runs (13.89, row 19 of
# the 25, and 13.93, row 25) lie after the cut; the first 16,000 characters hold 18 of the 25 runs, max 13.80
# (test_scratch_e_98_lower_bound_is_the_truncated_file).
CSV_98 = {
    "scratch_e": 13.93,
    "sparsity_aware_init": 13.12,
    "scratch_b": 14.34,
    "scratch_b_sparsity_aware_init": 13.58,
    "lottery": 14.02,
}

LOTTO_FILES = {  # packaged path -> (sha256 of the released file, rows of load_gale2019_lottery)
    "sparse_transformer/scratch_lotto/transformer_lottery_ticket.csv": (
        "4b700621a85a87a1608db76b4a6ed9df1c7deb4dd7c9526a14943e88e9b94764",
        175,
    ),
    "sparse_transformer/scratch_lotto/transformer_scratche.csv": (
        "9f39b1b1ae0abf5fc26aaab9a8cc27489d440b804fbf4e69b7bc707849296a8f",
        175,
    ),
    "sparse_transformer/scratch_lotto/transformer_scratchb.csv": (
        "3817720090642b26a6fc4ba0a9e0f999744ef609fbf679a4fb5c2b3ed8099faf",
        175,
    ),
    "sparse_transformer/scratch_lotto/transformer_scratche_augmented_init.csv": (
        "0767907abf9921bc889e1dc9effe40acd32d88354d048c1a5e3d968781f8b3d0",
        175,
    ),
    "sparse_transformer/scratch_lotto/transformer_scratchb_augmented_init.csv": (
        "b7e2c525786ad874c8608671afdeb3f3cbe2ac49c64df67ecaf74b6eb8a51471",
        175,
    ),
    "sparse_rn50/scratch_lotto/rn50_lottery_ticket.csv": (
        "315255b53f0cd020f879e9634e9dbfbe5ef57bfd7fb911952888bc776e0f2969",
        48,
    ),
    "sparse_rn50/scratch_lotto/rn50_scratch_lr_scaled.csv": (  # wide: 20 rows x 9 runs
        "0a8eb7c1e869c44cded4baeb9bd77f7ae6724b32198493459a08e90183185d93",
        20 * 9,
    ),
    "sparse_rn50/scratch_lotto/rn50_scratch_lr_constant_final.csv": (  # wide: 10 rows x 9 runs
        "053956f20b283bd0346c9ead1577ca5e0d5aa089a3f22add5c13aee9a81a3812",
        10 * 9,
    ),
    # 12 data rows each (6 levels x 2 inits), not 11 as the brief and the shared README's table say
    "sparse_rn50/scratch_lotto/rn50_scratch_lr_constant_decay.csv": (
        "2ce3184e504156c4f91c3f773657511660229b3813c23ac9f832cf013e2a581f",
        12,
    ),
    "sparse_rn50/scratch_lotto/rn50_scratch_lr_continual_decay.csv": (
        "06108ed849cd8d6182b44a50225d300cd6ddcb335273084bdd422859f99df6cb",
        12,
    ),
}


def _markdown(table: str) -> tuple[list[str], list[list[str]]]:
    lines = [line.strip().strip("|").split("|") for line in table.strip().splitlines()]
    header, _, *rows = [[cell.strip() for cell in line] for line in lines]
    return header, rows


def _folder():
    return resources.files("analysis") / "reference_data" / "state_of_sparsity"


def _csv_rows(path: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO((_folder() / path).read_text())))[1:]


# --- published_readme -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", [T, R])
def test_readme_table_is_the_published_one(task):
    header, rows = _markdown(README_TABLES[task])
    methods = README_METHODS[task]
    assert header[1:] == [reference.README_HEADERS[task][m] for m in methods]
    long = published_readme(task).set_index(["method", "target_sparsity"])
    for label, *cells in rows:
        level = float(label.rstrip("%")) / 100
        for method, published in zip(methods, cells):
            row = long.loc[(method, level)]
            text = published.replace("**", "")
            assert row["text"] == text, (method, label)
            assert row["bold"] == published.startswith("**"), (method, label)
            number = text.split(" ")[0]
            if number in ("–", "failed"):
                assert math.isnan(row["value"]), (method, label)
            else:
                assert row["value"] == float(number), (method, label)
            note = text[len(number) :].strip()
            assert row["note"] == note, (method, label)
    assert len(long) == len(rows) * len(methods) + len(README_DENSE[task].split(" / "))


@pytest.mark.parametrize("task", [T, R])
def test_readme_wide_prints_the_published_table(task):
    header, rows = _markdown(README_TABLES[task])
    wide = published_readme_wide(task)
    labels = [reference.README_WIDE_LABELS[m] for m in (*README_METHODS[task], "dense")]
    assert list(wide.columns) == labels
    assert list(wide.index) == [row[0] for row in rows] + ["dense"]
    for label, *cells in rows:
        assert list(wide.loc[label]) == [c.replace("**", "") for c in cells] + [""]
    assert list(wide.loc["dense"]) == [""] * len(README_METHODS[task]) + [README_DENSE[task]]


def test_readme_failed_cells_notes_and_dense():
    rn50 = published_readme(R).set_index(["method", "target_sparsity"])
    l0 = rn50.loc["l0"]
    assert l0.loc[0.5, "text"] == "failed (≈0.1%)" and l0.loc[0.5, "note"] == "(≈0.1%)"
    assert (l0.loc[[0.7, 0.8, 0.9, 0.95, 0.98], "text"] == "failed").all()
    assert l0["value"].isna().all()
    extended = rn50.loc["magnitude_extended"]
    assert list(extended["note"].dropna()) == ["", "", "", "(target 0.91)", "(target 0.96)", "(target 0.98)", ""]
    assert extended.loc[0.965, "value"] == 69.26 and extended.loc[0.965, "text"] == "69.26 (target 0.98)"
    assert rn50.loc[("variational_dropout", 0.98), "text"] == "67.36 (achieved 97.9%)"
    assert rn50.loc[("dense", 0.0), "value"] == 76.69  # top-1 percent
    dense = published_readme(T).query("method == 'dense'")
    assert list(zip(dense["value"], dense["note"])) == [(27.29, "mean"), (27.52, "max")]
    assert published_readme(R)["value"].max() == 76.69  # percent, not a fraction


def test_readme_agrees_with_the_transcription_in_test_reference():
    import test_reference  # tests/ is on sys.path (pytest's prepend import mode; no tests/__init__.py)

    for (task, method), cells in test_reference.PUBLISHED.items():
        long = published_readme(task).query("method == @method").drop_duplicates("target_sparsity")
        got = dict(zip(long["target_sparsity"], long["value"]))
        for level, value in cells.items():
            if value is None or value == "failed":
                assert math.isnan(got[level]), (task, method, level)
            else:
                assert got[level] == value, (task, method, level)


# --- load_gale2019_lottery ------------------------------------------------------------------------------------


def test_lottery_row_counts_per_file():
    runs = load_gale2019_lottery()
    counts = runs["file"].value_counts().to_dict()
    assert counts == {path.rsplit("/", 1)[1]: n for path, (_, n) in LOTTO_FILES.items()}
    assert len(load_gale2019_lottery(T)) == 5 * 175 and len(load_gale2019_lottery(R)) == 48 + 180 + 90 + 12 + 12
    for path, (_, n) in LOTTO_FILES.items():  # rows x non-empty run columns, counted from the CSV itself
        rows = _csv_rows(path)
        header = next(csv.reader(io.StringIO((_folder() / path).read_text())))
        runs_at = [i for i, h in enumerate(header) if h.startswith("Run ")] or [len(header) - 1]
        if path.startswith("sparse_transformer"):
            runs_at = [header.index("MOSES BLEU")]
        assert sum(1 for row in rows for i in runs_at if row[i].strip()) == n, path


def test_lottery_variants_per_file():
    runs = load_gale2019_lottery()
    variants = runs.groupby("file")["variant"].agg(lambda v: sorted(set(v))).to_dict()
    assert variants == {
        "transformer_lottery_ticket.csv": ["lottery"],
        "transformer_scratche.csv": ["scratch_e"],
        "transformer_scratchb.csv": ["scratch_b"],
        "transformer_scratche_augmented_init.csv": ["sparsity_aware_init"],
        "transformer_scratchb_augmented_init.csv": ["scratch_b_sparsity_aware_init"],
        "rn50_lottery_ticket.csv": ["lottery"],
        "rn50_scratch_lr_scaled.csv": [
            "scratch_b",
            "scratch_b_sparsity_aware_init",
            "scratch_e",
            "sparsity_aware_init",
        ],
        **{
            f"rn50_scratch_{s}.csv": [f"scratch_b ({s})", f"scratch_b_sparsity_aware_init ({s})"]
            for s in ("lr_constant_final", "lr_constant_decay", "lr_continual_decay")
        },
    }
    scaled = runs[runs["file"] == "rn50_scratch_lr_scaled.csv"]
    pairs = scaled.groupby("variant")[["time_multiplier", "init_method"]].agg(lambda c: sorted(set(c)))
    assert pairs.to_dict("index") == {
        "scratch_e": {"time_multiplier": [1], "init_method": ["baseline"]},
        "sparsity_aware_init": {"time_multiplier": [1], "init_method": ["sparse"]},
        "scratch_b": {"time_multiplier": [2], "init_method": ["baseline"]},
        "scratch_b_sparsity_aware_init": {"time_multiplier": [2], "init_method": ["sparse"]},
    }
    other = runs[runs["file"].str.startswith("rn50_scratch_lr_c")]
    assert set(other["time_multiplier"]) == {2}


def test_lottery_variant_names_follow_lth_order():
    order = [v for v in lth.ORDER if v in reference.LOTTERY_VARIANTS]
    assert order == list(reference.LOTTERY_VARIANTS) and "pruned" in lth.ORDER
    assert set(load_gale2019_lottery()["variant"]) == {*reference.LOTTERY_VARIANTS, *reference.LOTTERY_EXTRA_VARIANTS}


def test_lottery_blank_header_is_the_init_method():
    header = next(
        csv.reader(
            io.StringIO((_folder() / "sparse_rn50/scratch_lotto/rn50_scratch_lr_constant_decay.csv").read_text())
        )
    )
    assert header[2] == ""  # as released
    runs = load_gale2019_lottery(R).query("file == 'rn50_scratch_lr_constant_decay.csv'")
    assert not any(str(c).startswith("Unnamed") for c in runs.columns)
    assert list(runs["init_method"]) == [
        row[2] for row in _csv_rows("sparse_rn50/scratch_lotto/rn50_scratch_lr_constant_decay.csv")
    ]
    assert set(runs["init_method"]) == {"baseline", "sparse"}
    first = runs.iloc[0]
    assert (first["variant"], first["target_sparsity"], first["value"]) == (
        "scratch_b_sparsity_aware_init (lr_constant_decay)",
        0.5,
        pytest.approx(0.7250199914),
    )
    assert (first["begin_step"], first["end_step"], first["frequency"], first["label_smoothing"]) == (
        20000,
        40000,
        4000,
        0.1,
    )


def test_lottery_units_and_sparsities():
    tr, rn50 = load_gale2019_lottery(T), load_gale2019_lottery(R)
    assert tr["value"].between(0, 100).all() and tr["value"].max() == 26.24  # BLEU points
    assert rn50["value"].between(0, 1).all() and rn50["value"].max() == pytest.approx(0.758580029011)  # fraction
    assert set(tr["metric"]) == {"bleu_tokenized"} and set(rn50["metric"]) == {"top1"}
    assert set(tr["target_sparsity"]) == set(reference.LEVELS[T])
    assert (tr["sparsity"] - tr["target_sparsity"]).abs().max() < 2e-6  # achieved, e.g. 0.980001270771
    assert set(rn50["target_sparsity"]) == set(reference.LEVELS[R])
    assert (rn50["sparsity"] == rn50["target_sparsity"]).all()  # target only ('.95' in lr_constant_final)
    assert tr["value"].notna().all() and rn50["value"].notna().all()


def test_lottery_diverged_runs_are_kept():
    zeros = load_gale2019_lottery(T).query("value == 0")
    assert zeros.groupby("file").size().to_dict() == {
        "transformer_scratche.csv": 1,
        "transformer_scratche_augmented_init.csv": 2,
    }


def test_lottery_run_index():
    runs = load_gale2019_lottery()
    wide = runs[runs["file"].isin(["rn50_scratch_lr_scaled.csv", "rn50_scratch_lr_constant_final.csv"])]
    assert set(wide["run"]) == set(range(1, 10))
    assert all(r == list(range(1, 10)) for r in wide.groupby(["file", "row"])["run"].agg(list))
    one = wide.query("file == 'rn50_scratch_lr_scaled.csv' and row == 0 and run == 2").iloc[0]
    assert one["value"] == pytest.approx(0.748440027237) and one["variant"] == "scratch_e"
    tr = runs[runs["task"] == T]
    assert all(r == list(range(1, 26)) for r in tr.groupby(["variant", "target_sparsity"])["run"].agg(list))
    lt = runs.query("file == 'rn50_lottery_ticket.csv'")
    assert lt.groupby("target_sparsity")["run"].max().to_dict() == {0.5: 9, 0.7: 9, 0.8: 9, 0.9: 9, 0.95: 9, 0.98: 3}
    decay = runs[runs["file"].str.contains("decay")]
    assert set(decay["run"]) == {1}
    assert list(runs.columns) == list(reference.LOTTERY_COLUMNS)


def test_lottery_schedule_columns():
    runs = load_gale2019_lottery()
    tr = runs[runs["task"] == T]
    assert set(tr["hparams_set"]) == {"sparse_transformer_magnitude_pruning"}  # 'HParams' header in lottery_ticket
    assert tr["begin_step"].notna().all() and tr["regularization"].notna().all()
    assert tr["label_smoothing"].isna().all() and tr["time_multiplier"].isna().all()
    at98 = tr[tr["target_sparsity"] == 0.98]
    assert set(zip(at98["begin_step"], at98["end_step"], at98["frequency"], at98["regularization"])) == {
        (0, 300000, 1000, "none")
    }
    rn50 = runs[runs["task"] == R]
    assert rn50[["begin_step", "end_step", "frequency", "label_smoothing"]].notna().all().all()
    assert rn50.loc[rn50["variant"] == "lottery", ["time_multiplier", "init_method"]].isna().all().all()


# --- published_lottery ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", [T, R])
def test_published_lottery_reproduces_the_paper_tables(task):
    """Every cell of §4.2 / §4.3, as the wide table prints it (the 98 % lower bounds: see CSV_98)."""
    _, rows = _markdown(LOTTERY_TABLES[task])
    wide = published_lottery_wide(task)
    checked = 0
    for label, *cells in rows:
        level = label if label.endswith("%") else f"{round(100 * float(label), 6):g}%"  # §4.3: ".5" -> "50%"
        for columns, published in zip(LOTTERY_COLUMNS[task], cells):
            columns = columns if isinstance(columns, tuple) else (columns,)
            got = [wide.loc[level, c] for c in columns]
            if published == "–":
                assert got == [""] * len(columns), (level, columns)
            elif published.startswith("≥"):
                (column,) = columns
                assert float(got[0]) >= float(published[1:]), (level, column)
                assert float(got[0]) == CSV_98[column], (level, column)
            else:
                assert " / ".join(got) == published, (level, columns)
            checked += 1
    assert checked == len(rows) * len(LOTTERY_COLUMNS[task])
    assert list(wide.columns)[0] == PUBLISHED_MP


def test_scratch_e_98_lower_bound_is_the_truncated_file():
    """§4.2's "≥13.80" is the max of the 98 % runs within the file's first 16,000 characters."""
    text = (_folder() / "sparse_transformer/scratch_lotto/transformer_scratche.csv").read_text()
    truncated = pd.read_csv(io.StringIO(text[:16000]))
    at98 = truncated.loc[truncated["Sparsity"] > 0.97, "MOSES BLEU"]
    assert (len(at98), at98.max()) == (18, 13.80)
    full = load_gale2019_lottery(T).query("variant == 'scratch_e' and target_sparsity == 0.98")
    assert full.nlargest(2, "value")[["run", "value"]].values.tolist() == [[25, 13.93], [19, 13.89]]
    for variant, value in CSV_98.items():
        bound = float(_markdown(LOTTERY_TABLES[T])[1][-1][1 + LOTTERY_COLUMNS[T].index(variant)][1:])
        assert (value == bound) == (variant != "scratch_e"), variant


def test_published_lottery_run_counts_and_files():
    tr = published_lottery(T)
    assert list(tr.columns) == ["task", "variant", "target_sparsity", "value", "runs", "file", "metric"]
    assert (tr["runs"] == 25).all() and len(tr) == 5 * 7  # "max over 25 runs per level"
    assert list(dict.fromkeys(tr["variant"])) == [
        "scratch_e",
        "scratch_b",
        "sparsity_aware_init",
        "scratch_b_sparsity_aware_init",
        "lottery",
    ]
    rn50 = published_lottery(R).set_index(["variant", "target_sparsity"])
    nine = rn50.drop(index=("lottery", 0.98))
    nine = nine[~nine["file"].str.contains("decay")]
    assert (nine["runs"] == 9).all()  # "max over 9 runs"
    assert rn50.loc[("lottery", 0.98), "runs"] == 3  # the 98 % lottery ticket has only 3 runs
    assert (rn50.loc[rn50["file"].str.contains("decay"), "runs"] == 1).all()  # single runs
    assert rn50.loc[("scratch_b", 0.9), "value"] == pytest.approx(0.691799998283)  # a fraction
    counts = published_lottery_wide(R, runs=True)
    assert counts.shape == published_lottery_wide(R).shape
    assert counts.loc["90%", "scratch_b"] == 9 and counts.loc["98%", "lottery"] == 3
    assert counts[PUBLISHED_MP].isna().all() and pd.isna(counts.loc["98%", "scratch_e"])


def test_published_lottery_rn50_decay_files_as_section_4_3_says():
    """§4.3 prose: constant_decay 72.50 (sparse init) / 70.94 (base) at 50 %, 47.15 / 48.15 at 98 %; continual_decay
    71.45 / 69.19 and 44.88 / 46.00."""
    wide = published_lottery_wide(R)
    for schedule, (at50, at98) in {
        "lr_constant_decay": ("72.50 / 70.94", "47.15 / 48.15"),
        "lr_continual_decay": ("71.45 / 69.19", "44.88 / 46.00"),
    }.items():
        columns = [f"scratch_b_sparsity_aware_init ({schedule})", f"scratch_b ({schedule})"]
        assert " / ".join(wide.loc["50%", columns]) == at50
        assert " / ".join(wide.loc["98%", columns]) == at98


def test_published_lottery_wide_layout():
    wide = published_lottery_wide(R)
    assert list(wide.index) == ["50%", "70%", "80%", "90%", "95%", "98%"]
    assert list(wide.columns) == [PUBLISHED_MP, *reference.LOTTERY_VARIANTS, *reference.LOTTERY_EXTRA_VARIANTS]
    assert list(published_lottery_wide(T).columns) == [PUBLISHED_MP, *reference.LOTTERY_VARIANTS]
    assert list(published_lottery_wide(T).index) == ["50%", "60%", "70%", "80%", "90%", "95%", "98%"]


def test_unknown_task_is_refused():
    for function in (published_readme, published_readme_wide, published_lottery, published_lottery_wide):
        with pytest.raises(ValueError, match="unknown task"):
            function("mnist")
    with pytest.raises(ValueError, match="unknown task"):
        load_gale2019_lottery("mnist")


# --- packaging ------------------------------------------------------------------------------------------------


def test_data_found_through_the_installed_package():
    folder = _folder()
    assert str(reference.data_dir()) == str(folder)
    for path, (digest, _) in LOTTO_FILES.items():
        assert hashlib.sha256((folder / path).read_bytes()).hexdigest() == digest, path  # verbatim copies
    assert (folder / reference.README_BEST).is_file()
    readme = (folder / "README.md").read_text()
    assert "scratch_lotto" in readme and "Apache License 2.0" in readme and "readme_best.csv" in readme
    assert "papers/state-of-sparsity.md" in readme


def test_package_data_glob_covers_the_new_files():
    # setuptools expands `analysis = ["reference_data/**/*", ...]` with glob(recursive=True) in the package dir
    package = os.path.dirname(resources.files("analysis") / "__init__.py")
    found = {
        os.path.relpath(p, os.path.join(package, "reference_data", "state_of_sparsity"))
        for p in glob.glob(os.path.join(package, "reference_data/**/*"), recursive=True)
    }
    assert set(LOTTO_FILES) | {reference.README_BEST, "README.md"} <= found


def test_reference_imports_no_heavy_modules():
    code = (
        "import sys, analysis.reference; print(sorted(m for m in ('torch', 'ray', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
