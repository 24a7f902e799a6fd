"""The counter stream written from its docstring in plain Python integers, one example at a time:
an independent oracle for ``trainables.addition.counter_stream`` (no tensors, no int64 limits)."""

M32 = 0xFFFFFFFF


def h(x: int) -> int:
    """lowbias32 (C. Wellons), mod 2^32 with exact Python products."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & M32
    return x ^ (x >> 16)


def example(seed: int, step: int, row: int, lo: int, hi: int, holdout: set[tuple[int, int]]) -> tuple[int, int]:
    """(A, B) of row ``row`` at ``step`` for ``seed``, as the counter_stream docstring defines it."""
    s0, s1 = seed & M32, (seed >> 32) & M32
    lanes = []
    for constant in (0x243F6A88, 0x85A308D3):
        key = h(s0 ^ h(s1 ^ constant))
        lanes.append(h(h(key ^ step) ^ row))

    def w(n: int) -> int:
        return h(lanes[0] ^ ((n * 0x9E3779B9) & M32)) ^ lanes[1]

    k = lo + w(0) % (hi - lo + 1)
    attempt = 0
    while True:
        a = ((w(1 + 4 * attempt) >> 2) * 2**32 + w(2 + 4 * attempt)) % 10**k
        b = ((w(3 + 4 * attempt) >> 2) * 2**32 + w(4 + 4 * attempt)) % 10**k
        if (a, b) not in holdout:
            return a, b
        attempt += 1
