import numpy as np

import xmhash


def test_knn_small(benchmark):
    rng = np.random.default_rng(0)
    db = rng.integers(0, 256, (10_000, 8), dtype=np.uint8)
    q = db[:100]
    D, I = benchmark(xmhash.knn, q, db, 10)
    assert (I[:, 0] == np.arange(100)).all() and (D[:, 0] == 0).all()
