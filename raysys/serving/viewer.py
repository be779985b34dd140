"""The service's viewer page (``GET /``) and its Prometheus text (``GET /metrics``).

The page takes ``?stream=<id>`` (and the token, if the service has one, as
``#token=<token>``: a fragment never reaches the server's logs), polls
``GET /v1/streams/<id>/view`` and draws the views side by side (the mosaic) with each
tracked box and its global id, in a colour per id.
"""

from __future__ import annotations

__all__ = ["VIEWER_HTML", "PALETTE", "metrics_text"]

# box colours by global id (pure colours: easy to find in a screenshot)
PALETTE = ["#ff0000", "#00ff00", "#0000ff", "#ffff00", "#ff00ff", "#00ffff"]

VIEWER_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>raysys: online tracking</title>
<style>body{margin:0;background:#202020;color:#ddd;font:14px sans-serif}
#bar{padding:4px 8px}canvas{display:block}</style></head>
<body><div id="bar">raysys viewer: <span id="status">starting</span></div>
<canvas id="mosaic" width="8" height="8"></canvas>
<script>
const PALETTE = %PALETTE%;
const q = new URLSearchParams(location.search);
const sid = q.get("stream");
const token = new URLSearchParams(location.hash.slice(1)).get("token");
const status = document.getElementById("status");
const canvas = document.getElementById("mosaic");
function load(b64) {
  return new Promise((ok, bad) => { const im = new Image(); im.onload = () => ok(im);
    im.onerror = bad; im.src = "data:image/jpeg;base64," + b64; });
}
async function tick() {
  if (!sid) { status.textContent = "add ?stream=<id> to the address"; return; }
  try {
    const r = await fetch("/v1/streams/" + sid + "/view",
      {headers: token ? {"Authorization": "Bearer " + token} : {}});
    const j = await r.json();
    if (!r.ok) { status.textContent = j.error + ": " + j.detail; }
    else if (j.frame === null) { status.textContent = "no clip tracked yet"; }
    else { await draw(j); }
  } catch (e) { status.textContent = "error: " + e; }
  setTimeout(tick, 1000);
}
async function draw(j) {
  const ims = await Promise.all(j.images.map(load));
  const w = ims[0].width, h = ims[0].height;
  canvas.width = w * ims.length; canvas.height = h;
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ims.forEach((im, k) => ctx.drawImage(im, k * w, 0));
  ctx.lineWidth = 2; ctx.font = "bold 12px sans-serif";
  for (const t of j.tracks) {
    const c = PALETTE[(t.id - 1) % PALETTE.length];
    const [x1, y1, x2, y2] = t.box.map(Math.round);
    ctx.strokeStyle = c; ctx.fillStyle = c;
    ctx.strokeRect(t.view * w + x1 + 1, y1 + 1, Math.max(x2 - x1 - 2, 1),
                   Math.max(y2 - y1 - 2, 1));
    ctx.fillText("id " + t.id, t.view * w + x1 + 3, Math.max(y1 - 3, 10));
  }
  status.textContent = "stream " + sid + ", frame " + j.frame + ", " + j.tracks.length +
    " boxes";
}
tick();
</script></body></html>
""".replace("%PALETTE%", repr(PALETTE).replace("'", '"'))


def metrics_text(stats: dict, codes: dict) -> str:
    """Prometheus exposition text of the store's ``stats`` and the ingress's answers by
    status (Ray Serve's own metrics are exported by Ray's metrics agent as well)."""
    lines = []

    def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
        lines.extend([f"# HELP {name} {help_}", f"# TYPE {name} {kind}"])
        lines.extend(f"{name}{labels} {value:g}" for labels, value in samples)

    metric("raysys_serve_streams", "gauge", "Live streams.", [("", stats["streams"])])
    metric("raysys_serve_frame_sets_total", "counter", "Frame sets tracked (counted at "
           "clip boundaries).", [("", stats["frame_sets_total"])])
    metric("raysys_serve_frame_sets_per_second", "gauge", "Frame sets tracked per second "
           "over the last 10 s.", [("", stats["frame_sets_per_second"])])
    metric("raysys_serve_state_bytes", "gauge", "Tracker state bytes of the live streams "
           "(at their last checkpoint).", [("", stats["state_bytes"])])
    metric("raysys_serve_streams_expired", "counter", "Streams expired after the TTL.",
           [("", stats["expired"])])
    metric("raysys_serve_replicas_holding_streams", "gauge", "Tracker replicas holding at "
           "least one stream.", [("", len(stats["owners"]))])
    metric("raysys_serve_encode_batches_total", "counter", "Batched passes of the per-clip "
           "encoder (@serve.batch), all replicas.", [("", stats.get("encode_batches", 0))])
    metric("raysys_serve_encoded_clips_total", "counter", "Clips through those passes.",
           [("", stats.get("encoded_clips", 0))])
    metric("raysys_serve_encode_batch_max", "gauge", "Most clips in one encoder pass.",
           [("", stats.get("encode_batch_max", 0))])
    metric("raysys_serve_responses_total", "counter", "HTTP answers of the ingress by "
           "status.", [(f'{{code="{c}"}}', n) for c, n in sorted(codes.items())])
    return "\n".join(lines) + "\n"
