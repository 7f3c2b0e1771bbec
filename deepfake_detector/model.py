"""Load a detector: a timm model folder in the layout the Hugging Face Hub holds, locally or as `hf-hub:ORG/NAME[@rev]`.

The folder holds `config.json` (timm's: `architecture`, `num_classes`, `label_names`, `pretrained_cfg`; ours on
top: `threshold`, `uncertain_band`, `fake_band`, `calibration`, `canonical_size`, ...) and `model.safetensors`. Only
safetensors are loaded.

The operating point (`operating_bands`): a face is Real below `threshold - uncertain_band` and Fake from
`threshold + fake_band` up, Uncertain between. `fake_band` is optional and defaults to `uncertain_band` (the symmetric
band every older folder has); `training.calibration --asymmetric` sets it higher, so the Fake cut may sit above the
Real cut's mirror: calling an everyday photo Fake is the costlier error, and raising only that cut keeps the Real side.

How logits become the displayed P(fake) (`calibrated_fake_probability`), by `config["calibration"]["method"]`:

- `"platt"`: sigmoid(slope * margin + intercept), margin = logit(fake) - logit(real);
- `"isotonic"`: piecewise-linear interpolation of the margin through the fitted (`margins`, `probabilities`) knots;
- absent (folders written before either existed): softmax(logits / `temperature`).

Platt and isotonic maps are fitted class-balanced on validation (`training.calibration`), so the displayed
probability crosses 0.5 where a real and a fake face are equally likely and the decision threshold is 0.5.

`config["quantization"] == "dynamic-int8"` (the CLIP towers of `research.clip_probe`): classification runs on a copy
of the net whose Linear layers, all but the classifier, are torch's dynamic int8 ones (per-channel weights), about 3x
faster on a CPU; their integers are what `model.safetensors` stores (`int8_weights`: a quarter of the float size), and
Grad-CAM explains the float net made from them (gradients do not flow through int8 layers). A
dynamic layer quantizes its input with one scale per call, so such a net classifies one face per call: a face's score
never depends on the other faces it is batched with.

`config["fusion"] = {"member": "member", "weight": w}` (`research.clip_probe --fuse_with`): the folder's subfolder
`member/` holds a second model (the CNN) that reads each face too, through its own canonical face and test-time
flip; the face's margin is this net's margin plus w times the member's, one linear head fitted on both and then
calibrated as one (`Detector.logits_of_crops`). Grad-CAM explains this folder's own net.

`config["face_crop_scale"]` is how widely `predict()` frames each detected face for this model (the square's side in
detector boxes; `deepfake_detector.faces.FACE_CROP_SCALE` when absent): a model is shown faces framed as it was
trained on them (`research.app_faces --crop_scale`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .faces import FACE_CROP_SCALE
from .familiarity import FILE as FAMILIARITY_FILE

if TYPE_CHECKING:
    from .familiarity import Familiarity

REPO_ROOT = Path(__file__).resolve().parent.parent
# The default: a frozen CLIP tower's head fused with the CNN (issue 22's leave-one-family-out choice; model_card.md).
DEFAULT_MODEL_NAME = "deepfake-detector-clip-cnn-fused"
# Its one source of truth is the checkout's models/ folder; the wheel carries a copy made at build time (setup.py's
# build_py copies models/DEFAULT_MODEL_NAME into deepfake_detector/BUNDLED_MODEL_SUBDIR; nothing committed there).
CHECKOUT_MODEL_DIR = REPO_ROOT / "models" / DEFAULT_MODEL_NAME
BUNDLED_MODEL_SUBDIR = "bundled_model"
PACKAGED_MODEL_DIR = Path(__file__).resolve().parent / BUNDLED_MODEL_SUBDIR


def default_model_dir(required: bool = False) -> Path:
    """The default model folder: the repository checkout's, else the copy installed with the package (a wheel).
    With `required`, a FileNotFoundError naming both places when neither holds a config.json."""
    for folder in (CHECKOUT_MODEL_DIR, PACKAGED_MODEL_DIR):
        if (folder / "config.json").is_file():
            return folder
    if required:
        raise FileNotFoundError(
            f"No default model: neither {CHECKOUT_MODEL_DIR} (a repository checkout) nor {PACKAGED_MODEL_DIR} (installed "
            "with the package) holds one; reinstall the package (pip install .) or pass --model FOLDER or --model hf-hub:ORG/NAME."
        )
    return CHECKOUT_MODEL_DIR


DEFAULT_MODEL_DIR = default_model_dir()
# A large int8 folder's weights come as shards listed in SHARD_INDEX (the Hub's layout; `training.hub.save_sharded`).
SHARD_INDEX = "model.safetensors.index.json"
# A fused folder's second model lives in this subfolder (config.json "fusion"; only this name is accepted).
MEMBER_DIR = "member"
HUB_FILES = ["config.json", "model.safetensors", SHARD_INDEX, "model-*-of-*.safetensors", FAMILIARITY_FILE, "metrics.json", "README.md", "*.png", "*.md",
             f"{MEMBER_DIR}/config.json", f"{MEMBER_DIR}/model.safetensors"]
# Probabilities within this distance of the threshold are "Uncertain" unless config.json sets `uncertain_band`.
DEFAULT_UNCERTAIN_BAND = 0.1
# Either band may reach, but not touch, 0.5: a cut at 0 or 1 would leave no verdict on that side.
BAND_LIMIT = 0.5
CALIBRATION_METHODS = ("platt", "isotonic")
# "dynamic-int8": int8 weights on disk, int8 Linear layers classify. "int8-weights": the same file, but the float net
# made from those integers classifies: a quarter of the float size on disk, and no per-call activation rounding, which
# moved a 1024-px face's P(fake) by up to 0.22 when its PNG was re-saved as JPEG q95 (float from the same integers: 0.07).
QUANTIZATIONS = ("dynamic-int8", "int8-weights")
# The face_crop_scale values a folder may ask for: from the detector's box itself to four times it.
FACE_CROP_SCALE_RANGE = (1.0, 4.0)
# Class index -> name, the one definition for the app, training, the dataset schema and config.json `label_names`.
LABEL_NAMES = ["real", "fake"]


@dataclass
class Detector:
    """A loaded model with everything inference needs; `net` is in eval mode on the CPU."""

    net: torch.nn.Module
    config: dict
    data_config: dict
    name: str
    folder: Path
    label_names: list[str] = field(default_factory=lambda: list(LABEL_NAMES))
    fast_net: torch.nn.Module | None = None  # the int8 copy that classifies, when config.json asks for one
    member: "Detector | None" = None  # a fused folder's second model (config.json "fusion")
    member_weight: float = 0.0  # the weight of its margin in the fused margin
    familiarity: "Familiarity | None" = None  # how far a face's features may lie from training's (config.json "familiarity")

    @property
    def threshold(self) -> float:
        """Decision threshold on the displayed probability: 0.5 after a Platt/isotonic calibration; older folders fitted their own."""
        return float(self.config.get("threshold", 0.5))

    @property
    def temperature(self) -> float:
        """Softmax temperature; only used by folders without a Platt/isotonic `calibration` (1.0 in newer ones)."""
        return float(self.config.get("temperature", 1.0))

    @property
    def band(self) -> float:
        """The Real cut's distance below the threshold (config.json `uncertain_band`): Real below threshold - band."""
        return operating_bands(self.config)[0]

    @property
    def fake_band(self) -> float:
        """The Fake cut's distance above the threshold (config.json `fake_band`, else `band`): Fake from threshold +
        fake_band up. Larger than `band` in an asymmetric folder, whose Fake cut was raised for everyday photos."""
        return operating_bands(self.config)[1]

    @property
    def calibration(self) -> dict:
        """The folder's calibration block ({} for none); see `calibrated_fake_probability`."""
        return dict(self.config.get("calibration") or {})

    @property
    def calibration_summary(self) -> str:
        """One sentence on how the displayed probability is calibrated (for the app's Model tab)."""
        calibration = self.calibration
        method = calibration.get("method")
        if method == "platt":
            return (f"Platt scaling (slope {calibration['slope']:.3f}, intercept {calibration['intercept']:.3f}) of the "
                    "logit margin, fitted class-balanced on validation")
        if method == "isotonic":
            return f"isotonic regression of the logit margin ({len(calibration['margins'])} knots), fitted class-balanced on validation"
        return f"temperature {self.temperature:.3f}"

    @property
    def face_crop_scale(self) -> float:
        """The square `predict()` crops around each detected face, in detector boxes (config.json `face_crop_scale`)."""
        return face_crop_scale(self.config)

    @property
    def fake_index(self) -> int:
        return self.label_names.index("fake")

    @property
    def test_time_flip(self) -> bool:
        """Average the logits of each face and its mirror image (config.json `test_time_flip`; calibration is fitted
        with it on). Measured on the bundled model's cached test faces: ROC AUC 0.900 -> 0.907, at twice the
        classification cost. Grad-CAM explains the face as uploaded, not the average."""
        return bool(self.config.get("test_time_flip", False))

    def logits(self, batch: torch.Tensor) -> np.ndarray:
        """Raw logits (b, 2) for a batch of model-ready tensors of shape (b, 3, H, W)."""
        if self.fast_net is not None:  # one face per call (see the module docstring)
            return np.concatenate([self._logits(self.fast_net, face[None]) for face in batch]) if len(batch) else np.zeros((0, 2), np.float32)
        return self._logits(self.net, batch)

    def _logits(self, net: torch.nn.Module, batch: torch.Tensor) -> np.ndarray:
        batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            if not self.test_time_flip:
                logits = net(batch)
            elif net is self.fast_net:  # int8 activations get one scale per call: a mirror image gets its own call
                logits = (net(batch) + net(torch.flip(batch, dims=[3]))) / 2
            else:  # the mirror images ride in the same forward pass: one call instead of two (28.5 -> 21.5 ms a face)
                both = net(torch.cat([batch, torch.flip(batch, dims=[3])]))
                logits = (both[: len(batch)] + both[len(batch) :]) / 2
            return logits.float().cpu().numpy()

    def logits_of_crops(self, crops: list[np.ndarray]) -> np.ndarray:
        """Raw logits (n, 2) for face crops (h, w, 3) uint8 RGB, each canonicalised for this folder's net (and, for a
        fused folder, for its member, whose weighted margin is added to the fake logit's side)."""
        return self.outputs_of_crops(crops)[0]

    def outputs_of_crops(self, crops: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """(`logits_of_crops`, each crop's distance from the training faces (n,), or None for a folder without
        `familiarity`): one forward pass; the distance is taken on the features the head reads."""
        from .preprocess import eval_tensor

        if not len(crops):
            return np.zeros((0, 2), dtype=np.float32), (np.zeros(0) if self.familiarity is not None else None)
        batch = torch.stack([eval_tensor(crop, self.data_config) for crop in crops])
        distances = None
        if self.familiarity is None:
            logits = self.logits(batch)
        else:  # what net(batch) computes, with the head's input kept (no flip, no int8 copy: load_detector checks)
            with torch.inference_mode():
                features = self.net.forward_head(self.net.forward_features(batch.contiguous(memory_format=torch.channels_last)), pre_logits=True)
                logits = self.net.get_classifier()(features).float().cpu().numpy()
            distances = self.familiarity.distances(features.float().cpu().numpy())
        if self.member is not None:
            shift = self.member_weight * fake_margin(self.member.logits_of_crops(crops), self.member.fake_index) / 2
            logits = logits + np.stack([shift, -shift] if self.fake_index == 0 else [-shift, shift], axis=1).astype(logits.dtype)
        return logits, distances

    def probabilities_from_logits(self, logits: np.ndarray) -> np.ndarray:
        """Displayed (calibrated) P(fake), shape (b,), for raw logits of shape (b, 2)."""
        return calibrated_fake_probability(logits, self.calibration, self.temperature, self.fake_index)

    def fake_probabilities(self, batch: torch.Tensor) -> np.ndarray:
        """Calibrated P(fake) for a batch of model-ready tensors of shape (b, 3, H, W)."""
        return self.probabilities_from_logits(self.logits(batch))


def quantize_dynamic_int8(net: torch.nn.Module) -> torch.nn.Module:
    """A copy of `net` in eval mode whose Linear layers, except the classifier, are dynamic int8 (per-channel weights)."""
    import copy
    import warnings

    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    classifier = net.get_classifier() if hasattr(net, "get_classifier") else None
    layers = {name: per_channel_dynamic_qconfig for name, module in net.named_modules() if isinstance(module, torch.nn.Linear) and module is not classifier}
    if not layers:
        raise ValueError(f"{type(net).__name__} has no Linear layer to quantize besides its classifier")
    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao; it is what torch 2.14 ships
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*migrate to use torchao.*")
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
        return quantize_dynamic(copy.deepcopy(net), layers, dtype=torch.qint8).eval()


def canonical_settings(config: dict) -> dict:
    """config.json's canonical face: {"canonical_size": px, "canonical_jpeg_quality": q}, 128 px and q75 when absent;
    a size outside 64-512 px or a quality outside 30-100 is refused (ValueError)."""
    from .preprocess import CANONICAL_JPEG_QUALITY, CANONICAL_SIZE

    size, quality = config.get("canonical_size", CANONICAL_SIZE), config.get("canonical_jpeg_quality", CANONICAL_JPEG_QUALITY)
    if isinstance(size, bool) or not isinstance(size, int) or not 64 <= size <= 512:
        raise ValueError(f"canonical_size must be a whole number of pixels from 64 to 512, got {size!r}")
    if isinstance(quality, bool) or not isinstance(quality, int) or not 30 <= quality <= 100:
        raise ValueError(f"canonical_jpeg_quality must be a whole number from 30 to 100, got {quality!r}")
    return {"canonical_size": size, "canonical_jpeg_quality": quality}


def face_crop_scale(config: dict) -> float:
    """config.json's `face_crop_scale` (FACE_CROP_SCALE when absent), checked by `valid_face_crop_scale`."""
    return valid_face_crop_scale(config.get("face_crop_scale", FACE_CROP_SCALE))


def valid_face_crop_scale(value) -> float:
    """`value` as a float; anything but a number in FACE_CROP_SCALE_RANGE is refused (ValueError)."""
    low, high = FACE_CROP_SCALE_RANGE
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"face_crop_scale must be a number from {low} to {high} (detector boxes), got {value!r}")
    return float(value)


