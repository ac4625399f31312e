"""Convert the TF1 checkpoints of the musicnn 0.1.0 wheel into weights for our Keras port.

Run `python -m classifier.training.musicnn_convert [--wheel PATH] [--out models/musicnn]`; without a
wheel it is fetched with `pip download musicnn==0.1.0 --no-deps`. The package is never imported.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from classifier import musicnn

if TYPE_CHECKING:
    import keras

WHEEL_REQUIREMENT = "musicnn==0.1.0"
DEFAULT_OUT = Path("models/musicnn")
LICENSE_IN_WHEEL = "musicnn-0.1.0.dist-info/LICENSE.md"
CONFIG_IN_WHEEL = "musicnn/configuration.py"
LABELS_IN_CONFIG = {"MSD_musicnn": "MSD_LABELS", "MTT_musicnn": "MTT_LABELS"}
CHECKPOINT_SUFFIXES = (".index", ".data-00000-of-00001")

# Our layer -> the TF1 variable scope that holds its weights. tf.layers named variables by
# creation order (conv2d, conv2d_1, ...), which follows models.build_musicnn: input norm,
# timbral 7x38 and 7x67, temporal 128/64/32, three mid-end layers, then the back end.
LAYER_SCOPES = {
    "input_norm": "batch_normalization",
    "timbral_7x38_conv": "conv2d",
    "timbral_7x38_norm": "batch_normalization_1",
    "timbral_7x67_conv": "conv2d_1",
    "timbral_7x67_norm": "batch_normalization_2",
    "temporal_128_conv": "conv2d_2",
    "temporal_128_norm": "batch_normalization_3",
    "temporal_64_conv": "conv2d_3",
    "temporal_64_norm": "batch_normalization_4",
    "temporal_32_conv": "conv2d_4",
    "temporal_32_norm": "batch_normalization_5",
    "midend_1_conv": "conv2d_5",
    "midend_1_norm": "batch_normalization_6",
    "midend_2_conv": "conv2d_6",
    "midend_2_norm": "batch_normalization_7",
    "midend_3_conv": "conv2d_7",
    "midend_3_norm": "batch_normalization_8",
    "pool_norm": "batch_normalization_9",
    "penultimate_dense": "dense",
    "penultimate_norm": "batch_normalization_10",
    "tags_dense": "dense_1",
}
# Keras keeps a layer's weights in this order.
VARIABLES = {
    "BatchNormalization": ("gamma", "beta", "moving_mean", "moving_variance"),
    "Conv2D": ("kernel", "bias"),
    "Conv1D": ("kernel", "bias"),
    "Dense": ("kernel", "bias"),
}
# Variables of training only: Adam's moments and its step counters.
TRAINING_ONLY = ("Adam", "beta1_power", "beta2_power")

README = """\
# musicnn weights for Scriabin

Pretrained weights of **musicnn**, converted for our own Keras 3 implementation of its
architecture (`classifier/musicnn.py`). musicnn is by Jordi Pons and Xavier Serra (Music
Technology Group, Universitat Pompeu Fabra) and is distributed under the ISC licence, copied in
`LICENSE` beside this file; the weights here are a format conversion of theirs, unchanged.

> Jordi Pons and Xavier Serra. "musicnn: Pre-trained convolutional neural networks for music
> audio tagging." Late-breaking/demo session, 20th International Society for Music Information
> Retrieval Conference (ISMIR 2019), Delft. arXiv:1909.06654.
> Code and original checkpoints: https://github.com/jordipons/musicnn

## Files

- `MSD_musicnn.weights.h5`: the model trained on the Million Song Dataset (50 last.fm tags:
  genres, eras, moods).
- `MTT_musicnn.weights.h5`: the model trained on MagnaTagATune (50 tags: instruments, genres,
  vocals, tempo and mood).
- `tags.json`: for each model, its 50 tag names in output order, as in the original
  `configuration.py`.
- `LICENSE`: the musicnn licence.
- `MSD_musicnn.tflite`, `MTT_musicnn.tflite`: the same networks as LiteRT graphs of
  187-frame patches, which the bot serves (`classifier.musicnn.load_litert`), written
  from the weights above by `python -m classifier.training.litert_convert` (not by this
  converter): the same sums, rearranged to run faster (normalisation folded in, constant
  filters left out). On the 100 GTZAN-mini clips MSD's tag probabilities were within
  5.2e-6 and its penultimate features within 1.4e-5 of the Keras model's
  (`tests/test_litert.py`).

Each `.weights.h5` is a Keras 3 weights file for `classifier.musicnn.build_musicnn()`; load it
with `classifier.musicnn.load_backbone(name, Path("models/musicnn"))`. Input: log-mel patches
of 187 frames x 96 bands (3 s at 16 kHz) from `classifier.musicnn.log_mel_patches`.

## Reproduce

    python -m classifier.training.musicnn_convert --out models/musicnn

