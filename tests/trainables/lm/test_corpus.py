"""Corpora: normalization, a split by document with its own seed, checksums, the named texts."""

from __future__ import annotations

import hashlib

import pytest

from trainables.lm.config import ConfigError, DataConfig
from trainables.lm.corpus import (
    NAMED_CORPORA, absolute_corpus, check_corpora, corpora_dir, corpora_of, normalize_text, read_documents, split_corpus,
)


def test_normalize_drops_bom_crlf_and_gutenberg_boilerplate():
    raw = ("\ufeffThe Project Gutenberg EBook\r\n*** START OF THIS PROJECT GUTENBERG EBOOK X ***\r\n\r\n"
           "Chapitre 1\r\nTexte.\r\n\r\n*** END OF THIS PROJECT GUTENBERG EBOOK X ***\r\nLicense\r\n")
    assert normalize_text(raw) == "Chapitre 1\nTexte.\n"
    assert normalize_text("\ufeffa\rb\r\n") == "a\nb\n"


def _folder(tmp_path, count=10):
    for i in range(count):
        (tmp_path / f"doc{i:02d}.txt").write_text(f"document {i}\n" + "word " * (i + 1) + "\n")
    return tmp_path


def test_split_is_by_document_seeded_and_checksummed(tmp_path):
    config = DataConfig(corpus=str(_folder(tmp_path)), val_fraction=0.2, split_seed=3)
    split = split_corpus(config)
    assert len(split.val_names) == 2 and split.num_documents == 10
    for name in split.val_names:  # a validation document is whole in validation and absent from training
        text = (tmp_path / name).read_text()
        assert text in split.val and text not in split.train
    assert split.val_sha256 == hashlib.sha256(split.val.encode()).hexdigest()
    assert split_corpus(config) == split  # deterministic
    other = split_corpus(DataConfig(corpus=str(tmp_path), val_fraction=0.2, split_seed=4))
    assert other.val_names != split.val_names


def test_single_file_is_cut_into_contiguous_blocks(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text("".join(f"line {i}\n" for i in range(2000)))
    documents, skipped = read_documents(DataConfig(corpus=str(path), block_chars=1000))
    assert skipped == 0 and len(documents) > 10
    assert "".join(d.text for d in documents) == path.read_text()
    assert all(d.text.endswith("\n") for d in documents)


def test_cap_and_errors(tmp_path):
    documents, _ = read_documents(DataConfig(corpus=str(_folder(tmp_path)), max_bytes=100))
    assert sum(len(d.text.encode()) for d in documents) <= 100
    with pytest.raises(FileNotFoundError, match="no file or folder"):
        split_corpus(DataConfig(corpus=str(tmp_path / "missing")))
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "a.txt").write_text("x\n")
    with pytest.raises(ConfigError, match="a split needs two"):
        split_corpus(DataConfig(corpus=str(tmp_path / "one")))
    with pytest.raises(ConfigError, match="val_fraction must be in \\(0, 1\\), got 1.0"):
        DataConfig(val_fraction=1.0)


def test_stdlib_corpus_is_deterministic():
    config = DataConfig(corpus="stdlib", max_bytes=150_000)
    first, second = split_corpus(config), split_corpus(config)
    assert first.train_sha256 == second.train_sha256 and first.val_sha256 == second.val_sha256
    assert 100_000 < len((first.train + first.val).encode()) <= 150_000
    assert "def " in first.train


@pytest.mark.parametrize("name", sorted(NAMED_CORPORA))
def test_named_corpora_are_normalized(name):
    path = corpora_dir() / NAMED_CORPORA[name]
    if not path.is_file():
        pytest.skip(f"corpus {path} is absent (set REPROTUNE_CORPORA_DIR to the folder of the shared corpora)")
    split = split_corpus(DataConfig(corpus=name, max_bytes=0))
    text = split.train + split.val
    assert "\r" not in text and "\ufeff" not in text
    assert "*** START OF TH" not in text and "PROJECT GUTENBERG-TM" not in text.upper()  # header, license gone
    assert split.num_documents > 20


def test_a_missing_empty_binary_or_unsplittable_corpus_is_refused_before_any_work(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "binary.dat").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "nul.txt").write_bytes(b"text\0with a NUL\nline\n")
    (tmp_path / "one.txt").write_text("one line\n")
    cases = {"missing": r"no file or folder at .*missing; give data.corpus \(--corpus, CORPUS=\)",
             "empty.txt": r"holds no readable UTF-8 text under .* \(1 file\(s\), 0 skipped as binary\)",
             "binary.dat": r"holds no readable UTF-8 text under .* \(1 file\(s\), 1 skipped as binary\)",
             "nul.txt": r"\(1 file\(s\), 1 skipped as binary\)",
             "one.txt": r"has 1 document\(s\); a split needs two"}
    for name, message in cases.items():
        config = DataConfig(corpus=str(tmp_path / name))
        with pytest.raises(ConfigError, match=f"^corpus '{tmp_path / name}'.*{message}"):
            check_corpora([DataConfig(), config])
    (tmp_path / "ok").mkdir()
    check_corpora(corpora_of(DataConfig(corpus=str(_folder(tmp_path / "ok"))), ["stdlib"]))


def test_a_path_corpus_is_made_absolute_and_a_name_is_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert absolute_corpus("texts/a.txt") == str(tmp_path / "texts" / "a.txt")
    assert absolute_corpus("en") == "en" and absolute_corpus("stdlib") == "stdlib"
