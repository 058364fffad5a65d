import json

import pytest

from mixtune.config import DataConfig
from mixtune.data import load_task
from mixtune.data.glue import load_glue
from mixtune.data.readers import read_table, read_tsv
from mixtune.data.sampling import low_resource_indices, random_split
from mixtune.errors import MixtuneError


def test_tsv_reader_keeps_quotes_na_and_drops_bom(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_bytes(
        "\ufeffQuality\t#1 String\t#2 String\n"
        '1\t"He said "hi\tNA\n'
        "0\tit's \"quoted\" twice\t''\n".encode("utf-8")
    )
    rows = read_tsv(path)
    assert list(rows[0]) == ["Quality", "#1 String", "#2 String"]
    assert rows[0]["#1 String"] == '"He said "hi' and rows[0]["#2 String"] == "NA"
    assert rows[1]["#1 String"] == "it's \"quoted\" twice"
    assert len(rows) == 2


def test_tsv_reader_headerless_file_without_final_newline(tmp_path):
    path = tmp_path / "dev.tsv"
    path.write_text("gj04\t1\t\tThe sailors rode the breeze clear of the rocks.\ngj04\t0\t*\tThe \"car\" honked down the road.")
    rows = read_tsv(path, ["source", "label", "original_label", "sentence"])
    assert [r["label"] for r in rows] == ["1", "0"]
    assert rows[1]["sentence"] == 'The "car" honked down the road.'


def test_tsv_reader_reports_short_rows(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("a\tb\nonly-one\n")
    with pytest.raises(MixtuneError, match="line 2"):
        read_tsv(path)


def test_real_glue_files_have_official_sizes(glue_dir):
    sizes = {"cola": (8551, 1043), "mrpc": (3668, 408), "rte": (2490, 277), "stsb": (5749, 1500)}
    for task, (train, test) in sizes.items():
        data = load_glue(task, str(glue_dir))
        assert (len(data.pool), len(data.tests["test"])) == (train, test), task


def test_pools_without_official_dev_hold_out_a_marked_test_split(glue_dir):
    data = load_glue("mnli", str(glue_dir))
    assert "NOT GLUE dev" in data.sources["test_note"]
    assert "partial" in data.sources["train_note"]
    assert len(data.pool) + len(data.tests["test"]) == 9999
    qnli = load_glue("qnli", str(glue_dir))
    assert len(qnli.tests["test"]) == 5463 and "test_note" not in qnli.sources


def test_subsampling_is_deterministic_and_method_independent():
    first = low_resource_indices(2490, 300, seed=3)
    assert first == low_resource_indices(2490, 300, seed=3)
    assert first != low_resource_indices(2490, 300, seed=4)
    train, dev = first
    assert len(train) == 300 and len(dev) == 50 and not set(train) & set(dev)


def test_subsampling_rejects_sizes_larger_than_the_pool():
    with pytest.raises(MixtuneError, match="exceeds"):
        low_resource_indices(100, 90, seed=1)


def test_a_run_that_reads_no_dev_scores_needs_only_its_n_labels():
    """Issue 32: without a use for dev, train_size n needs n rows, and no train_size trains on the whole pool."""
    with_dev = low_resource_indices(2490, 300, seed=3)
    assert low_resource_indices(2490, 300, seed=3, dev_needed=False) == with_dev  # a large pool: the same subsets
    train, dev = low_resource_indices(320, 300, seed=3, dev_needed=False)
    assert len(train) == 300
    assert len(dev) == 20 and not set(train) & set(dev)  # the dev split is what the pool has left
    train, dev = low_resource_indices(300, 300, seed=3, dev_needed=False)
    assert sorted(train) == list(range(300)) and dev == []
    train, dev = low_resource_indices(700, None, seed=3, dev_needed=False)
    assert sorted(train) == list(range(700)) and dev == []
    assert len(low_resource_indices(700, None, seed=3)[0]) == 600  # best-dev still holds out one seventh
    with pytest.raises(MixtuneError, match="train size 301 exceeds the 300 examples .* use --train-size 300 or less"):
        low_resource_indices(300, 301, seed=3, dev_needed=False)
    with pytest.raises(MixtuneError, match="train size 300 plus dev 50 exceeds"):
        low_resource_indices(300, 300, seed=3)


def test_search_split_is_80_20_and_rejects_tiny_sets():
    tr, val = random_split(300, 0.8, seed=1)
    assert len(tr) == 240 and len(val) == 60 and not set(tr) & set(val)
    with pytest.raises(MixtuneError, match="too small"):
        random_split(2, 0.8, seed=1)


def test_user_files_csv_jsonl_with_held_out_test(tmp_path):
    csv_path = tmp_path / "reviews.csv"
    csv_path.write_text("text,label\n" + '"good, very good",pos\nbad,neg\nfine,pos\nawful,neg\nnice,pos\nmeh,neg\n' * 3)
    data = load_task(DataConfig(train_file=str(csv_path), text_columns=["text"], label_column="label"))
    assert data.spec.label_names == ["neg", "pos"]
    assert len(data.pool) + len(data.tests["test"]) == 18
    jsonl = tmp_path / "scores.jsonl"
    jsonl.write_text("\n".join(json.dumps({"a": f"x{i}", "b": "y", "y": i / 2}) for i in range(10)))
    reg = load_task(DataConfig(train_file=str(jsonl), text_columns=["a", "b"], label_column="y", task_type="regression"))
    assert reg.spec.kind == "regression" and reg.spec.num_labels == 1


@pytest.mark.parametrize(
    "content, kwargs, message",
    [
        ("text,label\n", {}, "no examples"),
        ("words,label\nhi,pos\n", {}, "no column 'text'"),
        ("text,label\nhi,pos\nho,pos\n", {}, "fewer than two labels"),
        ("text,label\nhi,1\nho,x\n", {"task_type": "regression"}, "not a number"),
    ],
)
def test_user_file_errors_name_the_problem(tmp_path, content, kwargs, message):
    path = tmp_path / "data.csv"
    path.write_text(content)
    with pytest.raises(MixtuneError, match=message):
        load_task(DataConfig(train_file=str(path), text_columns=["text"], **kwargs))


def test_test_labels_outside_the_training_label_set(tmp_path):
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    train.write_text("text,label\na,pos\nb,neg\n")
    test.write_text("text,label\nc,maybe\n")
    with pytest.raises(MixtuneError, match="'maybe' is not among the training labels"):
        load_task(DataConfig(train_file=str(train), test_file=str(test), text_columns=["text"]))


def test_unknown_extension_and_missing_file(tmp_path):
    with pytest.raises(MixtuneError, match="does not exist"):
        read_table(tmp_path / "nope.csv")
    (tmp_path / "x.parquet").write_text("x")
    with pytest.raises(MixtuneError, match="unknown extension"):
        read_table(tmp_path / "x.parquet")


def test_evaluation_order_groups_by_length_and_keeps_every_example():
    from mixtune.data.batching import by_length

    features = [{"input_ids": [0] * n, "labels": n} for n in (5, 2, 9, 2, 7)]
    ordered = by_length(features)
    assert [len(f["input_ids"]) for f in ordered] == [2, 2, 5, 7, 9]
    assert sorted(f["labels"] for f in ordered) == sorted(f["labels"] for f in features)
