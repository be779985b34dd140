"""Export and restore the state of an online tracker, as plain arrays and JSON metadata.

A :class:`~raysys.tracking.tracker.MultiExpressionTracker` carries, from frame set to
frame set (paper §3.3, inference): per expression, its live single-view tracks with their
SAM2 memory banks (the memory features, their position encodings and object pointers of
the conditioning frame and the last ``memory_frames`` frames: the memory attention's input
of Eq. 19), the identities' prototypes (EMAs of clip-mean CGCT embeddings, Eq. 10-11) and
the track and id numbering; the view tokens' EMA ``e_{t-1}`` (Eq. 4); and the buffered
frame sets of an unfinished clip. :func:`export_state` writes all of it as a flat
``{name: ndarray}`` of arrays plus a JSON-able dict that names them (no pickle: the arrays
save with ``np.savez`` and the metadata with ``json``); :func:`restore_state` builds a new
tracker on a model that continues exactly as the exported one would have (the same
tensors, bit for bit, on the model's device).

Nothing here is tied to a model: the model and the optional proposal function are given
again on restore (a checkpoint of the tracker is not a checkpoint of the model).
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from typing import Any

import numpy as np
import torch

from raysys.tracking.config import TrackConfig
from raysys.tracking.tracks import _Track

__all__ = ["export_state", "restore_state", "state_nbytes", "STATE_VERSION"]

STATE_VERSION = 1
_BANK_KEYS = ("cond_frame_outputs", "non_cond_frame_outputs")


class _Arrays:
    """Collects tensors into a flat ``{name: ndarray}`` (dtype kept; bfloat16 as its bits)."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def put(self, name: str, x) -> dict:
        if isinstance(x, torch.Tensor):
            t = x.detach().cpu()
            dtype = str(t.dtype).removeprefix("torch.")
            a = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().copy()
            self.arrays[name] = a
            return {"array": name, "torch": dtype}
        self.arrays[name] = np.ascontiguousarray(x)
        return {"array": name}


def _get(arrays: dict[str, np.ndarray], ref: dict, device) -> torch.Tensor | np.ndarray:
    a = arrays[ref["array"]]
    if "torch" not in ref:
        return np.array(a)
    t = torch.from_numpy(np.array(a))
    if ref["torch"] == "bfloat16":
        t = t.view(torch.bfloat16)
    return t.to(device)


def _export_bank(out: _Arrays, prefix: str, bank: dict) -> dict:
    meta: dict[str, list] = {}
    for key in _BANK_KEYS:
        rows = []
        for f, entry in bank[key].items():
            p = f"{prefix}/{key}/{f}"
            rows.append({"frame": int(f),
                         "maskmem_features": out.put(p + "/feat", entry["maskmem_features"]),
                         "maskmem_pos_enc": [out.put(f"{p}/pos{j}", x) for j, x in
                                             enumerate(entry["maskmem_pos_enc"])],
                         "obj_ptr": out.put(p + "/ptr", entry["obj_ptr"])})
        meta[key] = rows
    return meta


def _restore_bank(arrays, meta: dict, device) -> dict:
    return {key: {r["frame"]: {"maskmem_features": _get(arrays, r["maskmem_features"], device),
                               "maskmem_pos_enc": [_get(arrays, x, device)
                                                   for x in r["maskmem_pos_enc"]],
                               "obj_ptr": _get(arrays, r["obj_ptr"], device)}
                  for r in meta[key]} for key in _BANK_KEYS}


def _export_track(out: _Arrays, prefix: str, tr: _Track) -> dict:
    return {"tid": tr.tid, "view": tr.view, "start": tr.start, "lost": tr.lost,
            "gid": tr.gid, "refer_sum": tr.refer_sum, "refer_n": tr.refer_n,
            "box": out.put(prefix + "/box", tr.box),
            "emb": [out.put(f"{prefix}/emb{j}", np.asarray(e)) for j, e in enumerate(tr.emb)],
            "bank": _export_bank(out, prefix + "/bank", tr.bank)}


