"""Corpora of the language-model trainable: reading, normalizing, and a leak-free split.

Built-in corpora: ``stdlib`` (the running interpreter's standard library, ``*.py`` under
``sysconfig.get_paths()["stdlib"]`` without site-packages, sorted by relative path: present on
every machine, though its bytes depend on the Python version) and ``en``, ``fr``, ``es`` (the
public-domain texts in ``$REPROTUNE_CORPORA_DIR``, default ``<project>/../shared/data/corpora``;
sources in that folder's SOURCES.md). Any other value is a path to a text file or a folder.

The split is by document, never by window: a folder's files are its documents; a single file is
cut into contiguous blocks of about ``block_chars`` characters at line ends. A seeded generator of
its own picks the validation documents, so a training seed never moves the split. Each side is
recorded by the sha256 of its UTF-8 bytes.
"""

from __future__ import annotations

import hashlib
import os
import dataclasses
import random
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from trainables.lm.config import ConfigError, DataConfig
from trainables.paths import shared_dir

CORPORA_ENV = "REPROTUNE_CORPORA_DIR"
"""Environment variable naming the folder of the named text corpora."""
NAMED_CORPORA = {"en": "tiny_shakespeare_en.txt", "fr": "dumas_fr.txt", "es": "spanish_es.txt"}
"""Short name -> file in the corpora folder."""
_GUTENBERG_START, _GUTENBERG_END = "*** START OF TH", "*** END OF TH"


def corpora_dir() -> Path:
    """Folder of the named corpora: $REPROTUNE_CORPORA_DIR or ``<project>/../shared/data/corpora``."""
    return Path(os.environ.get(CORPORA_ENV, shared_dir() / "data" / "corpora")).resolve()


def normalize_text(text: str) -> str:
    """Drop a leading BOM, turn CRLF and CR into LF, keep only a Gutenberg ebook's body.

    The body is the text after the line holding ``*** START OF TH(E|IS) PROJECT GUTENBERG EBOOK``
    and before the line holding ``*** END OF TH...``, when both markers are present.
    """
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    start, end = text.find(_GUTENBERG_START), text.find(_GUTENBERG_END)
    if 0 <= start < end:
        body_start = text.find("\n", start) + 1
        body_end = text.rfind("\n", 0, end) + 1
        text = text[body_start:body_end].strip("\n") + "\n"
    return text


@dataclass(frozen=True)
class Document:
    """One unit of the split: a file, or a block of a single-file corpus."""

    name: str
    """Relative path, or '<file>#<block index>'."""
    text: str
    """Normalized text, ending with a newline."""


def _files(config: DataConfig) -> tuple[Path, list[Path]]:
    if config.corpus == "stdlib":
        root = Path(sysconfig.get_paths()["stdlib"])
        files = [p for p in root.rglob("*.py")
                 if not {"site-packages", "dist-packages"} & set(p.relative_to(root).parts)]
        return root, sorted(files, key=lambda p: p.relative_to(root).as_posix())
    path = corpora_dir() / NAMED_CORPORA[config.corpus] if config.corpus in NAMED_CORPORA else Path(config.corpus)
    path = path.expanduser().resolve()
    if path.is_file():
        return path.parent, [path]
    if path.is_dir():
        files = [p for p in path.rglob(config.file_pattern) if p.is_file()]
        return path, sorted(files, key=lambda p: p.relative_to(path).as_posix())
    raise FileNotFoundError(f"corpus {config.corpus!r}: no file or folder at {path}"
                            + (f" (set {CORPORA_ENV} to the folder of {NAMED_CORPORA[config.corpus]})"
                               if config.corpus in NAMED_CORPORA else
                               "; give data.corpus (--corpus, CORPUS=) a text file, a folder, or stdlib/en/fr/es"))


def _blocks(name: str, text: str, block_chars: int) -> list[Document]:
    """Contiguous blocks of about ``block_chars`` characters, each cut after a newline."""
    blocks, start = [], 0
    while start < len(text):
        cut = text.find("\n", start + block_chars)
        end = len(text) if cut < 0 else cut + 1
        blocks.append(Document(f"{name}#{len(blocks)}", text[start:end]))
        start = end
    return blocks


