"""Request parsing and limits of the tracking service (no Ray): each malformed request is
an ApiError with its documented status and code; images are decoded in memory."""

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from raysys.serving.config import ServeConfig, is_loopback
from raysys.serving.protocol import (
    ApiError,
    check_token,
    decode_image,
    parse_create,
    parse_frames,
)
from raysys.serving.viewer import metrics_text

CFG = ServeConfig(model="ck", max_image_bytes=10_000, max_pixels=100 * 100, max_views=4)
JSON = "application/json"


def _png(w=32, h=24, colour=(10, 200, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), colour).save(buf, format="PNG")
    return buf.getvalue()


def _multipart(fields: dict[str, bytes], boundary="XyZ") -> tuple[bytes, str]:
    body = b"".join(b"--" + boundary.encode() + b"\r\nContent-Disposition: form-data; "
                    b'name="' + k.encode() + b'"; filename="f"\r\n\r\n' + v + b"\r\n"
                    for k, v in fields.items()) + b"--" + boundary.encode() + b"--\r\n"
    return body, f"multipart/form-data; boundary={boundary}"


def _err(fn, *a) -> ApiError:
    with pytest.raises(ApiError) as e:
        fn(*a)
    return e.value


def test_create_parses_and_refuses_with_codes():
    ok = parse_create(json.dumps({"expression": " a man ", "views": 3}).encode(), JSON, CFG)
    assert (ok.expression, ok.views, ok.category) == ("a man", 3, "person")
    cases = [
        ((b"{}", "text/plain"), 415, "unsupported_media_type"),
        ((b"{x", JSON), 400, "bad_json"),
        ((b"[1]", JSON), 422, "bad_json"),
        ((b'{"views": 2}', JSON), 422, "missing_field"),
        ((b'{"expression": "", "views": 2}', JSON), 422, "bad_expression"),
        ((json.dumps({"expression": "a" * 999, "views": 2}).encode(), JSON), 422,
         "expression_too_long"),
        ((b'{"expression": "\xff", "views": 2}', JSON), 422, "not_utf8"),
        ((b'{"expression": "a", "views": 0}', JSON), 422, "bad_views"),
        ((b'{"expression": "a", "views": true}', JSON), 422, "bad_views"),
        ((b'{"expression": "a", "views": 9}', JSON), 422, "too_many_views"),
        ((b'{"expression": "a", "views": 2, "category": "car"}', JSON), 422, "bad_category"),
    ]
    for (body, ct), status, code in cases:
        e = _err(parse_create, body, ct, CFG)
        assert (e.status, e.code) == (status, code), body
        assert e.body()["detail"]


def test_frames_multipart_and_json():
    png = _png()
    body, ct = _multipart({"seq": b"3", "view1": png, "view0": png})
    req = parse_frames(body, ct, CFG)
    assert req.seq == 3 and req.images == [png, png]
    b64 = base64.b64encode(png).decode()
    req = parse_frames(json.dumps({"seq": 0, "images": [b64]}).encode(), JSON, CFG)
    assert req.images == [png]
    img = decode_image(png, 0, CFG)
    assert img.shape == (24, 32, 3) and img.dtype == np.uint8 and (img[0, 0] == [10, 200, 30]).all()


