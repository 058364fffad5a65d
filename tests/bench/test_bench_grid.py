"""The grid config: expansion, validation (one-line errors), the settings hash, the shipped configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mixtune.bench.grid import load_grid
from mixtune.errors import MixtuneError
from mixtune.methods import METHODS, Method

REPO = Path(__file__).resolve().parents[2]
TABLE_METHODS = ("vanilla", "mixup-blo", "child-tuning-d", "child-tuning-f", "dps", "mixout", "lora", "joint", "random-alpha")


def write(tmp_path: Path, values: dict) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(values))
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
    ],
)
def test_config_errors_are_one_line_and_name_the_problem(tmp_path, values, message):
    grid = {"tasks": ["rte"], "sizes": [24], "methods": ["vanilla"], "seeds": [1], **values}
    with pytest.raises(MixtuneError) as error:
        load_grid(write(tmp_path, grid))
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_axis_is_an_error(tmp_path):
    with pytest.raises(MixtuneError, match="gives no seeds"):
        load_grid(write(tmp_path, {"tasks": ["rte"], "sizes": [24], "methods": ["vanilla"]}))


def test_shipped_smoke_config(monkeypatch):
    monkeypatch.chdir(REPO)
    if not Path("../shared/data/glue").is_dir():
        pytest.skip("GLUE data not found beside the repository")
    grid = load_grid(REPO / "benchmarks" / "smoke.yaml")
    assert len(grid.cells) == 4 and grid.results == Path("results/smoke.jsonl")


def test_shipped_table_config(monkeypatch):
    """230 cells: 6 tasks x 7 methods x 5 seeds, and joint/random-alpha on rte and mrpc (methods stubbed)."""
    monkeypatch.chdir(REPO)
    if not Path("../shared/data/glue").is_dir():
        pytest.skip("GLUE data not found beside the repository")
    for name in TABLE_METHODS:
        monkeypatch.setitem(METHODS, name, type(name, (Method,), {"name": name}))
    grid = load_grid(REPO / "benchmarks" / "table_n300.yaml")
    assert len(grid.cells) == 6 * 7 * 5 + 2 * 2 * 5 and not grid.skipped
    assert {c.size for c in grid.cells} == {300} and {c.seed for c in grid.cells} == {1, 2, 3, 4, 5}
    assert {c.task for c in grid.cells if c.method == "joint"} == {"rte", "mrpc"}
    assert all(c.model is None for c in grid.cells)
