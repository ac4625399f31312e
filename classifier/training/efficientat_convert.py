"""Convert the EfficientAT mn04_as checkpoint (its state dict as NumPy arrays) into weights for our
Keras port, classifier/efficientat.py.

Run `python -m classifier.training.efficientat_convert [--npz PATH] [--out models/efficientat]`.
The npz holds the PyTorch state dict's tensors under their names; the AudioSet label CSV is read
from beside it. Batch normalisation is folded into the convolution before it (in float64, then
rounded to float32). Every tensor must find its layer and every layer its weights, or we stop.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from classifier import efficientat
from config import PROJECT_ROOT

if TYPE_CHECKING:
    import keras

DEFAULT_NPZ = (
    PROJECT_ROOT.parent / "shared" / "pretrained" / "efficientat-mn04" / "mn04_as_mAP_432.npz"
)
DEFAULT_OUT = PROJECT_ROOT / "models" / "efficientat"
LABELS_CSV = "audioset_class_labels_indices.csv"
CHECKPOINT = "mn04_as_mAP_432"
# sha256 of the checkpoint as EfficientAT released it (the .pt beside the npz).
CHECKPOINT_SHA256 = "899a8c6217063f6941793102a2780b3dd788ab11fce468d9cf5f0577c453321c"
# Batch-norm bookkeeping of training only: how many batches updated the running statistics.
TRAINING_ONLY_SUFFIX = ".num_batches_tracked"
BN_PARAMETERS = ("weight", "bias", "running_mean", "running_var")

LICENSE = """\
MIT License

Copyright (c) 2022 Florian Schmid

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""

README = """\
# EfficientAT mn04_as weights for Scriabin

Pretrained weights of **EfficientAT `mn04_as`**, converted for our own Keras 3 implementation
of its architecture (`classifier/efficientat.py`). EfficientAT is by Florian Schmid, Khaled
Koutini and Gerhard Widmer (Institute of Computational Perception, Johannes Kepler University
Linz) and is distributed under the MIT licence, copied in `LICENSE` beside this file; the
weights here are a format conversion of theirs, with batch normalisation folded into the
convolutions (the same function, to float32 rounding).

> Florian Schmid, Khaled Koutini and Gerhard Widmer. "Efficient Large-Scale Audio Tagging via
> Transformer-to-CNN Knowledge Distillation." IEEE International Conference on Acoustics,
> Speech and Signal Processing (ICASSP 2023). arXiv:2211.04772.
> Code and original checkpoints: https://github.com/fschmid56/EfficientAT

The model is a MobileNetV3 at width 0.4 (0.98 M parameters) trained on AudioSet (527 classes,
mAP 0.432), distilled from an ensemble of transformers. The class names in `labels.json` are
AudioSet's ontology labels (`class_labels_indices.csv`), © Google, licensed CC BY 4.0
(https://creativecommons.org/licenses/by/4.0/); AudioSet: Gemmeke et al., "Audio Set: An
ontology and human-labeled dataset for audio events", ICASSP 2017.

## Files

- `mn04_as.weights.h5`: a Keras 3 weights file for `classifier.efficientat.build_mn04()`,
  converted from the checkpoint `{checkpoint}` (PyTorch state dict, sha256
  `{checkpoint_sha256}`).
- `labels.json`: `labels`, the 527 AudioSet display names in output order; `converted_from`,
  the file and sha256 of the arrays this conversion read.
- `LICENSE`: the EfficientAT licence.
- `mn04_as.tflite`: the same network as a LiteRT graph, which the bot serves
  (`classifier.efficientat.load_litert`), written from the weights above by
  `python -m classifier.training.litert_convert` (not by this converter). On the 100
  GTZAN-mini clips its logits were within 3.3e-5 of the Keras model's
  (`tests/test_litert.py`).

Load with `classifier.efficientat.load_backbone(Path("models/efficientat"))`; its `embed()`
gives logits, sigmoid probabilities, the 384-d pooled embedding and the 512-d hidden layer per
window.

## Front end

As the model was trained (EfficientAT's `AugmentMelSTFT` in eval mode), computed by
`classifier.efficientat.log_mel` in NumPy float32: 32 kHz mono; pre-emphasis
x[n + 1] - 0.97 x[n]; centred STFT (reflect padding) with n_fft 1024, a symmetric 800-sample
Hann window in the middle of each frame, hop 320 (10 ms); power spectrum; 128 Kaldi mel banks
(triangles on the 1127 ln(1 + f/700) scale) from 0 Hz to 15 kHz; ln(mel + 1e-5); then
(x + 4.5) / 5. Input layout: (windows, 128 bands, frames); it was trained on 10-s clips
(1000 frames) but takes any length.

## Reproduce

    python -m classifier.training.efficientat_convert --out models/efficientat

reads `../shared/pretrained/efficientat-mn04/mn04_as_mAP_432.npz` (the checkpoint's 312
tensors under their state-dict names, pass another with `--npz`) and the label CSV beside it,
maps every tensor onto our layers (PyTorch OIHW kernels to Keras HWIO, depthwise kernels to
(h, w, channels, 1), Linear weights transposed, batch normalisation folded in float64) and writes
these files; it stops if any tensor is left over or any layer left without weights.
Converted from `{npz_name}` (sha256 `{npz_sha256}`).

## How the port is checked

`tests/test_efficientat.py` holds our front end and network to the original PyTorch code's
outputs on generated clips (`tests/fixtures/efficientat_reference.npz`, made by
`benchmarks/efficientat_reference.py` with EfficientAT's own model and preprocessing code and
the original `.pt` checkpoint, in eval mode): log-mel within 2e-4, logits within 1e-3,
embeddings and hidden layer within 2e-4 (measured: 2.6e-5, 1.5e-5, 2.6e-6 and 8.1e-6, float32
rounding). It also checks that converting again gives these weights bit for bit. On the 100
GTZAN-mini clips the port's logits were within 3.3e-5 of the original's.
"""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_labels(csv_path: Path) -> list[str]:
    """The display names of AudioSet's class_labels_indices.csv, in index order."""
    with csv_path.open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    indices = [int(row["index"]) for row in rows]
    if indices != list(range(efficientat.N_CLASSES)):
        raise ValueError(f"{csv_path}: expected indices 0..{efficientat.N_CLASSES - 1} in order")
    return [row["display_name"] for row in rows]


