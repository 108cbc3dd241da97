"""The in-memory synthetic splits used by the benchmarks and the GPU checks."""

import numpy as np

from spherereid.data.synthetic_arrays import synthetic_splits


def test_splits_follow_the_market_protocol_layout():
    s = synthetic_splits(identities=4, distractors=3, junk=2, stored=(32, 16), draw=(32, 16))
    train, query, gallery = s["train"], s["query"], s["gallery"]
    assert train.images.dtype == np.uint8 and train.images.shape[1:] == (32, 16, 3)
    assert sorted(set(train.pids.tolist())) == [0, 1, 2, 3]  # labels 0..C-1 for the classifier
    assert (gallery.pids == 0).sum() == 3 and (gallery.pids == -1).sum() == 2
    assert set(query.pids.tolist()) <= set(gallery.pids.tolist()) and (query.pids > 0).all()
    assert len(query.images) == len(query.pids) == len(query.camids) and query.camids.min() >= 1
    again = synthetic_splits(identities=4, distractors=3, junk=2, stored=(32, 16), draw=(32, 16))
    assert np.array_equal(again["gallery"].images, gallery.images)  # drawn from the seed alone
