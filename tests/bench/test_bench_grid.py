"""The grid config: expansion, validation (one-line errors), the settings hash, the shipped configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mixtune.bench.grid import Protocol, load_grid, load_protocol
from mixtune.errors import MixtuneError
from mixtune.methods import METHODS, Method

REPO = Path(__file__).resolve().parents[2]
# The first pipeline's tuning grid was built on the default rates of its time (mixup-blo's was 2e-5 until issue 32).
FIRST_PIPELINE_LRS = {"mixup-blo": 2e-5}
TABLE_METHODS = ("vanilla", "mixup-blo", "child-tuning-d", "child-tuning-f", "dps", "mixout", "lora", "joint", "random-alpha")


def write(tmp_path: Path, values: dict) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def test_expands_every_axis_in_table_order(make_grid):
    cells = make_grid(methods=["vanilla", "mixup-blo"], seeds=[1, 2])
    assert [c.describe() for c in cells] == [
        "rte vanilla n24 s1", "rte vanilla n24 s2", "rte mixup-blo n24 s1", "rte mixup-blo n24 s2",
    ]
    assert cells[0].values["data"] == {"task": "rte", "train_size": 24}
    assert cells[0].values["method"] == "vanilla" and cells[0].values["model"] is None
    assert len({c.id for c in cells}) == 4


def test_blocks_share_base_and_overrides_and_inherit_axes(tmp_path):
    path = write(tmp_path, {
        "base": {"train": {"max_length": 64}},
        "overrides": {"joint": {"train": {"lr": 1e-4}}},
        "sizes": [24], "seeds": [1],
        "grids": [{"tasks": ["rte", "mrpc"], "methods": ["vanilla"]}, {"tasks": ["RTE"], "methods": ["joint"], "seeds": [7]}],
    })
    cells = load_grid(path).cells
    assert [c.describe() for c in cells] == ["rte vanilla n24 s1", "mrpc vanilla n24 s1", "rte joint n24 s7"]
    assert cells[2].values["train"] == {"max_length": 64, "lr": 1e-4}
    assert load_grid(path).results == Path("results/grid.jsonl")
    assert load_grid(path, tmp_path / "other.jsonl").results == tmp_path / "other.jsonl"


def test_a_changed_override_is_a_different_cell_and_defaults_do_not_count(tmp_path):
    def hash_of(**values) -> str:
        grid = {"tasks": ["rte"], "sizes": [24], "methods": ["vanilla"], "seeds": [1], **values}
        return load_grid(write(tmp_path, grid)).cells[0].config_hash

    plain = hash_of()
    assert hash_of(overrides={"vanilla": {"train": {"lr": 5e-4}}}) != plain
    assert hash_of(overrides={"vanilla": {"train": {"lr": 5e-4}}}) == hash_of(base={"train": {"lr": 0.0005}})
    assert hash_of(base={"train": {"batch_size": 16}}) == plain  # the default, written out
    assert hash_of(base={"data": {"data_dir": str(tmp_path)}}) == plain  # where the data lives
    assert hash_of(overrides={"mixup-blo": {"train": {"lr": 1.0}}}) == plain  # another method's override


def test_a_changed_method_default_or_record_version_makes_the_cell_missing(tmp_path, monkeypatch):
    """The hash covers what the method resolves itself (its default lr) and the record format: a finished cell
    whose run used another default, or wrote an older record, is run again."""
    from mixtune.bench import grid as grid_module
    from mixtune.bench.results import ResultsWriter, result_line
    from mixtune.bench.runner import plan

    path = write(tmp_path, {"tasks": ["rte"], "sizes": [24], "methods": ["vanilla", "lora"], "seeds": [1]})
    results = tmp_path / "results.jsonl"
    with ResultsWriter(results) as writer:
        for cell in load_grid(path).cells:
            writer.append(result_line(cell, {"status": "ok"}))
    assert [action for _, action in plan(load_grid(path).cells, results, False)] == ["done", "done"]
    monkeypatch.setattr(METHODS["vanilla"], "default_lr", 1e-3)
    assert [(c.method, action) for c, action in plan(load_grid(path).cells, results, False)] == [("vanilla", "run"), ("lora", "done")]
    monkeypatch.setattr(grid_module, "RECORD_VERSION", grid_module.RECORD_VERSION + 1)
    assert [action for _, action in plan(load_grid(path).cells, results, False)] == ["run", "run"]


def test_headline_tasks_and_rivals_are_read_from_the_config(tmp_path):
    path = write(tmp_path, {
        "tasks": ["rte", "sst2"], "sizes": [24], "methods": ["vanilla", "lora"], "seeds": [1],
        "headline_tasks": ["SST-2"], "rivals": ["lora"],
    })
    assert load_grid(path).protocol == Protocol(headline_tasks=("sst2",), rivals=("lora",))
    assert load_protocol(path) == load_grid(path).protocol
    assert load_protocol(REPO / "benchmarks" / "table2_n300.yaml").headline_tasks == ("sst2", "stsb", "qnli")
    assert load_protocol(REPO / "benchmarks" / "table2_n1000.yaml").headline_tasks == ("stsb",)


def test_a_labelled_variant_is_its_own_row(tmp_path):
    path = write(tmp_path, {
        "overrides": {"vanilla-released": {"method": "vanilla", "train": {"lr": 2e-5, "epochs": 3}}},
        "tasks": ["rte"], "sizes": [24], "methods": ["vanilla", "vanilla-released"], "seeds": [1],
    })
    plain, released = load_grid(path).cells
    assert released.method == "vanilla-released" and released.values["method"] == "vanilla"
    assert released.config_hash != plain.config_hash


def test_methods_without_regression_skip_regression_tasks(tmp_path, monkeypatch):
    class NoRegression(Method):
        name = "no-regression"
        supports_regression = False

    monkeypatch.setitem(METHODS, "no-regression", NoRegression)
    grid = load_grid(write(tmp_path, {"tasks": ["stsb", "rte"], "sizes": [24], "methods": ["no-regression"], "seeds": [1]}))
    assert [c.describe() for c in grid.cells] == ["rte no-regression n24 s1"]
    assert grid.skipped == ["stsb x no-regression: no-regression does not support regression"]


@pytest.mark.parametrize(
    "values, message",
    [
        ({"task": ["rte"]}, "unknown key 'task' in bench config: valid keys are results, base"),
        ({"grids": [{"tasks": ["rte"], "method": ["vanilla"]}]}, "unknown key 'method' in grids[0]"),
        ({"methods": ["vanila"]}, "unknown method 'vanila': choose one of"),
        ({"tasks": ["rtee"]}, "unknown task 'rtee'"),
        ({"seeds": ["one"]}, "seed 'one' must be a whole number"),
        ({"sizes": [0]}, "size 0 must be a whole number >= 1"),
        ({"methods": []}, "methods is empty"),
        ({"base": {"seed": 3}}, "bench config base sets 'seed': the grid sets it"),
        ({"base": {"data": {"task": "rte"}}}, "base sets 'data.task'"),
        ({"base": {"train": {"lrr": 1}}}, "unknown config key 'train.lrr'"),
        ({"overrides": {"vanilla": {"train": {"lr": "fast"}}}}, "overrides of vanilla): config key 'train.lr' must be a number"),
        ({"overrides": {"fancy": {"train": {"lr": 1e-4}}}}, "overrides.fancy: unknown method 'fancy'"),
        ({"overrides": {"vanilla": {"method": "joint"}}}, "give this variant a name that is not a method"),
        ({"overrides": {"vanilla": {"method_args": {"sigma": 1}}}}, "method 'vanilla' has no hyperparameter 'sigma'"),
        ({"base": {"data": {"data_dir": "/no/such/glue"}}}, "data_dir /no/such/glue does not exist"),
        ({"models": ["./no/such/model"]}, "model path ./no/such/model does not exist"),
        ({"results": 3}, "'results' must be a file path"),
        ({"search_cache": 3}, "'search_cache' must be a folder path"),
        ({"sweep": [1, 2]}, "bench config key 'sweep' must be a mapping"),
        ({"sweep": {"train.lr": [1e-4, 1e-4]}}, "bench config sweep: 'train.lr' lists a value twice (1e-04, 1e-04)"),
        ({"overrides": {"vanilla": {"sweep": {"train.lr": []}}}}, "overrides.vanilla.sweep: 'train.lr' must be a non-empty list"),
        ({"overrides": {"vanilla": {"sweep": {"train.lr": 1e-4}}}}, "'train.lr' must be a non-empty list"),
        ({"overrides": {"vanilla": {"sweep": {"train.lr": ["fast"]}}}}, "vanilla.sweep: config key 'train.lr' must be a number"),
        ({"overrides": {"vanilla": {"sweep": {"train.lrr": [1]}}}}, "overrides.vanilla.sweep: unknown config key 'train.lrr'"),
        ({"overrides": {"vanilla": {"sweep": {"data.task": ["rte"]}}}}, "sweeps 'data.task': the grid sets it"),
        ({"overrides": {"vanilla": {"sweep": {"train.lr": [1e-4, 0.0001]}}}}, "'train.lr' lists a value twice"),
        ({"overrides": {"vanilla": {"sweep": {"method_args.p": [0.1]}}}}, "method 'vanilla' has no hyperparameter 'p'"),
        ({"overrides": {"vanilla": {"train": {"lr": 1e-4}, "sweep": {"train.lr": [2e-4]}}}}, "sets 'train.lr' and also sweeps"),
        ({"sweep": {"train.lr": [2e-4]}, "overrides": {"vanilla": {"train": {"lr": 1e-4}}}}, "which overrides.vanilla sets"),
        ({"grids": [{"sweep": {"train.epochs": [0]}}]}, "grids[0].sweep: config key 'train.epochs' must be positive"),
        ({"overrides_file": "no/such/tuned.yaml"}, "overrides_file no/such/tuned.yaml does not exist (relative to"),
        ({"headline_tasks": "rte"}, "headline_tasks must be a list of names, e.g. headline_tasks: [sst2, stsb]"),
        ({"headline_tasks": ["rtee"]}, "unknown task 'rtee'"),
        ({"rivals": ["lora"]}, "rivals lora are not rows of the grid: list them under methods"),
    ],
)
def test_config_errors_are_one_line_and_name_the_problem(tmp_path, values, message):
    grid = {"tasks": ["rte"], "sizes": [24], "methods": ["vanilla"], "seeds": [1], **values}
    with pytest.raises(MixtuneError) as error:
        load_grid(write(tmp_path, grid))
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_a_sweep_makes_one_labelled_row_per_combination(tmp_path):
    path = write(tmp_path, {
        "overrides": {
            "vanilla": {"sweep": {"train.lr": [2.0e-5, 1.0e-4], "train.epochs": [3, 10]}},
            "lora": {"train": {}, "sweep": {"train.lr": [1.25e-3]}},
        },
        "tasks": ["rte"], "sizes": [24], "methods": ["vanilla", "lora"], "seeds": [1, 2],
    })
    cells = load_grid(path).cells
    assert [c.method for c in cells[::2]] == [
        "vanilla[lr=2e-05,epochs=3]", "vanilla[lr=2e-05,epochs=10]", "vanilla[lr=1e-04,epochs=3]",
        "vanilla[lr=1e-04,epochs=10]", "lora[lr=1.25e-03]",
    ]
    assert [c.seed for c in cells[:2]] == [1, 2]
    assert cells[2].values["train"] == {"lr": 2e-5, "epochs": 10} and cells[2].values["method"] == "vanilla"
    assert cells[-1].values["train"] == {"lr": 1.25e-3} and cells[-1].values["method"] == "lora"
    assert len({c.config_hash for c in cells}) == 5


def test_a_block_sweep_applies_to_every_method_after_its_own(tmp_path):
    path = write(tmp_path, {
        "sweep": {"train.epochs": [3, 10]},
        "overrides": {"vanilla": {"sweep": {"train.lr": [2e-5]}}, "mixup-blo": {"sweep": {"search.epochs": [1]}}},
        "sizes": [24], "seeds": [1],
        "grids": [
            {"tasks": ["rte"], "methods": ["vanilla", "mixup-blo"]},
            {"tasks": ["rte"], "methods": ["joint"], "sweep": {"train.lr": [1e-4], "train.epochs": [2]}},
        ],
    })
    assert [c.method for c in load_grid(path).cells] == [
        "vanilla[lr=2e-05,epochs=3]", "vanilla[lr=2e-05,epochs=10]",
        "mixup-blo[search.epochs=1,train.epochs=3]", "mixup-blo[search.epochs=1,train.epochs=10]",  # two *.epochs
        "joint[lr=1e-04,epochs=2]",
    ]


def test_an_overrides_file_sits_under_the_configs_own_overrides(tmp_path):
    tuned = tmp_path / "tuned.yaml"
    tuned.write_text(
        "# Tuned settings chosen by `mixtune select` from results/tune.jsonl (dev split) on 2025-01-02.\n"
        "# Rule: ...\n"
        "vanilla: {train: {lr: 1.0e-4, epochs: 10}}\n"
        "mixup-blo: {train: {lr: 5.0e-5, epochs: 10}}\n"
    )
    path = write(tmp_path, {
        "overrides_file": str(tuned),
        "overrides": {"mixup-blo": {"train": {"epochs": 3}, "search": {"splits": 2}}, "vanilla-released": {"method": "vanilla"}},
        "tasks": ["rte"], "sizes": [24], "methods": ["vanilla", "mixup-blo", "vanilla-released"], "seeds": [1],
    })
    vanilla, mixup, released = load_grid(path).cells
    assert vanilla.values["train"] == {"lr": 1e-4, "epochs": 10}
    assert mixup.values["train"] == {"lr": 5e-5, "epochs": 3} and mixup.values["search"] == {"splits": 2}  # own wins
    assert released.values.get("train") is None and released.settings_from is None
    assert vanilla.settings_from == (
        f"{tuned}: Tuned settings chosen by `mixtune select` from results/tune.jsonl (dev split) on 2025-01-02."
    )


def test_tuned_as_takes_another_methods_entry_from_the_overrides_file(tmp_path):
    tuned = tmp_path / "tuned.yaml"
    tuned.write_text("mixup-blo: {train: {lr: 5.0e-5, epochs: 10}}\njoint: {train: {lr: 1.0e-3}}\n")
    path = write(tmp_path, {
        "overrides_file": str(tuned),
        "overrides": {"joint": {"tuned_as": "mixup-blo", "train": {"epochs": 3}}, "random-alpha": {"tuned_as": "mixup-blo"}},
        "tasks": ["rte"], "sizes": [24], "methods": ["joint", "random-alpha"], "seeds": [1],
    })
    joint, random_alpha = load_grid(path).cells
    assert joint.values["train"] == {"lr": 5e-5, "epochs": 3}  # mixup-blo's entry, not joint's; own keys win
    assert random_alpha.values["train"] == {"lr": 5e-5, "epochs": 10}
    assert random_alpha.settings_from == f"{tuned} (the mixup-blo entry)"


def test_tuned_as_an_entry_the_file_lacks_is_an_error(tmp_path):
    tuned = tmp_path / "tuned.yaml"
    tuned.write_text("vanilla: {train: {lr: 1.0e-4}}\n")
    path = write(tmp_path, {
        "overrides_file": str(tuned), "overrides": {"joint": {"tuned_as": "mixup-blo"}},
        "tasks": ["rte"], "sizes": [24], "methods": ["joint"], "seeds": [1],
    })
    with pytest.raises(MixtuneError, match="tuned_as: mixup-blo, but .* has no entry 'mixup-blo': use one of vanilla"):
        load_grid(path)
    path = write(tmp_path, {"overrides": {"joint": {"tuned_as": "mixup-blo"}}, "tasks": ["rte"], "sizes": [24], "methods": ["joint"], "seeds": [1]})
    with pytest.raises(MixtuneError, match="has tuned_as but the config has no overrides_file"):
        load_grid(path)


def test_seeds_first_order_runs_every_cell_of_a_seed_before_the_next(tmp_path):
    values = {"tasks": ["rte", "mrpc"], "sizes": [24], "methods": ["vanilla", "lora"], "seeds": [2, 1]}
    table = [(c.task, c.method, c.seed) for c in load_grid(write(tmp_path, values)).cells]
    assert table[:2] == [("rte", "vanilla", 2), ("rte", "vanilla", 1)]
    seeds_first = [(c.task, c.method, c.seed) for c in load_grid(write(tmp_path, {**values, "order": "seeds-first"})).cells]
    assert seeds_first == [cell for cell in table if cell[2] == 2] + [cell for cell in table if cell[2] == 1]
    with pytest.raises(MixtuneError, match="order: 'random' is not known: use one of table, seeds-first"):
        load_grid(write(tmp_path, {**values, "order": "random"}))


def test_missing_axis_is_an_error(tmp_path):
    with pytest.raises(MixtuneError, match="gives no seeds"):
        load_grid(write(tmp_path, {"tasks": ["rte"], "sizes": [24], "methods": ["vanilla"]}))


def test_shipped_smoke_config(monkeypatch):
    monkeypatch.chdir(REPO)
    if not Path("../shared/data/glue").is_dir():
        pytest.skip("GLUE data not found beside the repository")
    grid = load_grid(REPO / "benchmarks" / "smoke.yaml")
    assert len(grid.cells) == 4 and grid.results == Path("results/smoke.jsonl")


@pytest.fixture
def checkout(tmp_path, monkeypatch) -> Path:
    """A working directory laid out as the repository's: benchmarks/ beside, the GLUE data at ../shared."""
    glue = REPO.parent / "shared" / "data" / "glue"
    if not glue.is_dir():
        pytest.skip("GLUE data not found beside the repository")
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "shared" / "data" / "glue").symlink_to(glue)
    (tmp_path / "main" / "benchmarks" / "archive").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "main")
    return tmp_path / "main"


