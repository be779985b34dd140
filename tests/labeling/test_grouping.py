"""Grouping descriptions into referring expressions, with the general sentences."""

import numpy as np
import pytest

from raysys.labeling.grouping import group_descriptions


def _unit(n, d=8, seed=0):
    e = np.random.default_rng(seed).normal(size=(n, d))
    return (e / np.linalg.norm(e, axis=1, keepdims=True)).astype(np.float32)


def test_specific_descriptions_group_by_text():
    texts = ["A man wearing a red coat", "A man wearing a blue coat", "A man wearing a red coat"]
    out = group_descriptions("S", [1, 2, 3], texts, _unit(3), threshold=0.99)
    assert {(e.text, tuple(sorted(e.global_ids))) for e in out} == {
        ("A man wearing a red coat", (1, 3)), ("A man wearing a blue coat", (2,))}


def test_general_sentences_refer_to_every_trajectory_they_fit():
    texts = ["A man wearing a green coat and black trousers",
             "A man wearing a green coat and gray trousers",
             "A man wearing a green coat",  # specific text that is also a general one
             "A man wearing a red coat and black trousers"]
    general = [["A man wearing a green coat"], ["A man wearing a green coat"], [],
               ["A man wearing a red coat"]]
    out = group_descriptions("S", [1, 2, 3, 4], texts, _unit(4), 0.99, general)
    got = {e.text: sorted(e.global_ids) for e in out}
    assert got == {"A man wearing a green coat and black trousers": [1],
                   "A man wearing a green coat and gray trousers": [2],
                   "A man wearing a green coat": [1, 2, 3],
                   "A man wearing a red coat and black trousers": [4],
                   "A man wearing a red coat": [4]}
    assert len(out) == len({e.text for e in out})  # one expression per text
    # without general sentences: only the specific expressions
    assert len(group_descriptions("S", [1, 2, 3, 4], texts, _unit(4), 0.99)) == 4


def test_general_sentences_must_match_the_trajectories():
    with pytest.raises(ValueError, match="2 lists of general sentences for 3 trajectories"):
        group_descriptions("S", [1, 2, 3], ["a", "b", "c"], _unit(3), 0.99, [[], []])