def _restore_track(arrays, m: dict, device) -> _Track:
    return _Track(tid=m["tid"], view=m["view"], start=m["start"],
                  box=_get(arrays, m["box"], device),
                  bank=_restore_bank(arrays, m["bank"], device), lost=m["lost"], gid=m["gid"],
                  refer_sum=m["refer_sum"], refer_n=m["refer_n"],
                  emb=[_get(arrays, e, device) for e in m["emb"]])


def export_state(tracker) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The whole state of ``tracker`` (a :class:`MultiExpressionTracker`) as
    ``(arrays, meta)``: ``arrays`` flat named ndarrays, ``meta`` JSON-able (settings,
    numbering, and the names of the arrays). The proposal function is not part of it."""
    out = _Arrays()
    queries = []
    for e, q in enumerate(tracker.queries):
        if q.seen:
            raise RuntimeError("tracker state is exported between frame sets, not mid-clip")
        protos = [[int(g), out.put(f"q{e}/proto/{g}", p)]
                  for g, p in q.identities.prototypes.items()]
        queries.append({
            "expression": q.expression, "next_tid": q.next_tid,
            "identities": {"next_id": q.identities.next_id, "prototypes": protos},
            "tracks": [[_export_track(out, f"q{e}/v{k}/t{tr.tid}", tr) for tr in tracks]
                       for k, tracks in enumerate(q.tracks)]})
    buf = None
    if tracker.buffer:
        buf = out.put("buffer", np.stack([np.stack(fs) for fs in tracker.buffer]))
    meta = {
        "version": STATE_VERSION, "kind": type(tracker).__name__,
        "expressions": list(tracker.expressions), "num_views": tracker.num_views,
        "view_ids": [int(i) for i in tracker.view_ids[0].tolist()],
        "config": dataclasses.asdict(tracker.cfg), "queries": queries,
        "view_state": None if tracker.view_state is None else
        out.put("view_state", tracker.view_state),
        "text_ref": None if tracker.text_ref is None else out.put("text_ref", tracker.text_ref),
        "buffer": buf, "next_frame": tracker.next_frame,
        "frame_size": None if tracker.frame_size is None else list(tracker.frame_size)}
    return out.arrays, meta


def restore_state(model, arrays: dict[str, np.ndarray], meta: dict[str, Any],
                  proposals=None):
    """A new tracker on ``model`` holding the state of :func:`export_state`'s
    ``(arrays, meta)``; it continues the stream exactly where the exported tracker was.

    Raises:
        ValueError: ``meta`` is of another version or misses arrays it names.
    """
    from raysys.tracking.tracker import MultiExpressionTracker, ViewSAMTracker

    if meta.get("version") != STATE_VERSION:
        raise ValueError(f"tracker state version {meta.get('version')!r}, this code reads "
                         f"{STATE_VERSION}")
    cfg = TrackConfig(**meta["config"])
    if meta["kind"] == "ViewSAMTracker":
        tr = ViewSAMTracker(model, meta["expressions"][0], meta["num_views"], cfg,
                            meta["view_ids"], proposals)
    else:
        tr = MultiExpressionTracker(model, meta["expressions"], meta["num_views"], cfg,
                                    meta["view_ids"], proposals)
    dev = tr.device
    try:
        for q, m in zip(tr.queries, meta["queries"], strict=True):
            q.next_tid = m["next_tid"]
            q.identities.next_id = m["identities"]["next_id"]
            q.identities.prototypes = OrderedDict(
                (g, _get(arrays, ref, dev)) for g, ref in m["identities"]["prototypes"])
            q.tracks = [[_restore_track(arrays, t, dev) for t in view] for view in m["tracks"]]
        get = (lambda k: None if meta[k] is None else _get(arrays, meta[k], dev))  # noqa: E731
        tr.view_state, tr.text_ref = get("view_state"), get("text_ref")
        buf = None if meta["buffer"] is None else _get(arrays, meta["buffer"], dev)
    except KeyError as exc:
        raise ValueError(f"tracker state is missing array {exc}") from None
    tr.buffer = [] if buf is None else [list(fs) for fs in buf]
    tr.next_frame = meta["next_frame"]
    tr.frame_size = None if meta["frame_size"] is None else tuple(meta["frame_size"])
    return tr


def state_nbytes(arrays: dict[str, np.ndarray]) -> int:
    """Bytes of an exported state's arrays."""
    return sum(a.nbytes for a in arrays.values())