def test_frames_refusals():
    png = _png()
    cases = [
        (_multipart({"view0": png}), 422, "missing_field"),
        (_multipart({"seq": b"-1", "view0": png}), 422, "bad_seq"),
        (_multipart({"seq": b"x", "view0": png}), 422, "bad_seq"),
        (_multipart({"seq": b"0"}), 422, "wrong_views"),
        (_multipart({"seq": b"0", "view0": png, "view2": png}), 422, "wrong_views"),
        (_multipart({"seq": b"0", "view0": b"\0" * 10_001}), 413, "image_too_large"),
        ((b"x", "multipart/form-data"), 400, "bad_multipart"),
        ((json.dumps({"seq": 0, "images": ["@@"]}).encode(), JSON), 422, "bad_base64"),
        ((json.dumps({"seq": 0, "images": [1]}).encode(), JSON), 422, "bad_images"),
        ((json.dumps({"seq": 0, "images": []}).encode(), JSON), 422, "wrong_views"),
        ((json.dumps({"seq": 0, "images": ["AA=="] * 5}).encode(), JSON), 422, "wrong_views"),
        ((b"x", "image/png"), 415, "unsupported_media_type"),
    ]
    for (body, ct), status, code in cases:
        e = _err(parse_frames, body, ct, CFG)
        assert (e.status, e.code) == (status, code), (ct, body[:40])


def test_images_corrupt_or_too_many_pixels():
    assert _err(decode_image, b"\xff\xd8garbage", 1, CFG).code == "bad_image"
    assert _err(decode_image, _png()[:40], 0, CFG).code == "bad_image"  # truncated
    gif = io.BytesIO()
    Image.new("RGB", (4, 4)).save(gif, format="GIF")
    assert _err(decode_image, gif.getvalue(), 0, CFG).code == "bad_image"  # JPEG/PNG only
    e = _err(decode_image, _png(200, 100), 0, CFG)
    assert (e.status, e.code) == (413, "image_too_large")


def test_token_and_loopback_rule():
    check_token(None, None)
    check_token("Bearer abc", "abc")
    for h in (None, "Bearer", "Bearer abd", "abc", "Basic abc"):
        e = _err(check_token, h, "abc")
        assert e.status == 401 and e.headers["WWW-Authenticate"] == "Bearer"
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")
    with pytest.raises(ValueError, match="token"):
        ServeConfig(model="ck", host="0.0.0.0")
    ServeConfig(model="ck", host="0.0.0.0", token="t")
    with pytest.raises(ValueError, match="replicas"):
        ServeConfig(model="ck", min_replicas=3, max_replicas=2)


def test_metrics_text_is_prometheus():
    text = metrics_text({"streams": 2, "frame_sets_total": 40, "frame_sets_per_second": 1.5,
                         "state_bytes": 1234, "expired": 1, "owners": ["a"]}, {200: 7, 404: 1})
    assert "# TYPE raysys_serve_streams gauge\nraysys_serve_streams 2\n" in text
    assert 'raysys_serve_responses_total{code="404"} 1' in text
    for ln in text.splitlines():
        assert ln.startswith("#") or len(ln.split()) == 2


def test_serve_command_options_and_app_args(tmp_path):
    from raysys.cli import build_parser
    from raysys.commands.serve import build_serve_config
    from raysys.serving.app import config_from_args

    tok = tmp_path / "token.txt"
    tok.write_text("abc123\n")
    args = build_parser("serve").parse_args(
        ["serve", "--model", "RUN/final", "--host", "0.0.0.0", "--token-file", str(tok),
         "--max-replicas", "4"])
    cfg = build_serve_config(args)
    assert (cfg.host, cfg.token, cfg.max_replicas, cfg.port) == ("0.0.0.0", "abc123", 4, 8000)
    assert "keep_masks" not in cfg.track and cfg.track["clip_frames"] == 8
    bare = build_parser("serve").parse_args(["serve", "--model", "m", "--host", "0.0.0.0"])
    with pytest.raises(ValueError, match="token"):
        build_serve_config(bare)
    # `serve run serve.app:build_app key=value ...` strings
    c = config_from_args({"model": "m", "max_replicas": "3", "ttl_s": "5.5",
                          "track": '{"clip_frames": 4}', "token_file": str(tok)})
    assert (c.max_replicas, c.ttl_s, c.track, c.token) == (3, 5.5, {"clip_frames": 4}, "abc123")
    with pytest.raises(ValueError, match="unknown setting"):
        config_from_args({"model": "m", "replicas": "2"})