def operating_bands(config: dict) -> tuple[float, float]:
    """(uncertain_band, fake_band) of config.json: DEFAULT_UNCERTAIN_BAND when the first is absent, the first when
    the second is; each must be a number in [0, BAND_LIMIT) (ValueError naming the key otherwise)."""
    band = _valid_band("uncertain_band", config.get("uncertain_band", DEFAULT_UNCERTAIN_BAND))
    return band, _valid_band("fake_band", config.get("fake_band", band))


def _valid_band(key: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < BAND_LIMIT:
        raise ValueError(f"{key} must be a number from 0 up to (not including) {BAND_LIMIT}, got {value!r}")
    return float(value)


def fake_margin(logits: np.ndarray, fake_index: int = 1) -> np.ndarray:
    """logit(fake) - logit(real): logits (b, 2) -> (b,); softmax(logits)[:, fake] == sigmoid(margin)."""
    logits = np.asarray(logits, dtype=np.float64)
    return logits[:, fake_index] - logits[:, 1 - fake_index]


def sigmoid(x: np.ndarray) -> np.ndarray:
    # Split by sign so neither branch overflows.
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    positive = x >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-x[positive]))
    exp_x = np.exp(x[~positive])
    out[~positive] = exp_x / (1.0 + exp_x)
    return out


