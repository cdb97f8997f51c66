"""Micro-measure of the stage kit's memo on the request path: `Bounded.get` against a plain dict's
`get`, and a `remembered` text function against the hand-written memo it replaced (kit/memo.py's
per_text). In-process, a few seconds; the request-level figures are benchmarks/overhead.py's.

    python -m benchmarks.kit_cache
"""
from __future__ import annotations

import timeit

from lynkr.kit.cache import Bounded, remembered, text_size


class _PerText:
    """The memo kit/memo.py had (a dict cleared when full), for comparison."""

    def __init__(self, fn, max_chars=1_000_000):
        self.fn, self.max_chars, self._seen, self._chars = fn, max_chars, {}, 0

    def __call__(self, text):
        hit = self._seen.get(text)
        if hit is None:
            hit = self.fn(text)
            if self._chars + len(text) > self.max_chars:
                self._seen.clear()
                self._chars = 0
            self._seen[text] = hit
            self._chars += len(text) + 100
        return hit


def _ns(fns: dict, keys, number=200, rounds=25) -> dict:
    """The best time a call of each, taken in turns so a busy machine slows them alike."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            t = timeit.timeit(lambda: [fn(k) for k in keys], number=number)
            best[name] = min(best[name], t / number / len(keys) * 1e9)
    return best


def main() -> None:
    texts = [f"<system-reminder>note {i}</system-reminder> fix bug {i} " * 8 for i in range(200)]
    plain: dict = {}
    table: Bounded = Bounded(max_size=1_000_000)
    for t in texts:
        plain[t] = t
        table.put(t, t, text_size(t))
    old = _PerText(lambda t: t.strip())
    new = remembered(lambda t: t.strip(), max_size=1_000_000, size=text_size)
    for t in texts:
        old(t), new(t)
    got = _ns({"dict.get": plain.get, "Bounded.get": table.get, "per_text (before)": old, "remembered": new}, texts)
    for name, ns in got.items():
        print(f"{name:<18}{ns:6.1f} ns a hit")


if __name__ == "__main__":
    main()
