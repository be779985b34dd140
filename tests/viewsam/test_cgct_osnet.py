"""CGCT built upon an OSNet (App. C.4): crops cut at the objects' boxes, the embedded ReID
weights, training through the loader's crops, and the tracker's crops of the frames."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from raysys.viewsam import ViewSAMConfig, build_viewsam
from raysys.viewsam.cgct import CGCTConfig
from raysys.viewsam.osnet_backbone import CROP_SIZE, crop_maps, crop_objects
from raysys.viewsam.text_encoder import build_text_encoder

OSNET = CGCTConfig(backbone="osnet")


def test_crops_cut_exactly_the_box():
    """A 20x10 red rectangle at (x 30-40, y 5-25) of a grey frame: its crop is red inside
    (the border bins blend with the pixels around the box, as bilinear sampling does); a
    mask that is 1 on that box, cut to it, is 1 inside, and 0 cut elsewhere."""
    img = torch.full((1, 3, 60, 80), 128.0)
    img[0, :, 5:25, 30:40] = torch.tensor([250.0, 10.0, 10.0])[:, None, None]
    c = crop_objects(img, torch.tensor([[[30.0, 5.0, 40.0, 25.0], [0.0, 40.0, 20.0, 60.0]]]),
                     (16, 8))
    assert c.shape == (1, 2, 3, 16, 8)
    red = torch.tensor([250.0, 10.0, 10.0])[:, None, None].expand(3, 14, 6)
    assert torch.allclose(c[0, 0, :, 1:-1, 1:-1], red, atol=1e-3)
    assert torch.allclose(c[0, 1], torch.full((3, 16, 8), 128.0))
    mask = torch.zeros(1, 1, 60, 80)
    mask[0, 0, 5:25, 30:40] = 1.0
    on = crop_maps(mask, torch.tensor([[[30.0, 5.0, 40.0, 25.0]]]), (16, 8))
    off = crop_maps(mask, torch.tensor([[[0.0, 40.0, 20.0, 60.0]]]), (16, 8))
    assert torch.allclose(on[..., 1:-1, 1:-1], torch.ones(1, 1, 14, 6))
    assert float(off.abs().max()) == 0.0


def test_the_embedding_follows_the_object_not_its_place(two_places):
    """The same person pasted at two places of two frames: the same embedding; another
    person: another one (the OSNet sees crops, not the frame)."""
    from raysys.viewsam.cgct import CGCT

    torch.manual_seed(0)
    cgct = CGCT((0,), 0, OSNET, dim=32, hidden=64, film_strength=0.5).eval()
    assert cgct.backbone is not None and cgct.backbone.channels == (96, 128, 128, 512)
    rng = np.random.default_rng(0)
    person = torch.from_numpy(rng.integers(0, 255, (3, 40, 16))).float()
    other = torch.from_numpy(rng.integers(0, 255, (3, 40, 16))).float()
    crops, boxes = two_places(person, other)
    masks = torch.ones(2, 2, 90, 160)  # the whole box
    with torch.no_grad():
        z = cgct([], masks, None, crops, boxes)
    assert z.shape == (2, 2, 32) and torch.allclose(z.norm(dim=-1), torch.ones(2, 2))
    same, diff = float(z[0, 0] @ z[1, 0]), float(z[0, 0] @ z[1, 1])
    assert same > 0.999 and diff < same - 1e-3, (same, diff)
    with pytest.raises(ValueError, match="crops and boxes"):
        cgct([], masks, None)


def test_the_embedded_reid_weights_are_loaded_and_their_statistics_kept():
    from raysys.backends.reid import EMBEDDED_REID
    from raysys.viewsam.osnet_backbone import OSNetBackbone

    sd = torch.load(EMBEDDED_REID, weights_only=True)["state_dict"]
    bb = OSNetBackbone().train()
    own = bb.net.state_dict()
    assert torch.equal(own["conv1.conv.weight"], sd["conv1.conv.weight"])
    assert all(not m.training for m in bb.modules()
               if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))
    before = own["conv1.bn.running_mean"].clone()
    bb(torch.rand(4, 3, *CROP_SIZE), torch.ones(4, *CROP_SIZE))
    assert torch.equal(bb.net.state_dict()["conv1.bn.running_mean"], before)


def test_training_pass_uses_the_loaders_crops(micro_sam2, crop_clip):
    """A ViewSAM whose CGCT is built upon the OSNet trains on the targets' crops: gradients
    reach the OSNet; without crops the pass says what is missing."""
    frames, targets = crop_clip
    cfg = dataclasses.replace(ViewSAMConfig(), cgct=OSNET)
    model = build_viewsam(cfg, sam2_config=micro_sam2, text_encoder=build_text_encoder("minilm"))
    model.train()
    text = model.tokenize(["a person in a red coat"])
    out = model(frames, text, targets)
    assert out.embeddings.shape[:4] == (1, 2, 2, 2)
    model.losses(out, targets)["total"].backward()
    grads = [p.grad for p in model.cgct.backbone.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    with pytest.raises(ValueError, match="object crops"):
        model(frames, text, dataclasses.replace(targets, crops=None))


def test_the_loader_cuts_each_object_from_the_full_resolution_frame(tiny_test_split):
    """`load_clip` with a crop size: each visible object's crop is its GT box of the
    full-resolution frame (compared with PIL's crop and resize); absent slots stay empty."""
    from PIL import Image

    from raysys.io.frames import read_frame
    from raysys.training.data import ClipSpec, load_clip, plan_samples
    from raysys.training.sources import GroundTruthSource

    spec = ClipSpec(size=64, frames=2, stride=4, step=1, max_objects=4, max_views=None,
                    min_box_side=2.0, use_masks=False, variant="standard", crop_size=(32, 16))
    src = GroundTruthSource(tiny_test_split)
    sample = plan_samples(src, spec, 1, seed=0)[0]
    clip = load_clip(src, sample, spec)
    v, t = len(sample["views"]), len(sample["frames"])
    assert clip["crops"].shape == (v, t, 4, 3, 32, 16) and clip["crops"].dtype == np.uint8
    df = src.objects(sample["scene"])
    checked = 0
    for i, view in enumerate(sample["views"]):
        for j, f in enumerate(sample["frames"]):
            img = read_frame(src.frame_paths(sample["scene"], view)[f])
            for k, g in enumerate(sample["object_ids"]):
                r = df[(df.view == view) & (df.frame == f) & (df.global_id == g)]
                if not clip["visible"][i, j, k]:
                    assert not clip["crops"][i, j, k].any()
                    continue
                x, y, w, h = r[["left", "top", "width", "height"]].to_numpy(float)[0]
                ref = np.asarray(Image.fromarray(img).crop((round(x), round(y), round(x + w),
                                                             round(y + h))).resize((16, 32)))
                diff = np.abs(clip["crops"][i, j, k].transpose(1, 2, 0).astype(float) - ref)
                assert diff.mean() < 25, diff.mean()
                checked += 1
    assert checked > 0


@pytest.mark.parametrize("backbone", ["osnet", "attribute"])
def test_the_tracker_embeds_crops_of_the_frames_it_is_given(always_present, backbone):
    """Online tracking with a CGCT upon crops (the OSNet, the attribute net): present tracks
    carry embeddings and get ids."""
    from raysys.tracking import ViewSAMTracker
    from raysys.tracking.config import TrackConfig
    from raysys.training.config import StageConfig, quick_config
    from raysys.training.model import build_model
    from raysys.viewsam.base import sam2_yaml_text

    torch.manual_seed(0)
    cfg = quick_config(clip_frames=2, image_size=64, sam2_image_size=64, max_objects=4,
                       max_samples=4, stages=(StageConfig("all", ("cgct",), 1, 1e-3),))
    cgct = CGCTConfig(backbone=backbone)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, cgct=cgct))
    model = always_present(build_model(cfg, sam2_yaml_text(None, 64)).eval())
    tracker = ViewSAMTracker(model, "a person", 2, TrackConfig(
        clip_frames=2, refer_threshold=0.0, objectness_threshold=0.0, min_refer=0.0))
    rng = np.random.default_rng(0)
    results = []
    for _ in range(4):
        results += tracker.step([rng.integers(0, 255, (48, 80, 3), dtype=np.uint8)
                                 for _ in range(2)])
    protos = tracker.identities.prototypes  # identities made from CGCT embeddings
    assert protos and all(np.shape(p) == (model.cgct.dim,) for p in protos.values())
    ids = {o.global_id for r in results for view in r.views for o in view}
    assert ids and all(i > 0 for i in ids)