def calibrated_fake_probability(logits: np.ndarray, calibration: dict | None, temperature: float = 1.0, fake_index: int = 1) -> np.ndarray:
    """Logits (b, 2) -> displayed P(fake) (b,) through the folder's calibration (see the module docstring)."""
    margin = fake_margin(logits, fake_index)
    method = (calibration or {}).get("method")
    if method == "platt":
        probability = sigmoid(float(calibration["slope"]) * margin + float(calibration["intercept"]))
    elif method == "isotonic":
        probability = np.interp(margin, np.asarray(calibration["margins"], dtype=np.float64), np.asarray(calibration["probabilities"], dtype=np.float64))
    elif method is None:
        probability = sigmoid(margin / float(temperature))
    else:
        raise ValueError(f"Unknown calibration method {method!r} in config.json; expected one of {CALIBRATION_METHODS} or none.")
    return probability.astype(np.float32)


def resolve_model_folder(model_id: str | os.PathLike) -> tuple[Path, str]:
    """(local folder, display name) for a folder path, `local-dir:PATH` or `hf-hub:ORG/NAME[@revision]`."""
    model_id = str(model_id)
    if model_id.startswith("hf-hub:"):
        from huggingface_hub import snapshot_download

        repo_id, _, revision = model_id[len("hf-hub:") :].partition("@")
        folder = snapshot_download(repo_id=repo_id, revision=revision or None, allow_patterns=HUB_FILES)
        return Path(folder), model_id
    folder = Path(model_id.removeprefix("local-dir:")).expanduser()
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"{folder} is not a model folder (no config.json). Pass a folder written by training.train "
            "or hf-hub:ORG/NAME."
        )
    return folder, folder.name