class StateDict:
    """The checkpoint's tensors; remembers which ones the conversion used."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays
        self.used: set[str] = set()

    def take(self, key: str) -> np.ndarray:
        if key not in self.arrays:
            raise KeyError(f"the checkpoint has no tensor {key!r}")
        if key in self.used:
            raise KeyError(f"tensor {key!r} mapped twice")
        self.used.add(key)
        return np.asarray(self.arrays[key])

    def folded_conv(self, prefix: str, depthwise: bool) -> list[np.ndarray]:
        """Keras [kernel, bias] of torchvision's ConvNormActivation `prefix` (.0 = Conv2d without
        bias, .1 = BatchNorm2d), with the normalisation folded into the convolution."""
        weight = self.take(f"{prefix}.0.weight").astype(np.float64)
        gamma, beta, mean, variance = (
            self.take(f"{prefix}.1.{name}").astype(np.float64) for name in BN_PARAMETERS
        )
        self.take(f"{prefix}.1{TRAINING_ONLY_SUFFIX}")
        scale = gamma / np.sqrt(variance + efficientat.BN_EPSILON)
        if depthwise:
            # (channels, 1, h, w) -> (h, w, channels, 1)
            kernel = weight.transpose(2, 3, 0, 1) * scale[:, None]
        else:
            # (out, in, h, w) -> (h, w, in, out)
            kernel = weight.transpose(2, 3, 1, 0) * scale
        bias = beta - mean * scale
        return [kernel.astype(np.float32), bias.astype(np.float32)]

    def linear(self, prefix: str) -> list[np.ndarray]:
        """Keras Dense [kernel, bias] of torch.nn.Linear `prefix`: (out, in) -> (in, out)."""
        weight = self.take(f"{prefix}.weight")
        bias = self.take(f"{prefix}.bias")
        return [np.ascontiguousarray(weight.T, dtype=np.float32), bias.astype(np.float32)]


def layer_weights(state: StateDict) -> dict[str, list[np.ndarray]]:
    """Our layer name -> its weights, following EfficientAT's module tree: features.0 the stem,
    features.1-15 the inverted residual blocks, features.16 the last 1x1 convolution,
    classifier.2 and classifier.5 the MLP head's two Linear layers."""
    weights = {"stem_conv": state.folded_conv("features.0", depthwise=False)}
    for block in efficientat.BLOCKS:
        prefix, torch_prefix = f"block{block.index:02d}", f"features.{block.index}.block"
        # The block's Sequential numbers its modules in order: expand (if any), depthwise,
        # squeeze-excitation (if any), project.
        position = 0
        if block.expands:
            weights[f"{prefix}_expand_conv"] = state.folded_conv(
                f"{torch_prefix}.{position}", depthwise=False
            )
            position += 1
        weights[f"{prefix}_depthwise_conv"] = state.folded_conv(
            f"{torch_prefix}.{position}", depthwise=True
        )
        position += 1
        if block.squeeze is not None:
            se = f"{torch_prefix}.{position}.conc_se_layers.0"
            weights[f"{prefix}_se_reduce"] = state.linear(f"{se}.fc1")
            weights[f"{prefix}_se_expand"] = state.linear(f"{se}.fc2")
            position += 1
        weights[f"{prefix}_project_conv"] = state.folded_conv(
            f"{torch_prefix}.{position}", depthwise=False
        )
    weights["head_conv"] = state.folded_conv(f"features.{len(efficientat.BLOCKS) + 1}", False)
    weights["classifier_hidden"] = state.linear("classifier.2")
    weights["logits"] = state.linear("classifier.5")
    return weights


