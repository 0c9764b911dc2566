"""The TPC-H harness runs its engines interleaved: each engine once per
round, the engines taking turns to go first, one sample per query and round
kept, so drift of the machine over a run falls on every engine alike."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "benches"))
import tpch  # noqa: E402


def test_engines_take_turns_and_keep_one_sample_per_round():
    calls = []

    def engine(name):
        def run():
            calls.append(name)
            return {"q01": {"query": "q01", "ms": [float(len(calls))], "rows": len(calls)}}
        return run

    runs = tpch.interleaved({name: engine(name) for name in "abc"}, 3)
    assert calls == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert runs["a"]["q01"]["ms"] == [1.0, 6.0, 8.0]
    assert runs["b"]["q01"]["ms"] == [2.0, 4.0, 9.0]
    assert runs["c"]["q01"]["ms"] == [3.0, 5.0, 7.0]
    # Everything but the samples is the last round's (the answer checked).
    assert runs["a"]["q01"]["rows"] == 8