downloads `{requirement}` with pip (`--no-deps`; the package itself is never installed or
imported), reads its TF1 checkpoints with `tf.train.load_checkpoint`, maps each variable onto
our layers and writes these files. Pass `--wheel PATH` to convert a wheel already on disk.
Converted from `{wheel}` (sha256 `{sha256}`).

`tests/test_musicnn.py` checks that our port reproduces the original code's tag probabilities
and penultimate features to 1e-4 on generated clips; `benchmarks/musicnn_reference.py` made
that reference with the original package.
"""


def download_wheel(directory: Path) -> Path:
    """Fetch the musicnn wheel into `directory` with pip and return its path."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            WHEEL_REQUIREMENT,
            "--no-deps",
            "--only-binary=:all:",
            "--dest",
            str(directory),
        ],
        check=True,
    )
    return next(directory.glob("musicnn-*.whl"))


def read_labels(wheel: zipfile.ZipFile) -> dict[str, list[str]]:
    """The tag lists of the original configuration.py, read as literals without running it."""
    tree = ast.parse(wheel.read(CONFIG_IN_WHEEL).decode("utf-8"))
    literals = {
        target.id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    labels = {model: list(literals[name]) for model, name in LABELS_IN_CONFIG.items()}
    for model, tags in labels.items():
        if len(tags) != musicnn.N_TAGS:
            raise ValueError(f"{model} has {len(tags)} tags, expected {musicnn.N_TAGS}")
    return labels


def read_checkpoint(wheel: zipfile.ZipFile, model: str, scratch: Path) -> dict[str, np.ndarray]:
    """All variables of one model's TF1 checkpoint in the wheel, by name."""
    import tensorflow as tf

    # The wheel stores each checkpoint under an empty prefix ("MSD_musicnn/.index"), which
    # load_checkpoint would take for a directory; give the files a proper prefix.
    prefix = scratch / model
    for suffix in CHECKPOINT_SUFFIXES:
        (scratch / f"{model}{suffix}").write_bytes(wheel.read(f"musicnn/{model}/{suffix}"))
    reader = tf.train.load_checkpoint(str(prefix))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def convert(variables: dict[str, np.ndarray], model_name: str) -> keras.Model:
    """Our Keras model holding the checkpoint's weights; every model variable is used once."""
    model = musicnn.build_musicnn(model_name)
    unused = {name for name in variables if not any(part in name for part in TRAINING_ONLY)}
    for layer_name, scope in LAYER_SCOPES.items():
        layer = model.get_layer(layer_name)
        weights = []
        for variable, current in zip(
            VARIABLES[type(layer).__name__], layer.get_weights(), strict=True
        ):
            name = f"{scope}/{variable}"
            value = variables[name]
            if type(layer).__name__ == "Conv1D" and variable == "kernel":
                # A full-width conv2d kernel (length, features, 1, filters) is a 1-D kernel.
                value = value[:, :, 0, :]
            if value.shape != current.shape:
                raise ValueError(
                    f"{name} has shape {value.shape}, {layer_name} needs {current.shape}"
                )
            weights.append(value)
            unused.discard(name)
        layer.set_weights(weights)
    if unused:
        raise ValueError(f"checkpoint variables left unmapped: {sorted(unused)}")
    return model


def write_outputs(wheel_path: Path, out: Path) -> None:
    """Convert both musicnn models in the wheel and write weights, tags, licence and README."""
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel_path) as wheel, tempfile.TemporaryDirectory() as scratch:
        for model_name in musicnn.BACKBONES:
            variables = read_checkpoint(wheel, model_name, Path(scratch))
            model = convert(variables, model_name)
            model.save_weights(out / f"{model_name}{musicnn.WEIGHTS_SUFFIX}")
            print(f"wrote {out / (model_name + musicnn.WEIGHTS_SUFFIX)}")
        labels = read_labels(wheel)
        licence = wheel.read(LICENSE_IN_WHEEL).decode("utf-8")
    (out / musicnn.TAGS_FILE).write_text(json.dumps(labels, indent=2) + "\n", encoding="utf-8")
    (out / "LICENSE").write_text(licence.strip() + "\n", encoding="utf-8")
    sha256 = hashlib.sha256(wheel_path.read_bytes()).hexdigest()
    readme = README.format(requirement=WHEEL_REQUIREMENT, wheel=wheel_path.name, sha256=sha256)
    (out / "README.md").write_text(readme, encoding="utf-8")
    print(f"wrote {musicnn.TAGS_FILE}, LICENSE and README.md in {out}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help="musicnn-0.1.0 wheel (default: pip download)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    args = parser.parse_args(argv)
    if args.wheel is not None:
        write_outputs(args.wheel, args.out)
        return
    with tempfile.TemporaryDirectory() as download:
        write_outputs(download_wheel(Path(download)), args.out)


if __name__ == "__main__":
    main()
