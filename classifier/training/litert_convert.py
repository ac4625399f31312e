"""Convert Scriabin's Keras models into LiteRT graphs (`.tflite`), which the bot serves without
TensorFlow: both pretrained backbones, and the head of every model card in the models folder.

Run `python -m classifier.training.litert_convert [--models-dir models]`; `scriabin train` also
writes the graph of each head it trains. The graphs compute what the Keras models compute, in
float32: each is checked against its Keras model here (on generated audio), and
tests/classifier/test_litert.py holds them to the Keras outputs on real music.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from classifier import efficientat, litert, musicnn
from classifier.backbones import EFFICIENTAT, EFFICIENTAT_DIR, MUSICNN_DIR
from classifier.kinds import model_kind
from classifier.model import ModelCard, available_models
from classifier.tags import TAG_BACKBONE
from config import DEFAULT_MODELS_DIR

from .cards import write_card, write_serving

if TYPE_CHECKING:
    import keras

# A graph whose outputs differ from its Keras model's by more than this, relative to the
# outputs' size (at least 1), is refused: float32 rounding stays orders of magnitude below it.
CHECK_TOLERANCE = 1e-4

# A long temporal filter of musicnn (128 frames of one band) is run as a short one over blocks
# of this many frames, the frames of a block as its input channels: the same sums, in a form
# the CPU kernels run about twice as fast as a filter over a single input channel.
TEMPORAL_BLOCK = 8
# Likewise the 7-frame timbral filters: their frames and blocks of this many bands as channels.
TIMBRAL_BLOCK = 4
# Stands in for an infinite bound of a one-sided clamp.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def tflite_bytes(
    function: Callable[..., dict[str, Any]], input_name: str, input_shape: Sequence[int | None]
) -> bytes:
    """A LiteRT flatbuffer of `function` (TensorFlow ops on one float32 input, returning a dict
    of named outputs), with every variable frozen to a constant and the names kept in its
    signature: `serving_default`, input `input_name`, outputs the dict's keys."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    spec = tf.TensorSpec(list(input_shape), tf.float32, name=input_name)
    names = None

    def positional(inputs: Any) -> tuple[Any, ...]:
        nonlocal names
        outputs = function(inputs)
        names = tuple(outputs)
        return tuple(outputs[name] for name in names)

    traced = tf.function(positional, input_signature=[spec], autograph=False)
    frozen = convert_variables_to_constants_v2(traced.get_concrete_function())
    assert names is not None
    # Freezing loses the output names; a call of the frozen graph under a named signature
    # gives them back.
    named = tf.function(
        lambda inputs: dict(zip(names, frozen(inputs), strict=True)),
        input_signature=[spec],
        autograph=False,
    )
    holder = tf.Module()
    holder.serve = named
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [named.get_concrete_function()], holder
    )
    return converter.convert()


