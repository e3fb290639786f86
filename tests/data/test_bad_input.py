"""Bad dataset and negatives files: a DataError (exit 2 in the CLI) that names the file and
line (or row), what was found and what was expected."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from hnm.data.beir import load_beir
from hnm.data.dataset import TrainPairs
from hnm.entry import user_message
from hnm.errors import DataError
from hnm.miners.io import read_negatives
from tests.data.test_beir import CORPUS, QRELS, QUERIES, write


def refused(root: Path, *needles: str) -> str:
    with pytest.raises(DataError) as err:
        load_beir(str(root))
    message = str(err.value)
    assert user_message(err.value) == message  # the CLI prints it as is, exit 2
    assert "\n" not in message and "Traceback" not in message
    for needle in needles:
        assert needle in message, (needle, message)
    return message


def lines(rows: list) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    root = write(tmp_path / "ds")
    (root / "corpus.jsonl").unlink()
    refused(root, "has no corpus.jsonl file", "data.path=")
    root = write(tmp_path / "ds2")
    (root / "corpus.jsonl").unlink()
    (root / "corpus.jsonl").mkdir()
    refused(root, "has no corpus.jsonl file")


@pytest.mark.parametrize("name", ["corpus.jsonl", "queries.jsonl"])
def test_empty_file(tmp_path: Path, name: str) -> None:
    root = write(tmp_path / "ds")
    (root / name).write_text("\n  \n")
    refused(root, f"{root / name}: the file is empty")


def test_qrels_with_only_a_header(tmp_path: Path) -> None:
    root = write(tmp_path / "ds", qrels={**QRELS, "dev": "query-id\tcorpus-id\tscore\n"})
    refused(root, "dev.tsv: no judgement, only a header")


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    root = write(tmp_path / "ds")
    (root / "queries.jsonl").write_bytes(b'{"_id": "q1", "text": "ok"}\n{"_id": "q2", '
                                         b'"text": "caf\xe9"}\n')
    refused(root, "queries.jsonl line 2: not UTF-8 text", "byte 0xe9")


def test_binary_and_gzip(tmp_path: Path) -> None:
    root = write(tmp_path / "ds")
    (root / "corpus.jsonl").write_bytes(b"\x00\x01\x02binary\n")
    refused(root, "corpus.jsonl line 1: holds NUL bytes", "binary")
    (root / "corpus.jsonl").write_bytes(gzip.compress(lines(CORPUS).encode()))
    refused(root, "corpus.jsonl: a gzip-compressed file")


def test_malformed_json_line(tmp_path: Path) -> None:
    root = write(tmp_path / "ds", corpus=lines(CORPUS) + '{"_id": "d9", "text": \n')
    refused(root, f"{root / 'corpus.jsonl'} line 4: not valid JSON")


@pytest.mark.parametrize(("row", "needle"), [
    ({"text": "no id"}, "line 2: missing '_id'"),
    ({"_id": "q2"}, "line 2: missing 'text'"),
    ({"_id": "q2", "text": None}, "line 2: missing 'text' (found 'text': null)"),
    ({"_id": None, "text": "x"}, "line 2: missing '_id' (found '_id': null)"),
    ({"_id": "q2", "text": 42}, "line 2: 'text' is int 42; expected a string"),
    ({"_id": "q2", "text": ["a"]}, "line 2: 'text' is list"),
    ({"_id": 1.5, "text": "x"}, "line 2: '_id' is 1.5; expected a non-empty string or an "
                                "integer"),
    ({"_id": "", "text": "x"}, "line 2: '_id' is \"\""),
])
def test_bad_query_fields(tmp_path: Path, row: dict, needle: str) -> None:
    root = write(tmp_path / "ds", queries=[QUERIES[0], row])
    refused(root, "queries.jsonl " + needle)


def test_bad_title_type(tmp_path: Path) -> None:
    root = write(tmp_path / "ds", corpus=[*CORPUS, {"_id": "d9", "title": 3, "text": "x"}])
    refused(root, "corpus.jsonl line 4: 'title' is int 3; expected a string")


def test_duplicate_document_id_names_both_lines(tmp_path: Path) -> None:
    corpus = [*CORPUS, {"_id": "d1", "text": "another first document"}]
    root = write(tmp_path / "ds", corpus=corpus)
    refused(root, f"{root / 'corpus.jsonl'} line 4: '_id' 'd1' repeats line 1", "unique")


def test_duplicate_query_id_names_both_lines(tmp_path: Path) -> None:
    root = write(tmp_path / "ds", queries=[*QUERIES, {"_id": "7", "text": "again"}])
    refused(root, "queries.jsonl line 3: '_id' '7' repeats line 2")  # 7 and "7" are one id


@pytest.mark.parametrize(("row", "needle"), [
    ("q1\td1\n", "line 3: expected 3 tab-separated fields"),
    ("q1 d1 1\n", "line 3: expected 3 tab-separated fields"),
    ("q1\td1\t1\textra\n", "line 3: expected 3 tab-separated fields"),
    ("q1\td1\t0.5\n", "line 3: score '0.5' is not an integer"),
    ("q1\td1\thigh\n", "line 3: score 'high' is not an integer"),
])
def test_bad_qrels_rows(tmp_path: Path, row: str, needle: str) -> None:
    root = write(tmp_path / "ds", qrels={"dev": "query-id\tcorpus-id\tscore\nq1\td1\t1\n" + row})
    refused(root, f"{root / 'qrels' / 'dev.tsv'} {needle}")


def test_unknown_ids_only(tmp_path: Path) -> None:
    root = write(tmp_path / "ds", qrels={"test": "ghost\td1\t1\nq1\tnowhere\t1\n"})
    refused(root, "qrels/test", "none of its 2 judgements reference a known query and document")


def test_unknown_ids_warn_with_examples(tmp_path: Path, caplog) -> None:
    root = write(tmp_path / "ds", qrels={"test": "q1\td1\t1\nghost\td1\t1\nq1\tnowhere\t1\n"})
    load_beir(str(root))
    assert "query 'ghost'" in caplog.text and "document 'nowhere'" in caplog.text
    qrels = root / "qrels" / "test.tsv"  # each example names the qrels line that holds it
    assert f"query 'ghost' ({qrels} line 2)" in caplog.text
    assert f"document 'nowhere' ({qrels} line 3)" in caplog.text


def test_no_usable_training_pair(tmp_path: Path) -> None:
    root = write(tmp_path / "ds", qrels={"train": "q1\td1\t0\n7\t2\t0\n", "test": "q1\td1\t1\n"})
    data = load_beir(str(root))
    with pytest.raises(DataError, match="'train' split has no positive .* nothing to train on"):
        TrainPairs.from_split(data, "train")


# --- Hugging Face datasets -------------------------------------------------------------------

def test_hf_missing_columns_duplicates_and_scores(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    from hnm.data.hf import load_hf

    def save(name: str, **splits: dict) -> str:
        datasets.DatasetDict({k: datasets.Dataset.from_dict(v) for k, v in splits.items()}
                             ).save_to_disk(tmp_path / name)
        return str(tmp_path / name)

    corpus = {"_id": ["d1", "d2"], "text": ["a", "b"]}
    queries = {"_id": ["q1"], "text": ["x"]}
    qrels = {"query-id": ["q1"], "corpus-id": ["d1"], "score": [1]}
    with pytest.raises(DataError, match="queries has no column '_id'; its columns are text"):
        load_hf(save("a", corpus=corpus, queries={"text": ["x"]}, test=qrels))
    with pytest.raises(DataError, match="qrels split 'test' has no column 'score'"):
        load_hf(save("b", corpus=corpus, queries=queries,
                     test={"query-id": ["q1"], "corpus-id": ["d1"]}))
    with pytest.raises(DataError, match="corpus repeats '_id' 'd1' in rows 0 and 2"):
        load_hf(save("c", corpus={"_id": ["d1", "d2", "d1"], "text": ["a", "b", "c"]},
                     queries=queries, test=qrels))
    with pytest.raises(DataError, match=r"qrels split 'test', row 0: score 'high'"):
        load_hf(save("d", corpus=corpus, queries=queries, test={**qrels, "score": ["high"]}))


# --- negatives files (hnm mine output, +miner=from_file) ------------------------------------

def test_negatives_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "neg.jsonl"
    path.write_bytes(b'{"qid": "q0", "neg_ids": ["d1"]}\n\xff\xfe\n')
    with pytest.raises(DataError, match="not UTF-8") as err:
        list(read_negatives(path))
    assert f"{path}, line 2" in str(err.value)


def test_negatives_parquet_that_is_not_parquet(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    path = tmp_path / "neg.parquet"
    path.write_text('{"qid": "q0"}\n')
    with pytest.raises(DataError, match="not a readable Parquet file") as err:
        list(read_negatives(path))
    assert str(path) in str(err.value)
