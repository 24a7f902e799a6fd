"""The Q/K/V tie modes of the addition family as one table, read by the single-seed model
(``model.py``) and the stacked one (``stacked_model.py``).

Each mode names the maps a block creates, in the reference's creation (and RNG draw) order with the
reference's state-dict names (``shared/reference/addition.md`` section 2 table; yinglunz/A-456-
Parameter-Transformer-Solves-10-Digit-Addition @ 1fb37db), and the path from the block's normed
input to each of Q, K and V through them. Tied projections have the same path.
"""

from __future__ import annotations

from dataclasses import dataclass

Step = tuple[str, "int | None"]
"""One map of a path: (map name, output chunk of width d_model, or None for the whole output)."""


@dataclass(frozen=True)
class QKVTie:
    """How one tie mode makes Q, K and V from a block's normed input (N, T, d).

    ``dense``: (name, width) of each d -> width * d map (full or low-rank, ``model._linear``), in
    creation order; a width-3 map's output is split into the chunks q, k, v. ``factors``: the bare
    low-rank factors of the share* modes, in creation order: an ``qkv_A*`` factor is (d, r), a
    ``qkv_B*`` factor (r, d). ``q``, ``k``, ``v``: each projection's path, first map first.
    """

    dense: tuple[tuple[str, int], ...]
    factors: tuple[str, ...]
    q: tuple[Step, ...]
    k: tuple[Step, ...]
    v: tuple[Step, ...]

    def paths(self) -> dict[str, tuple[Step, ...]]:
        """'q', 'k', 'v' -> path."""
        return {"q": self.q, "k": self.k, "v": self.v}


def _dense(*maps: tuple[str, int], q: str, k: str, v: str) -> QKVTie:
    """A mode of whole maps; ``q``/``k``/``v`` name each projection's map ('qkv:0': chunk 0)."""
    def path(spec: str) -> tuple[Step, ...]:
        name, _, chunk = spec.partition(":")
        return ((name, int(chunk) if chunk else None),)
    return QKVTie(dense=maps, factors=(), q=path(q), k=path(k), v=path(v))


def _factored(*factors: str, q: str, k: str, v: str) -> QKVTie:
    """A share* mode; ``q``/``k``/``v`` list each projection's factors in the order applied."""
    def path(spec: str) -> tuple[Step, ...]:
        return tuple((name, None) for name in spec.split())
    return QKVTie(dense=(), factors=factors, q=path(q), k=path(k), v=path(v))


TIES: dict[str, QKVTie] = {
    "none": _dense(("qkv", 3), q="qkv:0", k="qkv:1", v="qkv:2"),
    "all": _dense(("qkv_shared", 1), q="qkv_shared", k="qkv_shared", v="qkv_shared"),
    "qk": _dense(("qk_shared", 1), ("v_proj", 1), q="qk_shared", k="qk_shared", v="v_proj"),
    "kv": _dense(("q_proj", 1), ("kv_shared", 1), q="q_proj", k="kv_shared", v="kv_shared"),
    "shareA": _factored("qkv_A", "qkv_Bq", "qkv_Bk", "qkv_Bv",
                        q="qkv_A qkv_Bq", k="qkv_A qkv_Bk", v="qkv_A qkv_Bv"),
    "shareA_tieKV": _factored("qkv_A", "qkv_Bq", "qkv_Bkv", q="qkv_A qkv_Bq", k="qkv_A qkv_Bkv", v="qkv_A qkv_Bkv"),
    "shareA_tieQK": _factored("qkv_A", "qkv_Bqk", "qkv_Bv", q="qkv_A qkv_Bqk", k="qkv_A qkv_Bqk", v="qkv_A qkv_Bv"),
    "shareB": _factored("qkv_Aq", "qkv_Ak", "qkv_Av", "qkv_B",
                        q="qkv_Aq qkv_B", k="qkv_Ak qkv_B", v="qkv_Av qkv_B"),
    "shareB_tieKV": _factored("qkv_Aq", "qkv_Akv", "qkv_B", q="qkv_Aq qkv_B", k="qkv_Akv qkv_B", v="qkv_Akv qkv_B"),
    "shareB_tieQK": _factored("qkv_Aqk", "qkv_Av", "qkv_B", q="qkv_Aqk qkv_B", k="qkv_Aqk qkv_B", v="qkv_Av qkv_B"),
}
"""Tie mode (``ModelConfig.tie_qkv``) -> its maps and paths."""


def factor_shape(name: str, d_model: int, rank: int) -> tuple[int, int]:
    """Shape of a share* mode's factor: (d, r) for an ``qkv_A*`` factor, (r, d) for a ``qkv_B*`` one."""
    return (d_model, rank) if name.startswith("qkv_A") else (rank, d_model)


def query_start(mode: QKVTie) -> int:
    """How many maps of Q's path are computed at every position before Q is cut to the asked
    positions: all of them when Q's maps are K's (a tie, or a chunk of the joint map: Q is sliced
    from the full result), else the prefix Q shares with K (a shared factor A, or nothing)."""
    if [name for name, _ in mode.q] == [name for name, _ in mode.k]:
        return len(mode.q)
    shared = 0
    while shared < min(len(mode.q), len(mode.k)) and mode.q[shared] == mode.k[shared]:
        shared += 1
    return shared
