"""Inference code shared by the app, the evaluation CLI and training.

Data flows one way: bytes -> image (`images`) -> faces (`faces`) -> canonical crops
(`preprocess`) -> tensors -> probabilities (`model`) -> verdicts (`predict`).
Nothing here imports training-only packages (accelerate, datasets, evaluate).
"""

__version__ = "0.1.0"
