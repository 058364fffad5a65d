"""The opt-in "pool_test" split: disjoint from each seed's train and dev, leaving those subsets as they were."""

import random

import pytest

from mixtune.bench.results import indices_sha256
from mixtune.cli import main, summary_line
from mixtune.config import build_config
from mixtune.data.examples import Examples, TaskData, TaskSpec
from mixtune.data.glue import load_glue
from mixtune.data.pool_test import POOL_TEST_SPLIT, pool_test_indices, with_pool_test
from mixtune.data.sampling import low_resource_indices
from mixtune.errors import MixtuneError
from mixtune.run import run
from tests.conftest import WORDS

# (pool size, n, seed) -> (train, dev) sha256 as stored by benchmark runs made before the pool_test existed
# (results/matched_n300.jsonl: SST-2; results/table_n1000.jsonl: RTE): the subsets must never move.
STORED_SUBSETS = {
    (67349, 300, 1): ("5e0971a8df7ef112f12d482c6d22f4614e487d7955b4300756079433e1975042",
                      "b40b8d2d9b4155e685ff47872fcb6c58694e50e6e929991721ec3ce0f8c449e7"),
    (67349, 300, 2): ("d28f51215aed7d3468d2f5701c2c43abf4beebc17a78b4bee368fa02207cd7ad",
                      "283d05a72de971baaed825ebc389f411fb49b4e27be492226626b830cc87af49"),
    (2490, 1000, 3): ("34d24a434353b22aefa5442d6a7d1c6932388123a7d156b1a714890e51a8642b",
                      "ffe7b83a8dfdfec16b447dc31a78b31a282d5073601a71cdbbbea60c0467ca38"),
}


@pytest.mark.parametrize("pool, size, seed", list(STORED_SUBSETS))
def test_train_and_dev_subsets_match_the_stored_benchmark_runs(pool, size, seed):
    train, dev = low_resource_indices(pool, size, seed)
    assert (indices_sha256(train), indices_sha256(dev)) == STORED_SUBSETS[(pool, size, seed)]


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_pool_test_is_disjoint_from_the_seeds_train_and_dev(seed):
    train, dev = low_resource_indices(67349, 1000, seed)
    held = pool_test_indices(67349, {*train, *dev}, 5000)
    assert len(held) == len(set(held)) == 5000 and held == sorted(held)
    assert not set(held) & (set(train) | set(dev))
    assert 0 <= held[0] and held[-1] < 67349


def test_pool_test_depends_on_the_seed_only_through_its_train_and_dev():
    """Two seeds' sets overlap in all but a few examples; each skips only its own train and dev."""
    used = {seed: set().union(*low_resource_indices(67349, 300, seed)) for seed in (1, 2)}
    sets = {seed: set(pool_test_indices(67349, used[seed], 5000)) for seed in (1, 2)}
    assert sets[1] != sets[2]
    assert len(sets[1] & sets[2]) >= 5000 - len(used[1]) - len(used[2])
    assert pool_test_indices(67349, used[1], 5000) == sorted(sets[1])  # repeatable


def test_pool_test_is_the_first_free_entries_of_one_fixed_order():
    """A smaller pool_test is a prefix of a larger one in the fixed order: growing K only adds examples."""
    train, dev = low_resource_indices(2490, 300, 1)
    small, large = set(pool_test_indices(2490, {*train, *dev}, 200)), set(pool_test_indices(2490, {*train, *dev}, 1000))
    assert small < large


def test_a_pool_too_small_for_train_dev_and_pool_test_is_refused():
    train, dev = low_resource_indices(2490, 2000, 1)  # 2000 + 333 leaves 157
    assert len(pool_test_indices(2490, {*train, *dev}, 157)) == 157
    with pytest.raises(MixtuneError, match="use --pool-test-size 157 or less"):
        pool_test_indices(2490, {*train, *dev}, 158)
    train, dev = low_resource_indices(700, None, 1)  # the whole pool: nothing left
    with pytest.raises(MixtuneError, match="use a smaller --train-size"):
        pool_test_indices(700, {*train, *dev}, 1)


def test_config_refuses_a_pool_test_size_below_one():
    from mixtune.config_checks import validate

    with pytest.raises(MixtuneError, match="'data.pool_test_size' must be at least 1"):
        validate(build_config({"data": {"pool_test_size": 0}}))


