"""Encoding splits and scoring them: validation mAP for model selection (validation queries against the training
items, never the query set), and the final query-vs-retrieval evaluation in both directions."""

from __future__ import annotations

import numpy as np

__all__ = ["encode_split", "validation_map", "test_evaluation", "PRECISION_KS"]

PRECISION_KS = (1, 5, 10, 20, 50, 100, 200, 500, 1000)


def encode_split(model, td, idx: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    return (model.encode_image(td.image_rows(idx), batch_size=batch_size),
            model.encode_text(td.text_rows(idx), batch_size=batch_size))


def validation_map(model, td, cfg) -> dict:
    """Tie-aware mAP@all of validation queries against the training items (I->T and T->I)."""
    from .. import metrics

    qi, qt = encode_split(model, td, td.val, cfg.eval_batch_size)
    di, dt = encode_split(model, td, td.train, cfg.eval_batch_size)
    ql, dl = td.labels[td.val], td.labels[td.train]
    i2t = float(metrics.mean_average_precision(qi, dt, ql, dl, ties="average"))
    t2i = float(metrics.mean_average_precision(qt, di, ql, dl, ties="average"))
    return {"val_map_i2t": i2t, "val_map_t2i": t2i, "val_map": 0.5 * (i2t + t2i)}


def test_evaluation(model, td, cfg) -> tuple[dict, dict]:
    """Codes of the query and retrieval splits and their metrics (mAP@all under both tie policies,
    precision@k, precision/recall by Hamming radius) for I->T and T->I."""
    from .. import metrics

    qi, qt = encode_split(model, td, td.query, cfg.eval_batch_size)
    ri, rt = encode_split(model, td, td.retrieval, cfg.eval_batch_size)
    codes = {"query_image": qi, "query_text": qt, "retrieval_image": ri, "retrieval_text": rt}
    ql, rl = td.labels[td.query], td.labels[td.retrieval]
    ks = [k for k in PRECISION_KS if k <= len(td.retrieval)]
    out = {}
    for direction, q, db in (("i2t", qi, rt), ("t2i", qt, ri)):
        pr = metrics.pr_by_radius(q, db, ql, rl)
        out[direction] = {
            "map_all_index": float(metrics.mean_average_precision(q, db, ql, rl, ties="index")),
            "map_all_average": float(metrics.mean_average_precision(q, db, ql, rl, ties="average")),
            "precision_at_k": {"k": ks, "precision": [float(v) for v in
                                                      np.asarray(metrics.precision_at_k(q, db, ql, rl, ks))]},
            "pr_by_radius": {"radius": [int(v) for v in np.asarray(pr[0])],
                             "precision": [float(v) for v in np.asarray(pr[1])],
                             "recall": [float(v) for v in np.asarray(pr[2])]},
        }
    return codes, out