def read_documents(config: DataConfig) -> tuple[list[Document], int]:
    """The corpus as documents, capped at ``max_bytes``; returns (documents, files skipped as binary:
    not UTF-8, or holding a NUL byte).

    Raises:
        FileNotFoundError: the corpus path does not exist.
        ConfigError: the corpus holds no text.
    """
    root, files = _files(config)
    documents, skipped, total = [], 0, 0
    for path in files:
        try:
            data = path.read_bytes()
            text = data.decode("utf-8")
        except (UnicodeDecodeError, OSError):
            skipped += 1
            continue
        if b"\0" in data:
            skipped += 1
            continue
        text = normalize_text(text) if config.normalize else text
        if not text.strip():
            continue
        text = text if text.endswith("\n") else text + "\n"
        size = len(text.encode("utf-8"))
        name = path.relative_to(root).as_posix()
        if config.max_bytes and total + size > config.max_bytes:
            text = _cut_to_bytes(text, config.max_bytes - total)
            if text:
                documents.append(Document(name, text))
            break
        documents.append(Document(name, text))
        total += size
    if not documents:
        raise ConfigError(f"corpus {config.corpus!r} holds no readable UTF-8 text under {root} ({len(files)} file(s), "
                          f"{skipped} skipped as binary); give data.corpus a text file or a folder of them")
    if len(documents) == 1:
        documents = _blocks(documents[0].name, documents[0].text, config.block_chars)
    return documents, skipped


def _cut_to_bytes(text: str, limit: int) -> str:
    """The longest prefix of ``text`` ending at a line end whose UTF-8 encoding fits ``limit`` bytes."""
    prefix = text.encode("utf-8")[:max(0, limit)].decode("utf-8", errors="ignore")
    return prefix[: prefix.rfind("\n") + 1]


def sha256_text(text: str) -> str:
    """Hex sha256 of a text's UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CorpusSplit:
    """Training and validation text of one corpus, by document."""

    train: str
    """Concatenated training documents."""
    val: str
    """Concatenated validation documents."""
    val_names: tuple[str, ...]
    """Names of the validation documents, in corpus order."""
    num_documents: int
    """Documents in the corpus after the cap."""
    skipped_files: int
    """Files skipped because they are not UTF-8."""

    @property
    def train_sha256(self) -> str:
        return sha256_text(self.train)

    @property
    def val_sha256(self) -> str:
        return sha256_text(self.val)

    def record(self) -> dict[str, float | str]:
        """``data/*`` entries for a report: sizes (numbers) and checksums (strings)."""
        return {"data/train_bytes": float(len(self.train.encode("utf-8"))),
                "data/val_bytes": float(len(self.val.encode("utf-8"))),
                "data/num_documents": float(self.num_documents), "data/val_documents": float(len(self.val_names)),
                "data/skipped_files": float(self.skipped_files),
                "data/train_sha256": self.train_sha256, "data/val_sha256": self.val_sha256}


def split_corpus(config: DataConfig) -> CorpusSplit:
    """Read the corpus and hold out ``val_fraction`` of its documents (at least one, never all).

    Raises:
        FileNotFoundError: the corpus path does not exist.
        ConfigError: fewer than two documents (nothing to split).
    """
    documents, skipped = read_documents(config)
    if len(documents) < 2:
        raise ConfigError(f"corpus {config.corpus!r} has {len(documents)} document(s); a split needs two "
                          f"(lower data.block_chars={config.block_chars})")
    n_val = min(len(documents) - 1, max(1, round(config.val_fraction * len(documents))))
    chosen = set(random.Random(config.split_seed).sample(range(len(documents)), n_val))
    val = [d for i, d in enumerate(documents) if i in chosen]
    train = [d for i, d in enumerate(documents) if i not in chosen]
    return CorpusSplit("".join(d.text for d in train), "".join(d.text for d in val),
                       tuple(d.name for d in val), len(documents), skipped)


def absolute_corpus(corpus: str) -> str:
    """A corpus value that is a path, made absolute against the current folder (a Ray trial runs in
    its own folder); a built-in name unchanged."""
    return corpus if corpus == "stdlib" or corpus in NAMED_CORPORA else str(Path(corpus).expanduser().resolve())


def corpora_of(data: DataConfig, extra_corpora: Iterable[str] = ()) -> list[DataConfig]:
    """Every corpus a run reads: its own and each of its tokenizer's ``extra_corpora`` (with the same
    data settings, as ``data.tokenizer_text`` reads them)."""
    return [data, *(dataclasses.replace(data, corpus=name) for name in extra_corpora)]


def check_corpora(configs: Iterable[DataConfig]) -> None:
    """Read and split each distinct corpus once, before any work, so that a missing, empty, binary or
    too small one stops a job with a message instead of failing every trial.

    Raises:
        ConfigError: names the corpus, the path, and what to give instead.
    """
    for config in dict.fromkeys(configs):
        try:
            split_corpus(config)
        except FileNotFoundError as error:
            raise ConfigError(str(error)) from error