def read_safetensors(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of `folder/model.safetensors`, or of the shards its SHARD_INDEX lists (file names inside the
    folder only: an index naming any other path is refused)."""
    from safetensors.torch import load_file

    if (folder / "model.safetensors").is_file():
        return load_file(folder / "model.safetensors")
    index = json.loads((folder / SHARD_INDEX).read_text())
    files = sorted(set(index.get("weight_map", {}).values()))
    if not files or any(Path(name).name != name or not name.endswith(".safetensors") for name in files):
        raise ValueError(f"{folder / SHARD_INDEX} must name .safetensors files inside the folder, got {files[:3]}")
    tensors = {}
    for name in files:
        tensors |= load_file(folder / name)
    return tensors


def load_detector(model_id: str | os.PathLike = DEFAULT_MODEL_DIR) -> Detector:
    """Build the timm architecture named in `config.json` and load `model.safetensors` into it (timm's `local-dir:`)."""
    import timm

    folder, name = resolve_model_folder(model_id)
    config = json.loads((folder / "config.json").read_text())
    weights = folder / "model.safetensors"
    quantization = config.get("quantization")
    sharded = quantization and not weights.is_file() and (folder / SHARD_INDEX).is_file()
    if not weights.is_file() and not sharded:
        # timm would fall back to a pickled pytorch_model.bin; only safetensors are loaded.
        raise FileNotFoundError(f"{weights} is missing; only safetensors weights are loaded.")
    face_crop_scale(config)  # refused here, not at the first upload
    canonical_settings(config)
    operating_bands(config)
    if quantization not in (None, *QUANTIZATIONS):
        raise ValueError(f"Unknown quantization {quantization!r} in config.json; expected one of {QUANTIZATIONS} or none.")
    fast_net = None
    if quantization:  # int8 weights on disk (deepfake_detector.int8_weights): the float net from them, then the int8 one
        from .int8_weights import float_state_dict, set_stored_weights

        net = timm.create_model(f"local-dir:{folder}", pretrained=False).eval()
        state, stored = float_state_dict(read_safetensors(folder))
        net.load_state_dict(state, strict=True)
        if quantization == "dynamic-int8":
            fast_net = quantize_dynamic_int8(net)
            set_stored_weights(fast_net, stored)
    else:
        # Architecture, num_classes, model_args and pretrained_cfg from config.json; every tensor must fit (strict).
        net = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    # channels-last convolutions: on 2 cores one face and its mirror image 21.5 -> 20.9 ms, a batch of 32 317 -> 217 ms
    net = net.to(memory_format=torch.channels_last)
    # the canonical face this folder's model was fitted on (preprocess.eval_tensor reads it from the data config)
    data_config = timm.data.resolve_model_data_config(net) | canonical_settings(config)
    label_names = list(config.get("label_names", LABEL_NAMES))
    member, member_weight = fusion_member(folder, config)
    from .familiarity import load_familiarity  # noqa: PLC0415 (beside the member: what a folder adds, loaded last)

    familiarity = load_familiarity(folder, config)
    if familiarity is not None and (fast_net is not None or config.get("test_time_flip")):
        raise ValueError('config.json "familiarity" needs a float net without test_time_flip (the features it measures are that net\'s)')
    return Detector(net=net, config=config, data_config=data_config, name=config.get("model_name", name), folder=folder, label_names=label_names,
                    fast_net=fast_net, member=member, member_weight=member_weight, familiarity=familiarity)


def fusion_member(folder: Path, config: dict) -> tuple[Detector | None, float]:
    """(the member detector, its weight) of a fused folder (config.json "fusion"), (None, 0.0) otherwise. The member
    must be the subfolder MEMBER_DIR and must not be fused itself; the weight must be a finite number."""
    fusion = config.get("fusion")
    if fusion is None:
        return None, 0.0
    weight = fusion.get("weight") if isinstance(fusion, dict) else None
    if not isinstance(fusion, dict) or fusion.get("member") != MEMBER_DIR or isinstance(weight, bool) or not isinstance(weight, (int, float)) or not np.isfinite(weight):
        raise ValueError(f'config.json "fusion" must be {{"member": "{MEMBER_DIR}", "weight": <number>}}, got {fusion!r}')
    member = load_detector(folder / MEMBER_DIR)
    if member.member is not None:
        raise ValueError("a fused folder's member must not be fused itself")
    return member, float(weight)
