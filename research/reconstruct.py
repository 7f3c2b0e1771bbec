"""Reconstruction fakes (issue 22's candidate): real faces passed through the tiny FLUX.2 autoencoder (taef2) become
aligned fakes: the same person, light and framing, only the decoder's traces differ (the idea of AlignedForensics,
ICLR 2025, and B-Free, CVPR 2025, which train on the real Stable Diffusion autoencoder).

    git -C /work/.mirror/madebyollin+taesd/repo show HEAD:taesd.py > data/taesd/taesd.py   # and taef2_{encoder,decoder}.pth
    python -m research.reconstruct --taesd data/taesd --dataset data/faces-dataset-v3 --model models/deepfake-detector-clip-cnn-fused \
        --per_source 40 --output data/abstain-full/reconstructed-train.npz
    python -m research.abstain screen ... --extra_fakes data/abstain-full/reconstructed-train.npz

`madebyollin/taesd @ 5cccb12` (MIT): its `.pth` files are read once with `torch.load(weights_only=True)` and written
as safetensors beside them; the networks are built from its `taesd.py` (Encoder / Decoder, `flux_2` variant: 32
latent channels, mid-block group norm). Each real train face (at most `--per_source` a source) is framed as
`predict()` frames it, encoded, the latents quantised to 8 bits as taesd's own round trip does, decoded, and then run
through the folder as every face is (canonical 128-px JPEG face; the tower at `--size` px and the CNN member).

Research only: nothing in `deepfake_detector/` or `training/` imports this.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np


def load_taef2(folder: Path):
    """(encoder, decoder) of taef2 from `folder` (taesd.py + weights; the .pth converted to safetensors once)."""
    import torch
    from safetensors.torch import load_file, save_file

    spec = importlib.util.spec_from_file_location("taesd", folder / "taesd.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    nets = []
    for part, build in (("encoder", module.Encoder), ("decoder", module.Decoder)):
        tensors = folder / f"taef2_{part}.safetensors"
        if not tensors.is_file():
            save_file({k: v.contiguous() for k, v in torch.load(folder / f"taef2_{part}.pth", map_location="cpu", weights_only=True).items()}, str(tensors))
        net = build(32, use_midblock_gn=True)
        net.load_state_dict(load_file(str(tensors)), strict=True)
        nets.append(net.eval())
    return module.TAESD, nets[0], nets[1]


def reconstruct(crop: np.ndarray, taesd, encoder, decoder) -> np.ndarray:
    """The crop (h, w, 3) uint8 after encode -> 8-bit latents -> decode, cut back to (h, w)."""
    import torch

    height, width = crop.shape[:2]
    pad_h, pad_w = (-height) % 8, (-width) % 8
    image = np.pad(crop, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect")
    with torch.inference_mode():
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
        latents = taesd.scale_latents(encoder(x)).mul(255).round().div(255)
        y = decoder(taesd.unscale_latents(latents)).clamp(0, 1)
    return (y[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)[:height, :width]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--taesd", required=True, help="folder with taesd.py, taef2_encoder.pth, taef2_decoder.pth")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--model", default="models/deepfake-detector-clip-cnn-fused")
    parser.add_argument("--size", type=int, default=128, help="the tower's input size (the folder's own)")
    parser.add_argument("--per_source", type=int, default=40)
    parser.add_argument("--max_side", type=int, default=384, help="crops larger than this are resized first (CPU time)")
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)

    import torch
    from PIL import Image
    from tqdm import tqdm

    from deepfake_detector.model import fake_margin, load_detector
    from research.abstain import capped_rows, pooled, row_faces, tower_at
    from training.data import load_built_dataset

    torch.set_num_threads(2)
    taesd, encoder, decoder = load_taef2(Path(args.taesd))
    detector = load_detector(args.model)
    net, config = tower_at(detector, args.size) if detector.data_config["input_size"][-1] != args.size else (detector.net, detector.data_config)
    train = load_built_dataset(args.dataset)["train"]
    labels, sources = np.asarray(train["label"]), np.asarray(train["source"])
    real = np.flatnonzero(labels == 0)
    rows = real[capped_rows(sources[real], args.per_source)]
    features, margins, kept = [], [], []
    for start in tqdm(range(0, len(rows), 8), desc="reconstruct", mininterval=20):
        crops = row_faces(train, rows[start : start + 8], detector.face_crop_scale)
        fakes = []
        for crop in crops:
            if max(crop.shape[:2]) > args.max_side:
                scale = args.max_side / max(crop.shape[:2])
                crop = np.asarray(Image.fromarray(crop).resize((max(8, round(crop.shape[1] * scale)), max(8, round(crop.shape[0] * scale))), Image.LANCZOS))
            fakes.append(reconstruct(crop, taesd, encoder, decoder))
        features.append(pooled(net, config, fakes))
        margins.append(fake_margin(detector.member.logits_of_crops(fakes), detector.member.fake_index))
        kept.extend(rows[start : start + 8])
    output = Path(args.output)
    np.savez(output, rows=np.asarray(kept), sources=sources[kept], **{f"features_{args.size}": np.concatenate(features)}, margins=np.concatenate(margins))
    print(f"wrote {output}: {len(kept)} reconstructed real train faces")
    return 0


if __name__ == "__main__":
    sys.exit(main())