def _affine(weights: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Batch normalisation in inference as x * scale + shift, computed in float64."""
    gamma, beta, mean, variance = (np.asarray(w, dtype=np.float64) for w in weights)
    scale = gamma / np.sqrt(variance + musicnn.BN_EPSILON)
    return scale, beta - mean * scale


def blocked_taps(kernel: np.ndarray, block: int) -> np.ndarray:
    """A filter over a sequence, `kernel` (taps, ...), rearranged to run over blocks of `block`
    positions with the positions of a block as channels: (reach, block in, block out, ...).

    Output position q * block + p reads input position (q + m) * block + i, which is tap
    m * block + i - p of the original filter (zero where there is no such tap).
    """
    taps = len(kernel)
    reach = -(-(taps + block - 1) // block)
    blocked = np.zeros((reach, block, block, *kernel.shape[1:]), dtype=np.float64)
    for m in range(reach):
        for i in range(block):
            for p in range(block):
                tap = m * block + i - p
                if 0 <= tap < taps:
                    blocked[m, i, p] = kernel[tap]
    return blocked


@dataclass(frozen=True)
class FrontEndBlock:
    """One musicnn front-end block as computed: its live filters, normalisation folded in."""

    timbral: bool  # else temporal
    kernel: np.ndarray  # the Keras kernel times the normalisation's scale, live filters only
    bias: np.ndarray
    positive: np.ndarray  # where the normalisation's scale is >= 0
    shift: np.ndarray


def musicnn_function(model: keras.Model) -> Callable[[Any], dict[str, Any]]:
    """The musicnn backbone (a whole Keras model from `musicnn.load_keras_model`) rewritten as
    TensorFlow ops for 187-frame patches, giving the outputs of its Keras backbone.

    Only the arrangement of the sums changes. Each front-end block's normalisation is folded
    into its convolution: its scale s moves into the kernel (the max over frequency of
    s * relu(c) is relu(max of s * c) when s >= 0, min(max of s * c, 0) when s < 0) and its
    shift is added after the max. Filters whose output is a constant
    (musicnn.find_dead_filters) are not computed: what they add to the mid end and back end
    is folded into biases. The back end's normalisation, and its interleaving of maxima and
    means, are folded into the dense layer after it. The front end's convolutions run over
    blocks of frames or bands (`blocked_taps`).
    """
    return MusicnnGraph(model)


class MusicnnGraph:
    """The arrays of `musicnn_function`'s graph, computed in float64 from the Keras weights,
    and the graph itself (`__call__`, TensorFlow ops)."""

    def __init__(self, model: keras.Model) -> None:
        weights = {layer.name: layer.get_weights() for layer in model.layers if layer.weights}
        dead = musicnn.find_dead_filters(model)
        self.input_affine = _affine(weights["input_norm"])

        # The front end's 561 channels in the Keras order: which are computed, which constant.
        live, dead_channels, dead_values = [], [], []
        self.front_end: list[FrontEndBlock] = []
        offset = 0
        for tag, filters, _kernel_size, padding in musicnn.FRONTEND_BLOCKS:
            kernel, bias = weights[f"{tag}_conv"]
            scale, shift = _affine(weights[f"{tag}_norm"])
            skipped = dead.get(tag)
            kept = np.arange(filters) if skipped is None else skipped.live
            if skipped is not None:
                dead_channels.extend(offset + skipped.dead)
                dead_values.extend(skipped.values)
            live.extend(offset + kept)
            offset += filters
            block = FrontEndBlock(
                timbral=padding == "valid",
                kernel=kernel[..., kept] * scale[kept],
                bias=bias[kept] * scale[kept],
                positive=scale[kept] >= 0,
                shift=shift[kept],
            )
            self.front_end.append(block)
        live_channels = np.array(live)
        constant = np.array(dead_channels, dtype=int)
        values = np.array(dead_values, dtype=np.float64)

        # Mid end: the first layer reads the computed channels; the constant ones add, at each
        # frame, what the kernel taps that fall inside the patch make of them.
        frames = musicnn.PATCH_FRAMES
        kernel, bias = weights["midend_1_conv"]
        taps = np.einsum("kcf,c->kf", np.asarray(kernel, dtype=np.float64)[:, constant], values)
        constant_map = np.zeros((frames, musicnn.MIDEND_FILTERS))
        for k in range(musicnn.MIDEND_LENGTH):
            reads = k - musicnn.MIDEND_LENGTH // 2  # frame t reads frame t + reads
            constant_map[max(0, -reads) : min(frames, frames - reads)] += taps[k]
        self.mid_end = [
            (kernel[:, live_channels], constant_map + bias, _affine(weights["midend_1_norm"]))
        ]
        for i in range(2, musicnn.MIDEND_LAYERS + 1):
            kernel, bias = weights[f"midend_{i}_conv"]
            self.mid_end.append((kernel, bias, _affine(weights[f"midend_{i}_norm"])))

        # Back end. The channels we pool, in the order we compute them: the front end's live
        # ones, then the mid end's. The Keras model interleaves max and mean of all 753.
        pooled = np.concatenate(
            [live_channels, musicnn.FRONTEND_CHANNELS + np.arange(3 * musicnn.MIDEND_FILTERS)]
        )
        pool_scale, pool_shift = _affine(weights["pool_norm"])
        kernel, bias = (np.asarray(w, dtype=np.float64) for w in weights["penultimate_dense"])
        scaled = kernel * pool_scale[:, None]
        self.dense = (
            np.concatenate([scaled[2 * pooled], scaled[2 * pooled + 1]]),
            bias + pool_shift @ kernel + values @ (scaled[2 * constant] + scaled[2 * constant + 1]),
        )
        self.penultimate_affine = _affine(weights["penultimate_norm"])
        self.tags_dense = weights["tags_dense"]
        # The pooled output in the Keras order (753 maxima, then 753 means): a 0/1 matrix puts
        # the computed ones in their places, a constant the others.
        count = len(pooled)
        self.placement = np.zeros((2 * count, musicnn.POOLED_SIZE))
        self.placement[np.arange(count), pooled] = 1.0
        self.placement[count + np.arange(count), musicnn.MIDEND_CHANNELS + pooled] = 1.0
        self.pooled_constant = np.zeros(musicnn.POOLED_SIZE)
        self.pooled_constant[constant] = values
        self.pooled_constant[musicnn.MIDEND_CHANNELS + constant] = values

    def __call__(self, patches: Any) -> dict[str, Any]:
        import tensorflow as tf

        scale, shift = self.input_affine
        image = patches * _f32(scale) + _f32(shift)
        x = tf.concat([self.front_end_block(image, block) for block in self.front_end], -1)
        layers = [x]
        for i, (kernel, bias, (scale, shift)) in enumerate(self.mid_end):
            conv = tf.nn.relu(tf.nn.conv1d(x, _f32(kernel), 1, "SAME") + _f32(bias))
            normed = conv * _f32(scale) + _f32(shift)
            x = normed if i == 0 else normed + x
            layers.append(x)
        stacked = tf.concat(layers, axis=-1)
        pooled = tf.concat([tf.reduce_max(stacked, 1), tf.reduce_mean(stacked, 1)], axis=-1)
        kernel, bias = self.dense
        hidden = tf.nn.relu(tf.matmul(pooled, _f32(kernel)) + _f32(bias))
        scale, shift = self.penultimate_affine
        penultimate = hidden * _f32(scale) + _f32(shift)
        kernel, bias = self.tags_dense
        logits = tf.matmul(penultimate, _f32(kernel)) + _f32(bias)
        return {
            "taggram": tf.sigmoid(logits),
            "penultimate": penultimate,
            "pooled": tf.matmul(pooled, _f32(self.placement)) + _f32(self.pooled_constant),
        }

    def front_end_block(self, image: Any, block: FrontEndBlock) -> Any:
        """(batch, frames, live filters): the block's normalised maxima over frequency."""
        import tensorflow as tf

        if block.timbral:
            maxima = self.timbral_maxima(image, block.kernel, block.bias)
        else:
            maxima = self.temporal_maxima(image, block.kernel[:, 0, 0, :], block.bias)
        low = np.where(block.positive, 0.0, -FLOAT32_MAX)
        high = np.where(block.positive, FLOAT32_MAX, 0.0)
        return tf.minimum(tf.maximum(maxima, _f32(low)), _f32(high)) + _f32(block.shift)

    @staticmethod
    def timbral_maxima(image: Any, kernel: np.ndarray, bias: np.ndarray) -> Any:
        """Max over frequency of a timbral convolution: `length` frames (zero-padded in time)
        by `width` bands (valid in frequency). Its frames are input channels, and so are the
        bands of each block of TIMBRAL_BLOCK."""
        import tensorflow as tf

        length, width, _, channels = kernel.shape
        frames, r = musicnn.PATCH_FRAMES, TIMBRAL_BLOCK
        bands = musicnn.N_MELS - width + 1
        blocked = blocked_taps(np.moveaxis(kernel[:, :, 0], 1, 0), r)  # (reach, i, p, t, c)
        reach = len(blocked)
        blocks_out = -(-bands // r)
        blocks_in = blocks_out + reach - 1
        padded = tf.pad(
            image, [[0, 0], [length // 2, length // 2], [0, blocks_in * r - musicnn.N_MELS]]
        )
        frames_as_channels = tf.stack([padded[:, k : k + frames] for k in range(length)], -1)
        grouped = tf.reshape(frames_as_channels, [-1, frames, blocks_in, r * length])
        weights = blocked.transpose(0, 1, 3, 2, 4).reshape(1, reach, r * length, r * channels)
        conv = tf.nn.conv2d(grouped, _f32(weights), 1, "VALID") + _f32(np.tile(bias, r))
        # One window over the valid bands: those past them read the padding.
        by_band = tf.reshape(conv, [-1, frames, blocks_out * r, channels])
        return tf.nn.max_pool2d(by_band, (1, bands), (1, bands), "VALID")[:, :, 0, :]

    @staticmethod
    def temporal_maxima(image: Any, kernel: np.ndarray, bias: np.ndarray) -> Any:
        """Max over frequency of a temporal convolution: `length` frames of one band, with
        TensorFlow's "same" padding. The frames of each block of TEMPORAL_BLOCK are input
        channels."""
        import tensorflow as tf

        length, channels = kernel.shape
        frames, r = musicnn.PATCH_FRAMES, TEMPORAL_BLOCK
        blocked = blocked_taps(kernel, r)  # (reach, i, p, c)
        reach = len(blocked)
        blocks_out = -(-frames // r)
        blocks_in = blocks_out + reach - 1
        before = (length - 1) // 2
        padded = tf.pad(image, [[0, 0], [before, blocks_in * r - frames - before], [0, 0]])
        grouped = tf.reshape(padded, [-1, blocks_in, r, musicnn.N_MELS])
        grouped = tf.transpose(grouped, [0, 1, 3, 2])  # (batch, block, band, frame in block)
        weights = blocked.reshape(reach, 1, r, r * channels)
        conv = tf.nn.conv2d(grouped, _f32(weights), 1, "VALID") + _f32(np.tile(bias, r))
        maxima = tf.nn.max_pool2d(conv, (1, musicnn.N_MELS), 1, "VALID")
        return tf.reshape(maxima, [-1, blocks_out * r, channels])[:, :frames, :]


def _f32(array: np.ndarray) -> Any:
    import tensorflow as tf

    return tf.constant(np.asarray(array, dtype=np.float32))


def efficientat_function(model: keras.Model) -> Callable[[Any], dict[str, Any]]:
    """EfficientAT mn04 (`efficientat.build_mn04` with weights, batch norm already folded) with
    the outputs of `efficientat.EfficientAtOutputs`, for windows of any length."""
    import tensorflow as tf

    def graph(log_mels: Any) -> dict[str, Any]:
        logits, embedding, hidden = model(log_mels, training=False)
        return {
            "logits": logits,
            "probabilities": tf.sigmoid(logits),
            "embedding": embedding,
            "hidden": hidden,
        }

    return graph


def head_function(network: keras.Model) -> Callable[[Any], dict[str, Any]]:
    """A genre head (Keras Dense layers ending in a softmax): genre probabilities of rows."""
    return lambda features: {"probabilities": network(features, training=False)}


def probe_audio(seconds: float, sample_rate: int, seed: int = 0) -> np.ndarray:
    """Music-like test audio for the conversion checks: chords, a beat and some noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    roots = 110.0 * 2 ** (rng.integers(0, 12, size=6) / 12)
    chord = roots[(t // 1.5).astype(int) % len(roots)]
    tone = sum(np.sin(2 * np.pi * chord * ratio * t) for ratio in (1, 1.26, 1.5, 2))
    beat = np.sin(2 * np.pi * 55 * t) * np.exp(-((t * 2) % 1) * 10)
    signal = tone + 2 * beat + 0.3 * rng.standard_normal(t.size)
    return (0.4 * signal / np.abs(signal).max()).astype(np.float32)


def max_differences(
    graph_file: Path, inputs: np.ndarray, expected: Mapping[str, np.ndarray]
) -> dict[str, float]:
    """The largest |LiteRT - Keras| of each output, and refuse the graph past CHECK_TOLERANCE.
    Without LiteRT on this platform, nothing to check against (an empty answer)."""
    if not litert.available():
        return {}
    outputs = litert.Graph(graph_file, 1)(inputs)
    differences = {}
    for name, want in expected.items():
        difference = float(np.abs(outputs[name] - want).max())
        if difference > CHECK_TOLERANCE * max(1.0, float(np.abs(want).max())):
            raise ValueError(
                f"{graph_file}: output {name} is {difference:.3g} away from the Keras model's"
            )
        differences[name] = difference
    return differences


def convert_efficientat(weights_dir: Path) -> dict[str, float]:
    """Write `efficientat.LITERT_FILE` beside EfficientAT's Keras weights."""
    backbone = efficientat.load_backbone(weights_dir)
    graph_file = weights_dir / efficientat.LITERT_FILE
    graph_file.write_bytes(
        tflite_bytes(
            efficientat_function(backbone.model), "log_mel", [None, efficientat.N_MELS, None]
        )
    )
    clip = probe_audio(12, efficientat.SAMPLE_RATE)
    window = len(clip) // 4
    windows = np.stack(
        [efficientat.log_mel(clip[i : i + window]) for i in range(0, 4 * window, window)]
    )
    expected = backbone.embed(windows)
    return max_differences(graph_file, windows, vars(expected))


def convert_musicnn(name: str, weights_dir: Path) -> dict[str, float]:
    """Write musicnn `name`'s graph (LITERT_SUFFIX) beside its Keras weights."""
    graph_file = (weights_dir / name).with_suffix(musicnn.LITERT_SUFFIX)
    function = musicnn_function(musicnn.load_keras_model(name, weights_dir))
    graph_file.write_bytes(
        tflite_bytes(function, "patches", [None, musicnn.PATCH_FRAMES, musicnn.N_MELS])
    )
    patches = musicnn.log_mel_patches(probe_audio(12, musicnn.SAMPLE_RATE))
    expected = musicnn.load_backbone(name, weights_dir).embed(patches)
    return max_differences(graph_file, patches, vars(expected))


def write_head(network: keras.Model, card: ModelCard) -> dict[str, Any]:
    """Write the graph of a genre head beside its card (`<name>.tflite`); returns the card's
    `serving` section, which names it and the graphs of its backbones."""
    graph_file = card.model_path.with_suffix(".tflite")
    width = int(network.input_shape[-1])
    graph_file.write_bytes(tflite_bytes(head_function(network), "features", [None, width]))
    features = np.random.default_rng(0).normal(scale=2.0, size=(16, width)).astype(np.float32)
    expected = {"probabilities": np.asarray(network(features, training=False))}
    max_differences(graph_file, features, expected)
    return {
        "runtime": "LiteRT (ai-edge-litert), float32",
        "file": graph_file.name,
        "backbones": backbone_graphs(card),
        "converted_with": litert.CONVERT_COMMAND,
    }


def write_head_model(model: Any, card: ModelCard) -> ModelCard:
    """A genre head over the pretrained backbones: its Keras network, its LiteRT graph (what
    the bot serves, named in the card's `serving`), and the card with the fitted model's
    descriptive-tag calibration."""
    card = replace(card, features={**card.features, "tags": model.card.features.get("tags")})
    card.path.parent.mkdir(parents=True, exist_ok=True)
    model.network.save(card.model_path)
    return write_card(replace(card, serving=write_head(model.network, card)))


def backbone_graphs(card: ModelCard) -> dict[str, str]:
    """The graph of each backbone the card's model hears, relative to the card's folder (or
    else to Scriabin's bundled models folder, as classifier.backbones.weights_dir finds it)."""
    features = card.features
    musicnn_dir = features.get("musicnn_dir", features.get("weights_dir", MUSICNN_DIR))
    names = list(features.get("backbones", []))
    if features.get("tags") and TAG_BACKBONE not in names:
        names.append(TAG_BACKBONE)
    return {
        name: (
            f"{features.get('efficientat_dir', EFFICIENTAT_DIR)}/{efficientat.LITERT_FILE}"
            if name == EFFICIENTAT
            else f"{musicnn_dir}/{name}{musicnn.LITERT_SUFFIX}"
        )
        for name in names
    }


def convert_card(card: ModelCard) -> ModelCard:
    """Write the LiteRT graph of `card`'s saved Keras head and name it in the card."""
    import keras

    network = keras.saving.load_model(card.model_path, compile=False)
    return write_serving(card, write_head(network, card))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=DEFAULT_MODELS_DIR,
        help=f"the folder of model cards, with {EFFICIENTAT_DIR}/ and {MUSICNN_DIR}/ inside",
    )
    parser.add_argument(
        "--heads-only", action="store_true", help="convert the cards' heads, not the backbones"
    )
    args = parser.parse_args(argv)
    models_dir = Path(args.models_dir)
    if not args.heads_only:
        weights_dir = models_dir / EFFICIENTAT_DIR
        _report(weights_dir / efficientat.LITERT_FILE, convert_efficientat(weights_dir))
        for name in musicnn.BACKBONES:
            weights_dir = models_dir / MUSICNN_DIR
            graph_file = (weights_dir / name).with_suffix(musicnn.LITERT_SUFFIX)
            _report(graph_file, convert_musicnn(name, weights_dir))
    for card in available_models(models_dir):
        if model_kind(card.kind).head_graph:
            card = convert_card(card)
            print(f"wrote {card.litert_path} and named it in {card.path}")


def _report(graph_file: Path, differences: Mapping[str, float]) -> None:
    checked = ", ".join(f"{name} {value:.2g}" for name, value in differences.items())
    print(f"wrote {graph_file}" + (f" (max |LiteRT - Keras|: {checked})" if checked else ""))


if __name__ == "__main__":
    main()
