"""The shipped CNN's logit margins on the app-framed faces of a built dataset (`research.app_faces` caches), one
`<split>.npy` per split, for `research.lofo --cnn_margins` (fusion candidates).

    python -m research.cnn_margins --app_faces data/app-faces-v3 --model models/deepfake-detector-effnet-lite0 \
        --output data/app-faces-v3/r1-flip-margins
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from deepfake_detector.model import fake_margin, load_detector
from deepfake_detector.preprocess import to_model_tensor
from research.depth_probe import SPLITS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--app_faces", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    detector = load_detector(args.model)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        faces = np.load(Path(args.app_faces) / f"{split}.clean.npy", mmap_mode="r")
        margins = []
        for start in range(0, len(faces), 64):
            batch = torch.stack([to_model_tensor(np.asarray(face), detector.data_config) for face in faces[start : start + 64]])
            margins.append(fake_margin(detector.logits(batch), detector.fake_index))
        np.save(output / f"{split}.npy", np.concatenate(margins).astype(np.float32))
        print(split, len(faces), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
