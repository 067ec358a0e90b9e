"""The summary diff finds every changed leaf, treats NaN as equal, and can leave out throughput."""

import json
import math

from analysis.compare_summaries import differences, main


def test_differences_name_each_changed_leaf_and_missing_key():
    old = {"a": {"b": [1.0, math.nan], "c": 2}, "gone": 1}
    new = {"a": {"b": [1.0, math.nan], "c": 3}, "new": 1}
    assert differences(old, new) == [
        ("/a/c", "2 -> 3"),
        ("/gone", "only in the first"),
        ("/new", "only in the second"),
    ]


def test_results_only_ignores_throughput(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"target": {"warm": {"final_val_loss": 1.5, "tokens_per_s": 10.0}}}))
    b.write_text(json.dumps({"target": {"warm": {"final_val_loss": 1.5, "tokens_per_s": 12.0}}}))
    assert main([str(a), str(b), "--results-only"]) == 0
    assert main([str(a), str(b)]) == 1