def test_shipped_table_config(checkout, monkeypatch):
    """290 cells: 6 tasks x (7 methods + 2 released rows) x 5 seeds, and joint/random-alpha on rte and mrpc."""
    for name in TABLE_METHODS:
        if name != "mixout":  # the table pins mixout's mask, a hyperparameter of the real class
            monkeypatch.setitem(METHODS, name, type(name, (Method,), {"name": name}))
    (checkout / "benchmarks" / "archive" / "tuned_n300.yaml").write_text(
        "# Tuned settings chosen by `mixtune select` from results/tune_n300.jsonl (dev split) on 2025-01-02.\n"
        "vanilla: {train: {lr: 1.0e-4, epochs: 10}}\nmixup-blo: {train: {lr: 5.0e-5, epochs: 10}}\n"
    )
    grid = load_grid(REPO / "benchmarks" / "archive" / "table_n300.yaml")
    assert len(grid.cells) == 6 * 9 * 5 + 2 * 2 * 5 and not grid.skipped
    assert {c.size for c in grid.cells} == {300} and {c.seed for c in grid.cells} == {1, 2, 3, 4, 5}
    assert {c.task for c in grid.cells if c.method == "joint"} == {"rte", "mrpc"}
    assert all(c.model is None for c in grid.cells)
    assert grid.search_cache == Path("runs/search-cache")
    settings = {c.method: (c.values["method"], c.values.get("train"), c.settings_from is not None) for c in grid.cells}
    assert settings["vanilla"] == ("vanilla", {"select": "last", "lr": 1e-4, "epochs": 10}, True)
    assert settings["mixup-blo"] == ("mixup-blo", {"select": "last", "lr": 5e-5, "epochs": 10}, True)
    assert settings["vanilla-released"] == ("vanilla", {"select": "last", "lr": 2e-5, "epochs": 3}, False)
    assert settings["mixup-blo-released"] == ("mixup-blo", {"select": "last", "lr": 2e-5, "epochs": 3}, False)
    assert settings["joint"] == ("joint", {"select": "last", "lr": 5e-5, "epochs": 10}, True)  # the ablations finetune as mixup-blo
    assert settings["random-alpha"] == ("random-alpha", {"select": "last", "lr": 5e-5, "epochs": 10}, True)
    assert all(c.values["pooling"] == "cls" for c in grid.cells)  # the first pipeline, pinned
    seeds = [c.seed for c in grid.cells]
    assert seeds == sorted(seeds)  # order: seeds-first
    order = [c.method for c in grid.cells if c.seed == 1 and c.task == "rte"]
    assert order.index("mixup-blo-released") > order.index("mixup-blo")  # its search is made by then


