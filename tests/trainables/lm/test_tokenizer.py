"""Tokenizer training, the on-disk cache, and tokenizer statistics."""

from __future__ import annotations

import pytest

from trainables.lm.config import ConfigError, TokenizerConfig
from trainables.lm.tokenizer import UNK, build_tokenizer, cache_path, encode, token_stats

TEXT = "".join(f"def function_{i}(value):\n    return value * {i} + len('héllo')\n" for i in range(300))


def test_second_build_hits_the_cache_and_another_size_misses(tmp_path):
    config = TokenizerConfig(vocab_size=300)
    first, path, hit = build_tokenizer(config, TEXT, tmp_path)
    assert not hit and path.is_file() and path == cache_path(config, TEXT, tmp_path)
    second, path2, hit2 = build_tokenizer(config, TEXT, tmp_path)
    assert hit2 and path2 == path and second.to_str() == first.to_str()
    _, path3, hit3 = build_tokenizer(TokenizerConfig(vocab_size=320), TEXT, tmp_path)
    assert not hit3 and path3 != path
    _, path4, hit4 = build_tokenizer(config, TEXT + "x", tmp_path)  # another text: another checksum
    assert not hit4 and path4 != path
    _, path5, hit5 = build_tokenizer(TokenizerConfig(algorithm="char", vocab_size=300), TEXT, tmp_path)
    assert not hit5 and path5.name.startswith("char-300-")
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json"] * 4  # no temporary file left behind


def test_byte_level_bpe_round_trips_and_has_no_unknowns(tmp_path):
    tokenizer, _, _ = build_tokenizer(TokenizerConfig(vocab_size=300), TEXT, tmp_path)
    unseen = "naïve € 😀\r\n\ttabs"
    assert tokenizer.decode(encode(tokenizer, unseen)) == unseen
    assert tokenizer.get_vocab_size() == 300


def test_char_tokenizer_maps_unseen_characters_to_unk(tmp_path):
    tokenizer, _, _ = build_tokenizer(TokenizerConfig(algorithm="char", vocab_size=100), "aab\n", tmp_path)
    ids = encode(tokenizer, "abz\n")
    assert ids[2] == tokenizer.token_to_id(UNK) and len(ids) == 4


def test_token_stats_by_hand(tmp_path):
    """'aab\\n' -> 4 tokens for 4 characters / 4 bytes; 'é' is one character of 2 bytes and <unk>."""
    tokenizer, _, _ = build_tokenizer(TokenizerConfig(algorithm="char", vocab_size=100), "aab\n", tmp_path)
    text = "aaé\n"
    stats = token_stats(encode(tokenizer, text), text, tokenizer, num_parameters=600, embedding_parameters=60)
    assert tokenizer.get_vocab_size() == 5  # <|endoftext|>, <unk>, a, b, \n
    assert stats["tok/tokens_per_char"] == 1.0 and stats["tok/tokens_per_byte"] == pytest.approx(4 / 5)
    assert stats["tok/unk_rate"] == pytest.approx(1 / 4)
    assert stats["tok/vocab_used"] == pytest.approx(3 / 5)  # a, <unk>, \n
    assert stats["tok/params_per_vocab_entry"] == 120 and stats["tok/embedding_share"] == pytest.approx(0.1)


@pytest.mark.parametrize("kwargs, message", [
    ({"vocab_size": 256}, "vocab_size=256 is below the 257 entries of a byte_bpe"),
    ({"algorithm": "wordpiece"}, "algorithm must be 'byte_bpe' or 'char', got 'wordpiece'"),
])
def test_tokenizer_config_names_field_and_value(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        TokenizerConfig(**kwargs)