def convert(arrays: dict[str, np.ndarray]) -> keras.Model:
    """Our model with the checkpoint's weights; raises if anything is left unmapped."""
    state = StateDict(arrays)
    weights = layer_weights(state)
    unused = sorted(set(arrays) - state.used)
    if unused:
        raise ValueError(f"{len(unused)} checkpoint tensors have no layer: {unused}")
    model = efficientat.build_mn04()
    with_weights = {layer.name for layer in model.layers if layer.weights}
    if with_weights != set(weights):
        raise ValueError(
            f"layers without weights: {sorted(with_weights - set(weights))}; "
            f"weights without a layer: {sorted(set(weights) - with_weights)}"
        )
    for name, values in weights.items():
        layer = model.get_layer(name)
        expected = [tuple(w.shape) for w in layer.weights]
        if [v.shape for v in values] != expected:
            raise ValueError(f"{name}: shapes {[v.shape for v in values]}, expected {expected}")
        layer.set_weights(values)
    return model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--npz", type=Path, default=DEFAULT_NPZ, help="the state dict as .npz")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args(argv)
    if not args.npz.is_file():
        parser.error(f"{args.npz} not found")
    labels_csv = args.npz.parent / LABELS_CSV
    if not labels_csv.is_file():
        parser.error(f"{labels_csv} not found (the AudioSet labels belong beside the npz)")

    with np.load(args.npz) as npz:
        arrays = {key: npz[key] for key in npz.files}
    model = convert(arrays)
    npz_sha256 = sha256(args.npz)
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_weights(args.out / efficientat.WEIGHTS_FILE)
    labels = {
        "labels": read_labels(labels_csv),
        "converted_from": {"file": args.npz.name, "sha256": npz_sha256},
    }
    (args.out / efficientat.LABELS_FILE).write_text(
        json.dumps(labels, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (args.out / "README.md").write_text(
        README.format(
            checkpoint=CHECKPOINT,
            checkpoint_sha256=CHECKPOINT_SHA256,
            npz_name=args.npz.name,
            npz_sha256=npz_sha256,
        ),
        encoding="utf-8",
    )
    (args.out / "LICENSE").write_text(LICENSE, encoding="utf-8")
    print(f"converted {len(arrays)} tensors from {args.npz} into {args.out}")


if __name__ == "__main__":
    main()
