"""The tracking service end to end over HTTP on a local Ray: served tracks equal ``raysys
track``'s, bad requests get their documented 4xx while another stream goes on, seq makes
re-sends idempotent, TTL expiry, metrics, and a replica killed mid-stream.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import requests

from raysys.io import crtrack
from raysys.io.dataset import DatasetLayout
from raysys.serving.client import StreamClient, multipart_frames

pytestmark = pytest.mark.slow


def _scene(service):
    """(unit, frame numbers, per frame set the views' JPEG bytes) of the generated scene."""
    from raysys.tracking.run import plan_track_units

    layout = DatasetLayout(service.data, "In-domain", "test")
    unit = plan_track_units(layout)[0]
    paths = {v: dict(crtrack.list_frames(layout.view_dir(unit.scene, v))) for v in unit.views}
    fnos = sorted(set.intersection(*(set(p) for p in paths.values())))
    frames = [[paths[v][f].read_bytes() for v in unit.views] for f in fnos]
    return layout, unit, fnos, frames


@pytest.fixture(scope="module")
def reference(service):
    """``raysys track``'s predictions (track_unit, in this process) of the scene."""
    from dataclasses import replace

    from raysys.tracking.config import TrackConfig
    from raysys.tracking.run import track_unit
    from raysys.viewsam.checkpoint import load_viewsam_checkpoint

    layout, unit, fnos, frames = _scene(service)
    model = load_viewsam_checkpoint(service.checkpoint, device="cpu").model
    rows, n = track_unit(model, layout, unit, replace(TrackConfig(**service.cfg.track)))
    return unit, fnos, frames, rows


def _rows(tracks, fnos, views):
    """Served tracks as ``raysys track`` rows per view: (frame no, id, x1, y1, x2, y2)."""
    out = {v: [] for v in views}
    for t in tracks:
        out[views[t["view"]]].append((fnos[t["frame"]], t["id"], *t["box"]))
    return {v: np.asarray(r, dtype=np.float64).reshape(-1, 6) for v, r in out.items()}


def _same(got, want):
    for v in want:
        assert len(want[v]), "present-forced SAM2 should give tracks"
        np.testing.assert_array_equal(got[v][:, :2], want[v][:, :2])  # frames and ids
        np.testing.assert_allclose(got[v][:, 2:], want[v][:, 2:], atol=1e-3)


def test_served_tracks_equal_raysys_track(service, reference):
    unit, fnos, frames, want = reference
    c = StreamClient(service.url, service.token)
    sid = c.create(unit.text, len(unit.views))
    tracks = c.run(sid, frames)
    assert c.rewinds == 0 and c.retries == 0
    _same(_rows(tracks, fnos, unit.views), want)
    # deleted: the id is gone
    r = c.session.get(f"{service.url}/v1/streams/{sid}")
    assert r.status_code == 404 and r.json()["error"] == "unknown_stream"


def test_pipelined_stream_equals_raysys_track(service, reference):
    """A client with 4 frame sets in flight: they may reach the replica in any order (two
    hops), the replica applies them in seq order, and the tracks equal ``raysys track``'s
    with nothing refused."""
    unit, fnos, frames, want = reference
    c = StreamClient(service.url, service.token)
    sid = c.create(unit.text, len(unit.views))
    tracks = c.run(sid, frames, depth=4)
    assert c.rewinds == 0 and c.retries == 0
    _same(_rows(tracks, fnos, unit.views), want)


def test_concurrent_streams_share_encoder_batches_and_equal_raysys_track(service, reference):
    """Two streams in lockstep on the one replica: their clip-completing frame sets reach
    it together, so the per-clip encoder runs their clips as one batch (``@serve.batch``),
    and each stream's tracks still equal ``raysys track``'s."""
    unit, fnos, frames, want = reference
    clients = [StreamClient(service.url, service.token) for _ in range(2)]
    sids = [c.create(unit.text, len(unit.views)) for c in clients]
    barrier = threading.Barrier(2, timeout=300)
    got: dict = {}

    def go(j):
        got[j] = clients[j].run(sids[j], frames, before=lambda seq: barrier.wait(),
                                delete=False)

    threads = [threading.Thread(target=go, args=(j,)) for j in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    info = [c.session.get(f"{service.url}/v1/streams/{sid}").json()
            for c, sid in zip(clients, sids, strict=True)]
    assert info[0]["replica"] == info[1]["replica"]
    assert info[0]["replica_encoder"]["max_batch"] >= 2, info[0]
    text = clients[0].session.get(service.url + "/metrics").text
    vals = {ln.split()[0]: float(ln.split()[1]) for ln in text.splitlines()
            if ln and not ln.startswith("#")}
    assert vals["raysys_serve_encode_batch_max"] >= 2
    assert vals["raysys_serve_encoded_clips_total"] > vals["raysys_serve_encode_batches_total"]
    for j, (c, sid) in enumerate(zip(clients, sids, strict=True)):
        r = c.session.delete(f"{service.url}/v1/streams/{sid}", timeout=c.timeout)
        assert r.status_code == 200 and c.rewinds == 0
        _same(_rows(got[j] + r.json()["tracks"], fnos, unit.views), want)


def _post(service, path, token=True, **kw):
    h = kw.pop("headers", {})
    if token:
        h["Authorization"] = f"Bearer {service.token}"
    return requests.post(service.url + path, headers=h, timeout=120, **kw)


def _bad_requests(service, sid, frames):
    """(what, response, status wanted, error code wanted) of malformed requests."""
    f0 = frames[0]
    fr = f"/v1/streams/{sid}/frames"
    big = b"\xff\xd8" + b"\0" * (service.cfg.max_image_bytes + 1)
    import io

    from PIL import Image

    huge = io.BytesIO()
    Image.new("RGB", (2000, 1100)).save(huge, format="PNG")
    j = lambda seq, imgs: {"seq": seq, "images": imgs}  # noqa: E731
    b64 = __import__("base64").b64encode
    good = [b64(b).decode() for b in f0]
    cases = [
        ("no token", _post(service, "/v1/streams", token=False, json={"expression": "a",
                                                                      "views": 2}), 401,
         "unauthorized"),
        ("wrong token", _post(service, "/v1/streams", token=False, json={"expression": "a",
         "views": 2}, headers={"Authorization": "Bearer nope"}), 401, "unauthorized"),
        ("text/plain create", _post(service, "/v1/streams", data=b"hi",
                                    headers={"Content-Type": "text/plain"}), 415,
         "unsupported_media_type"),
        ("not json", _post(service, "/v1/streams", data=b"{nope",
                           headers={"Content-Type": "application/json"}), 400, "bad_json"),
        ("missing views", _post(service, "/v1/streams", json={"expression": "a man"}), 422,
         "missing_field"),
        ("empty expression", _post(service, "/v1/streams", json={"expression": "  ",
                                                                  "views": 2}), 422,
         "bad_expression"),
        ("long expression", _post(service, "/v1/streams", json={"expression": "a" * 10_000,
                                                                 "views": 2}), 422,
         "expression_too_long"),
        ("not utf-8", _post(service, "/v1/streams", data=b'{"expression": "\xff\xfe",'
                            b' "views": 2}', headers={"Content-Type": "application/json"}),
         422, "not_utf8"),
        ("too many views", _post(service, "/v1/streams", json={"expression": "a man",
                                                               "views": 99}), 422,
         "too_many_views"),
        ("text/plain frames", _post(service, fr, data=b"x",
                                    headers={"Content-Type": "text/plain"}), 415,
         "unsupported_media_type"),
        ("missing seq", _post(service, fr, files={"view0": ("a.jpg", f0[0]),
                                                  "view1": ("b.jpg", f0[1])}), 422,
         "missing_field"),
        ("missing images", _post(service, fr, json={"seq": 0}), 422, "missing_field"),
        ("one view of two", _post(service, fr, files=multipart_frames(0, f0[:1])), 422,
         "wrong_views"),
        ("three views of two", _post(service, fr, json=j(0, good + good[:1])), 422,
         "wrong_views"),
        ("corrupt image", _post(service, fr, files=multipart_frames(0, [f0[0], b"\xff\xd8"
                                                                    b"garbage"])), 422,
         "bad_image"),
        ("not base64", _post(service, fr, json=j(0, [good[0], "!!notbase64!!"])), 422,
         "bad_base64"),
        ("too many bytes", _post(service, fr, files=multipart_frames(0, [f0[0], big])), 413,
         "image_too_large"),
        ("too many pixels", _post(service, fr, files=multipart_frames(
            0, [f0[0], huge.getvalue()])), 413, "image_too_large"),
        ("negative seq", _post(service, fr, files=multipart_frames(-1, f0)), 422, "bad_seq"),
        ("gapped seq", _post(service, fr, files=multipart_frames(7, f0)), 409, "seq_gap"),
        ("unknown stream", _post(service, "/v1/streams/" + "0" * 32 + "/frames",
                                 files=multipart_frames(0, f0)), 404, "unknown_stream"),
        ("malformed stream id", _post(service, "/v1/streams/../../etc/frames",
                                      files=multipart_frames(0, f0)), 404, None),
        ("wrong method", requests.put(f"{service.url}/v1/streams/{sid}", timeout=60,
                                      headers={"Authorization": f"Bearer {service.token}"}),
         405, "method_not_allowed"),
    ]
    # a seq accepted long ago (its answer no longer kept) after the stream moved on
    return cases


def test_bad_requests_get_their_4xx_while_another_stream_is_served(service, reference):
    unit, fnos, frames, want = reference
    other = StreamClient(service.url, service.token)
    osid = other.create(unit.text, 2)
    got: dict = {}
    t = threading.Thread(target=lambda: got.update(t=other.run(osid, frames)))
    t.start()
    c = StreamClient(service.url, service.token)
    sid = c.create("a person", 2)
    cases = _bad_requests(service, sid, frames)
    # repeated seq: idempotent within the answers kept
    a = c.send(sid, 0, frames[0])
    b = c.send(sid, 0, frames[0])
    assert a.status_code == b.status_code == 200 and a.json() == b.json()
    info = c.session.get(f"{service.url}/v1/streams/{sid}").json()
    assert info["frames_seen"] == 1  # applied once
    t.join(timeout=600)
    assert len(cases) >= 20
    for what, r, status, code in cases:
        assert r.status_code == status, (what, r.status_code, r.text[:300])
        if code is not None:
            body = r.json()
            assert body["error"] == code and body["detail"], (what, body)
    # the other stream lost nothing: its tracks equal the reference
    _same(_rows(got["t"], fnos, unit.views), want)


def test_health_metrics_info_and_ttl(service, reference):
    import ray

    from raysys.serving.store import NAMESPACE, STORE_NAME

    unit, fnos, frames, _ = reference
    assert requests.get(service.url + "/healthz", timeout=30).json()["status"] == "ok"
    assert requests.get(service.url + "/metrics", timeout=30).status_code == 401
    c = StreamClient(service.url, service.token)
    sid = c.create(unit.text, 2)
    c.run(sid, frames[:5], delete=False)  # one clip of 4 checkpointed, one frame buffered
    info = c.session.get(f"{service.url}/v1/streams/{sid}").json()
    assert info["frames_seen"] == 5 and info["state_bytes"] > 0 and info["replica"]
    text = c.session.get(service.url + "/metrics").text
    vals = {ln.split()[0]: float(ln.split()[1]) for ln in text.splitlines()
            if ln and not ln.startswith("#")}
    assert vals["raysys_serve_streams"] >= 1 and vals["raysys_serve_state_bytes"] > 0
    assert vals["raysys_serve_frame_sets_total"] >= 4
    store = ray.get_actor(STORE_NAME, namespace=NAMESPACE)
    ray.get(store.configure.remote(1.0, service.cfg.max_streams))
    try:
        time.sleep(2.0)
        r = c.send(sid, 5, frames[5])
        assert r.status_code == 410 and r.json()["error"] == "stream_expired"
    finally:
        ray.get(store.configure.remote(service.cfg.ttl_s, service.cfg.max_streams))
    assert json.loads(c.session.get(f"{service.url}/v1/streams/{sid}").text)["error"] == \
        "stream_expired"


def _screenshot(url: str, out) -> np.ndarray:
    import os
    import subprocess
    import tempfile

    from PIL import Image

    with tempfile.TemporaryDirectory() as prof:
        subprocess.run(["/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-quic", "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={prof}", "--window-size=480,200",
                        "--virtual-time-budget=8000", f"--screenshot={out}", url],
                       capture_output=True, timeout=120, check=False,
                       env={**os.environ, "HOME": prof})
    assert out.is_file(), "chromium wrote no screenshot"
    return np.asarray(Image.open(out).convert("RGB"))


def _box_pixels(img) -> int:
    from raysys.serving.viewer import PALETTE

    cols = [tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in PALETTE]
    return int(sum((img == np.array(c, np.uint8)).all(-1).sum() for c in cols))


def test_viewer_draws_boxes_in_headless_chromium(service, reference, tmp_path):
    import os
    import shutil

    if not shutil.which("chromium") and not os.path.exists("/usr/bin/chromium"):
        if os.environ.get("RAYSYS_REQUIRE_BROWSER"):
            pytest.fail("RAYSYS_REQUIRE_BROWSER is set but /usr/bin/chromium is missing "
                        "(scripts/setup.sh installs it with apt-get)")
        pytest.skip("no /usr/bin/chromium (set RAYSYS_REQUIRE_BROWSER to make this fail)")
    unit, fnos, frames, _ = reference
    c = StreamClient(service.url, service.token)
    sid = c.create(unit.text, 2)
    c.run(sid, frames[:4], delete=False)  # one clip tracked
    view = c.session.get(f"{service.url}/v1/streams/{sid}/view").json()
    assert view["frame"] == 3 and view["tracks"] and len(view["images"]) == 2
    page = requests.get(service.url + "/", timeout=30)
    assert page.status_code == 200 and "<canvas" in page.text
    shot = _screenshot(f"{service.url}/?stream={sid}#token={service.token}",
                       tmp_path / "view.png")
    blank = _screenshot(f"{service.url}/?stream={'0' * 32}#token={service.token}",
                        tmp_path / "none.png")
    assert _box_pixels(shot) > 100, "the viewer drew no boxes"
    assert _box_pixels(blank) < 10  # an unknown stream: no mosaic, no boxes
    c.session.delete(f"{service.url}/v1/streams/{sid}")


def test_killed_replica_mid_stream_loses_nothing(service, reference):
    """The replica holding a stream dies mid-clip (``ray.kill`` on its actor); the stream
    is restored from its last clip-boundary checkpoint on the replica Serve starts in its
    place, the client re-sends the unfinished clip's frame sets (409 with expected_seq),
    and tracks and ids equal an uninterrupted run's. The client pipelines (2 in flight),
    so the frame set in flight when the replica dies is drained and re-sent too."""
    import ray

    unit, fnos, frames, want = reference
    c = StreamClient(service.url, service.token)
    sid = c.create(unit.text, 2)
    killed = []

    def kill(seq):
        if seq == 6 and not killed:  # clip 0..3 checkpointed, 4 and 5 buffered
            name = c.session.get(f"{service.url}/v1/streams/{sid}").json()["replica"]
            ray.kill(ray.get_actor(name, namespace="serve"), no_restart=True)
            killed.append(name)

    tracks = c.run(sid, frames, before=kill, depth=2)
    assert killed and c.rewinds >= 1
    after = c.session.get(f"{service.url}/v1/streams/{sid}")
    assert after.status_code == 404  # deleted at the end of run
    _same(_rows(tracks, fnos, unit.views), want)