def test_pool_test_leaves_out_copies_of_the_train_and_dev_texts():
    """A pool that repeats texts: no pool_test example repeats a text the run trained or selected on."""
    texts = [(f"text {i % 30}",) for i in range(90)]  # each text three times
    spec = TaskSpec("t", "classification", ["text"], ["a", "b"], ["accuracy"])
    task = TaskData(spec, Examples(texts, [i % 2 for i in range(90)]), {})
    train, dev = low_resource_indices(90, 12, seed=1)
    with_test, held = with_pool_test(task, 30, train, dev)
    used_texts = {texts[i] for i in train + dev}
    assert len(held) == 30 and not {texts[i] for i in held} & used_texts
    assert with_test.tests[POOL_TEST_SPLIT].texts == [texts[i] for i in held] and task.tests == {}
    with pytest.raises(MixtuneError, match=f"use --pool-test-size {90 - 3 * len(used_texts)} or less"):
        with_pool_test(task, 90 - 3 * len(used_texts) + 1, train, dev)


def test_sst2_pool_test_repeats_no_train_or_dev_text(glue_dir):
    """SST-2's pool repeats 371 texts: without the text check, seed 1 at n=1000 tested on 3 copies of its train."""
    task = load_glue("sst2", str(glue_dir))
    for seed in (1, 5):
        train, dev = low_resource_indices(len(task.pool), 1000, seed)
        _, held = with_pool_test(task, 5000, train, dev)
        seen = {task.pool.texts[i] for i in train + dev}
        assert len(held) == 5000 and not any(task.pool.texts[i] in seen for i in held)


@pytest.fixture(scope="module")
def own_data(tmp_path_factory):
    """120 labelled sentences of the tiny vocabulary: a 96-example pool once the 20% test split is held out."""
    rng = random.Random(0)
    rows = [f"{' '.join(rng.choices(WORDS, k=6))},{'pos' if i % 2 else 'neg'}" for i in range(120)]
    path = tmp_path_factory.mktemp("own") / "tiny.csv"
    path.write_text("text,label\n" + "\n".join(rows) + "\n")
    return path


def tiny_config(model_dir, data_path, method="vanilla", pool_test_size=None):
    return build_config({
        "method": method, "model": str(model_dir), "seed": 3,
        "data": {
            "train_file": str(data_path), "text_columns": ["text"], "train_size": 12, "pool_test_size": pool_test_size,
        },
        "train": {"epochs": 1, "max_length": 16, "batch_size": 4, "lr": 1e-3},
    })


def test_runs_score_the_pool_test_like_the_test_and_keep_everything_else(tiny_model_dir, own_data):
    plain = run(tiny_config(tiny_model_dir, own_data), progress=False, write=False)
    vanilla, bitfit = (
        run(tiny_config(tiny_model_dir, own_data, method, pool_test_size=40), progress=False, write=False)
        for method in ("vanilla", "bitfit")
    )
    held = vanilla["indices"][POOL_TEST_SPLIT]
    assert held == bitfit["indices"][POOL_TEST_SPLIT]  # every method of a seed scores the same examples
    assert len(held) == 40 and not set(held) & (set(vanilla["indices"]["train"]) | set(vanilla["indices"]["dev"]))
    assert {k: vanilla["indices"][k] for k in ("train", "dev")} == plain["indices"]  # subsets as without it
    assert all(vanilla["metrics"][split] == plain["metrics"][split] for split in ("test", "dev"))
    assert vanilla["predictions"]["test"] == plain["predictions"]["test"]
    assert set(vanilla["metrics"][POOL_TEST_SPLIT]) == set(vanilla["metrics"]["test"])  # the same metrics
    assert len(vanilla["predictions"][POOL_TEST_SPLIT]) == 40
    assert "NOT GLUE dev" in vanilla["data_sources"]["pool_test_note"]
    assert "40 examples" in vanilla["data_sources"]["test_pool_test"]
    assert POOL_TEST_SPLIT not in plain["metrics"] and "pool_test_note" not in plain["data_sources"]
    assert "pool_test: accuracy" in summary_line(vanilla)


def test_cli_refuses_a_pool_test_larger_than_the_pool_in_one_line(tiny_model_dir, own_data, tmp_path, capsys):
    out = tmp_path / "out"
    code = main([
        "train", "--train-file", str(own_data), "--text-columns", "text", "--model", str(tiny_model_dir),
        "--train-size", "12", "--pool-test-size", "90", "--quiet", "--output-dir", str(out),
    ])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "use --pool-test-size 82 or less" in err and len(err.splitlines()) == 1
    assert not out.exists()