def test_shipped_table_config_says_to_run_the_tuning_first(checkout):
    with pytest.raises(MixtuneError) as error:
        load_grid(REPO / "benchmarks" / "archive" / "table_n300.yaml")
    assert "overrides_file benchmarks/archive/tuned_n300.yaml does not exist" in str(error.value)
    assert "run the tuning first" in str(error.value) and "\n" not in str(error.value)


def test_shipped_tune_config(checkout):
    """84 cells: 7 methods x (lr in d, 2.5d, 5d with d the method's default_lr) x (3, 10 epochs) x 2 tasks x 1 seed."""
    grid = load_grid(REPO / "benchmarks" / "archive" / "tune_n300.yaml")
    assert len(grid.cells) == 7 * 3 * 2 * 2 and not grid.skipped
    assert grid.results == Path("results/tune_n300.jsonl") and grid.search_cache == Path("runs/search-cache")
    assert {c.task for c in grid.cells} == {"rte", "mrpc"} and {c.seed for c in grid.cells} == {1}
    for name in TABLE_METHODS[:7]:
        own = [c.values for c in grid.cells if c.values["method"] == name]
        default = FIRST_PIPELINE_LRS.get(name, METHODS[name].default_lr)
        assert sorted({v["train"]["lr"] for v in own}) == pytest.approx([default, 2.5 * default, 5 * default]), name
        assert {v["train"]["epochs"] for v in own} == {3, 10}
        assert all(set(v) == {"data", "train", "method", "model", "pooling", "mixup", "seed"} for v in own)  # search unset
        assert all(v["pooling"] == "cls" and v["train"]["select"] == "last" for v in own)  # the first pipeline, pinned
        assert all(v["mixup"] == {"form": "released"} for v in own)  # and the released form, whatever the default
