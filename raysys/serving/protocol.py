"""The serving API's requests: parsing, limits and errors, with no Ray and no filesystem.

Every refused request is an :class:`ApiError`: a 4xx status, a stable ``code`` and a
``detail`` saying what is wrong and how to fix it; the HTTP layer writes it as
``{"error": code, "detail": detail}``. Images are decoded from the request's bytes in
memory (PIL, JPEG or PNG only); the pixel limit is checked on the header, before decoding.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP

import numpy as np

from raysys.serving.config import ServeConfig

__all__ = ["ApiError", "CreateRequest", "FramesRequest", "parse_create", "parse_frames",
           "decode_image", "check_token", "STREAM_ID"]

STREAM_ID = re.compile(r"^[0-9a-f]{32}$")


class ApiError(Exception):
    """A refused request: HTTP ``status`` (4xx), error ``code``, ``detail`` for the user."""

    def __init__(self, status: int, code: str, detail: str, headers: dict | None = None,
                 **extra) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict:
        return {"error": self.code, "detail": self.detail, **self.extra}

    def fields(self) -> dict:
        """Everything needed to raise it again in another process (:meth:`from_fields`)."""
        return {"status": self.status, "code": self.code, "detail": self.detail,
                "headers": self.headers, "extra": self.extra}

    @classmethod
    def from_fields(cls, f: dict) -> ApiError:
        return cls(f["status"], f["code"], f["detail"], f["headers"], **f["extra"])


@dataclass(frozen=True)
class CreateRequest:
    expression: str
    views: int
    category: str


@dataclass(frozen=True)
class FramesRequest:
    seq: int
    images: list[bytes]  # encoded (JPEG or PNG), one per view


def _media(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def _json_body(body: bytes, content_type: str | None, cfg: ServeConfig) -> dict:
    if _media(content_type) != "application/json":
        raise ApiError(415, "unsupported_media_type",
                       f"content type {content_type!r}: send application/json")
    if len(body) > cfg.max_request_bytes:
        raise ApiError(413, "request_too_large", f"{len(body)} bytes; at most "
                       f"{cfg.max_request_bytes} per request")
    try:
        obj = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise ApiError(422, "not_utf8", "the request body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ApiError(400, "bad_json", f"the body is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ApiError(422, "bad_json", "the body must be a JSON object")
    return obj


def parse_create(body: bytes, content_type: str | None, cfg: ServeConfig) -> CreateRequest:
    """``{"expression": str, "views": int, "category": "person"}``."""
    obj = _json_body(body, content_type, cfg)
    missing = [k for k in ("expression", "views") if k not in obj]
    if missing:
        raise ApiError(422, "missing_field", f"missing {', '.join(missing)}: send "
                       '{"expression": "a man in a red coat", "views": 3}')
    expr, views, cat = obj["expression"], obj["views"], obj.get("category", "person")
    if not isinstance(expr, str) or not expr.strip():
        raise ApiError(422, "bad_expression", "expression must be a non-empty sentence")
    if len(expr) > cfg.max_expression_chars:
        raise ApiError(422, "expression_too_long", f"expression has {len(expr)} characters; "
                       f"at most {cfg.max_expression_chars}")
    if "\x00" in expr or "\ufffd" in expr:
        raise ApiError(422, "not_utf8", "expression holds NUL or undecodable characters")
    if not isinstance(views, int) or isinstance(views, bool) or views < 1:
        raise ApiError(422, "bad_views", f"views must be an integer >= 1, got {views!r}")
    if views > cfg.max_views:
        raise ApiError(422, "too_many_views", f"{views} views; at most {cfg.max_views}")
    if cat != "person":
        raise ApiError(422, "bad_category", f"category {cat!r}: only 'person' is tracked")
    return CreateRequest(expr.strip(), views, cat)


def _seq(value) -> int:
    if isinstance(value, (bytes, str)):
        try:
            value = int(value.strip())
        except ValueError:
            raise ApiError(422, "bad_seq", f"seq must be an integer, got {value!r}") from None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ApiError(422, "bad_seq", f"seq must be an integer, got {value!r}")
    if value < 0:
        raise ApiError(422, "bad_seq", f"seq must be >= 0 (0, 1, 2, ...), got {value}")
    return value


def _multipart(body: bytes, content_type: str) -> dict[str, bytes]:
    if "boundary=" not in content_type:
        raise ApiError(400, "bad_multipart", "multipart/form-data without a boundary")
    msg = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    if not msg.is_multipart() or msg.defects:
        raise ApiError(400, "bad_multipart", "the multipart body could not be parsed")
    out = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            out[str(name)] = part.get_payload(decode=True) or b""
    return out


def parse_frames(body: bytes, content_type: str | None, cfg: ServeConfig) -> FramesRequest:
    """One synchronised frame set: multipart fields ``seq``, ``view0`` ... ``view{V-1}``, or
    JSON ``{"seq": int, "images": [base64, ...]}`` (the stream's replica checks ``V``)."""
    media = _media(content_type)
    if len(body) > cfg.max_request_bytes:
        raise ApiError(413, "request_too_large", f"{len(body)} bytes; at most "
                       f"{cfg.max_request_bytes} per request")
    if media == "multipart/form-data":
        fields = _multipart(body, content_type or "")
        if "seq" not in fields:
            raise ApiError(422, "missing_field", "missing the multipart field seq")
        seq = _seq(fields["seq"].decode("ascii", "replace"))
        got = {k for k in fields if re.fullmatch(r"view\d+", k)}
        want = [f"view{k}" for k in range(len(got))]
        if not got or got != set(want):
            raise ApiError(422, "wrong_views", "send one field per view, view0 ... "
                           f"view{{V-1}}; got {', '.join(sorted(got)) or 'none'}")
        images = [fields[k] for k in want]
    elif media == "application/json":
        obj = _json_body(body, content_type, cfg)
        if "seq" not in obj or "images" not in obj:
            raise ApiError(422, "missing_field",
                           'send {"seq": int, "images": [base64 JPEG/PNG, one per view]}')
        seq = _seq(obj["seq"])
        imgs = obj["images"]
        if not isinstance(imgs, list) or not all(isinstance(i, str) for i in imgs):
            raise ApiError(422, "bad_images", "images must be a list of base64 strings")
        if not imgs:
            raise ApiError(422, "wrong_views", "images is empty: send one per view")
        try:
            images = [base64.b64decode(i, validate=True) for i in imgs]
        except (binascii.Error, ValueError):
            raise ApiError(422, "bad_base64", "an image is not valid base64") from None
    else:
        raise ApiError(415, "unsupported_media_type", f"content type {content_type!r}: send "
                       "multipart/form-data (seq, view0, ...) or application/json")
    if len(images) > cfg.max_views:
        raise ApiError(422, "wrong_views", f"{len(images)} images; at most {cfg.max_views}")
    for k, b in enumerate(images):
        if len(b) > cfg.max_image_bytes:
            raise ApiError(413, "image_too_large", f"view {k}: {len(b)} bytes; at most "
                           f"{cfg.max_image_bytes}")
    return FramesRequest(seq, images)


def decode_image(data: bytes, view: int, cfg: ServeConfig) -> np.ndarray:
    """A JPEG or PNG as an ``(H, W, 3)`` uint8 RGB array; 413 above the pixel limit, 422 if
    it is not a readable JPEG/PNG."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data), formats=("JPEG", "PNG")) as im:
            w, h = im.size
            if w * h > cfg.max_pixels:
                raise ApiError(413, "image_too_large", f"view {view}: {w}x{h} pixels; at "
                               f"most {cfg.max_pixels} pixels")
            return np.asarray(im.convert("RGB"))
    except ApiError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
            Image.DecompressionBombError):
        raise ApiError(422, "bad_image", f"view {view}: not a readable JPEG or PNG") from None


def check_token(header: str | None, token: str | None) -> None:
    """401 unless ``Authorization: Bearer <token>`` matches (no token configured: open)."""
    import hmac

    if token is None:
        return
    given = (header or "").removeprefix("Bearer ").strip() if (header or "").startswith(
        "Bearer ") else ""
    if not given or not hmac.compare_digest(given.encode(), token.encode()):
        raise ApiError(401, "unauthorized", "send the header 'Authorization: Bearer <token>' "
                       "with the service's token", headers={"WWW-Authenticate": "Bearer"})
