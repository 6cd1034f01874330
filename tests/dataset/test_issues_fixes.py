"""Review fixes in ``openfer dataset issues``: vote shares matched to the model's classes by name."""

from pathlib import Path

import numpy as np
from openfer.dataset.confident import find_label_issues
from openfer.dataset.issues import IssuesOptions, SplitIssues, _rows

def test_vote_shares_follow_the_class_names_not_their_order():
    classes = ("sadness", "happiness", "engagement")  # not the FER+ order; engagement has no vote column
    given = np.array([0, 0, 1, 2, 1, 0])
    probs = np.array([[0.05, 0.9, 0.05], [0.9, 0.05, 0.05], [0.05, 0.9, 0.05],
                      [0.85, 0.1, 0.05], [0.1, 0.85, 0.05], [0.8, 0.1, 0.1]])
    res = find_label_issues(given, probs)
    votes = np.zeros((6, 10), np.float32)
    votes[:, 1], votes[:, 3] = 8, 2  # FER+ columns: happiness 8 votes, sadness 2
    si = SplitIssues("test", "model", tuple(Path(f"/d/img{i}.png") for i in range(6)), given, probs, res,
                     votes, {})
    rows = {r["path"]: r for r in _rows(si, Path("/d"), classes)}
    r0 = rows["img0.png"]  # given sadness, suggested happiness
    assert (r0["given"], r0["suggested"]) == ("sadness", "happiness")
    assert (r0["vote_share_given"], r0["vote_share_suggested"]) == (0.2, 0.8)
    r3 = rows["img3.png"]  # given engagement (no FER+ vote column), suggested sadness
    assert (r3["given"], r3["suggested"]) == ("engagement", "sadness")
    assert (r3["vote_share_given"], r3["vote_share_suggested"]) == ("", 0.2)
