"""Our Keras 3 port of the pretrained EfficientAT mn04_as AudioSet tagger (Schmid, Koutini & Widmer,
ICASSP 2023): its log-mel front end and its CNN, giving 527 AudioSet logits and 384-d embeddings;
served from its LiteRT graph, trained and converted from the Keras model."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import extras

if TYPE_CHECKING:
    import keras

    from .litert import Graph

# Front end, as the model was trained (EfficientAT's AugmentMelSTFT in eval mode): 32 kHz mono,
# pre-emphasis, a centred 1024-point STFT of an 800-sample Hann window every 320 samples, power,
# 128 Kaldi mel banks, natural log, then a fixed normalisation.
SAMPLE_RATE = 32000
N_FFT = 1024
WIN_LENGTH = 800  # symmetric Hann, centred in the N_FFT frame
HOP = 320  # 10 ms
N_MELS = 128
FMIN = 0.0
FMAX = SAMPLE_RATE / 2 - 1000.0  # the reference's default: Nyquist minus half its 2 kHz jitter
PREEMPHASIS = 0.97
LOG_OFFSET = 1e-5
NORM_SHIFT = 4.5
NORM_SCALE = 5.0
CLIP_SECONDS = 10  # AudioSet clips: what the model was trained on
CLIP_FRAMES = 1 + (CLIP_SECONDS * SAMPLE_RATE - 1) // HOP  # 1000
CHUNK_FRAMES = 128  # frames log_mel transforms at a time

# Architecture: MobileNetV3-Large at width 0.4 with channel squeeze-excitation, as EfficientAT's
# get_model(width_mult=0.4) builds it (defaults: strides 2-2-2-2, no dilation, se_dims "c",
# se_r 4, MLP head).
WIDTH = 0.4
STEM_CHANNELS = 16  # before the width multiplier
# (kernel, expanded, out, squeeze-excitation, hard-swish, stride) per inverted residual block,
# in channels before the width multiplier (MobileNetV3-Large, Howard et al. 2019, table 1).
BLOCKS_AT_WIDTH_1 = (
    (3, 16, 16, False, False, 1),
    (3, 64, 24, False, False, 2),
    (3, 72, 24, False, False, 1),
    (5, 72, 40, True, False, 2),
    (5, 120, 40, True, False, 1),
    (5, 120, 40, True, False, 1),
    (3, 240, 80, False, True, 2),
    (3, 200, 80, False, True, 1),
    (3, 184, 80, False, True, 1),
    (3, 184, 80, False, True, 1),
    (3, 480, 112, True, True, 1),
    (3, 672, 112, True, True, 1),
    (5, 672, 160, True, True, 2),
    (5, 960, 160, True, True, 1),
    (5, 960, 160, True, True, 1),
)
HEAD_EXPANSION = 6  # the last 1x1 convolution: 6 x the last block's channels
HIDDEN_AT_WIDTH_1 = 1280
SE_REDUCTION = 4
CHANNEL_DIVISOR = 8
BN_EPSILON = 1e-3  # nn.BatchNorm2d(eps=0.001) throughout the original
N_CLASSES = 527

WEIGHTS_FILE = "mn04_as.weights.h5"
LABELS_FILE = "labels.json"
CONVERT_COMMAND = "python -m classifier.training.efficientat_convert"
# The same network as a LiteRT graph, beside the weights it was converted from.
LITERT_FILE = "mn04_as.tflite"


def make_divisible(value: float, divisor: int = CHANNEL_DIVISOR) -> int:
    """Round a channel count to the nearest multiple of `divisor` (at least `divisor`), rounding up
    instead when that would lose more than 10%: the TF MobileNet rule EfficientAT uses."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


@dataclass(frozen=True)
class BlockSpec:
    """One inverted residual block at our width. Block n is the original's `features.n`."""

    index: int
    kernel: int
    in_channels: int
    expanded: int
    out_channels: int
    squeeze: int | None  # bottleneck of the squeeze-excitation, None without one
    hardswish: bool  # else ReLU
    stride: int

    @property
    def expands(self) -> bool:
        return self.expanded != self.in_channels

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels


def _block_specs() -> tuple[BlockSpec, ...]:
    specs = []
    channels = make_divisible(STEM_CHANNELS * WIDTH)
    for i, (kernel, expanded, out, se, hs, stride) in enumerate(BLOCKS_AT_WIDTH_1, start=1):
        expanded, out = make_divisible(expanded * WIDTH), make_divisible(out * WIDTH)
        squeeze = make_divisible(expanded // SE_REDUCTION) if se else None
        specs.append(BlockSpec(i, kernel, channels, expanded, out, squeeze, hs, stride))
        channels = out
    return tuple(specs)


BLOCKS = _block_specs()
STEM_OUT = BLOCKS[0].in_channels  # 8
EMBEDDING_SIZE = HEAD_EXPANSION * BLOCKS[-1].out_channels  # 384
HIDDEN_SIZE = make_divisible(HIDDEN_AT_WIDTH_1 * WIDTH)  # 512


@dataclass(frozen=True)
class EfficientAtOutputs:
    """Outputs of one backbone call; row i of every field belongs to input window i.

    logits: (n, 527) AudioSet logits, in the order of `EfficientAtBackbone.labels`.
    probabilities: (n, 527) sigmoid(logits), the tagger's multi-label probabilities.
    embedding: (n, 384) the last feature map averaged over frequency and time (the input of the
    classifier MLP; the original's second output).
    hidden: (n, 512) the classifier MLP's hidden layer, after its hard-swish.
    """

    logits: np.ndarray
    probabilities: np.ndarray
    embedding: np.ndarray
    hidden: np.ndarray


def kaldi_mel_banks(
    n_mels: int = N_MELS,
    n_fft: int = N_FFT,
    sample_rate: int = SAMPLE_RATE,
    fmin: float = FMIN,
    fmax: float = FMAX,
) -> np.ndarray:
    """Kaldi's triangular mel filters as a (n_fft // 2 + 1, n_mels) float32 matrix.

    Kaldi's mel scale is 1127 ln(1 + f / 700); the n_mels + 2 band edges are equally spaced on it
    from fmin to fmax, and each triangle is linear in mel (not in Hz, unlike librosa's). FFT bin
    k sits at k * sample_rate / n_fft; the Nyquist bin gets no weight, as in Kaldi.
    """
    if not 0 <= fmin < fmax <= sample_rate / 2:
        raise ValueError(f"need 0 <= fmin < fmax <= Nyquist, got {fmin} and {fmax}")

    def mel(hz: np.ndarray | float) -> np.ndarray:
        return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)

    edges = np.linspace(mel(fmin), mel(fmax), n_mels + 2)
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    bins = mel(np.arange(n_fft // 2) * (sample_rate / n_fft))[None, :]
    rising = (bins - left) / (centre - left)
    falling = (right - bins) / (right - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))  # (n_mels, n_fft // 2)
    weights = np.pad(weights, ((0, 0), (0, 1)))  # the Nyquist bin
    return np.ascontiguousarray(weights.T, dtype=np.float32)


@functools.cache
def _mel_projection() -> tuple[int, int, np.ndarray]:
    """The FFT bins any band uses (first, last + 1) and the (N_MELS, bins) matrix over them."""
    basis = kaldi_mel_banks()
    used = np.flatnonzero(basis.any(axis=1))  # 1 .. 479: nothing at 0 Hz or above 15 kHz
    first, last = int(used[0]), int(used[-1]) + 1
    return first, last, np.ascontiguousarray(basis[first:last].T)


@functools.cache
def _window() -> np.ndarray:
    # torch.hann_window(WIN_LENGTH, periodic=False): symmetric, zero at both ends.
    n = np.arange(WIN_LENGTH, dtype=np.float64)
    return (0.5 - 0.5 * np.cos(2 * np.pi * n / (WIN_LENGTH - 1))).astype(np.float32)


def n_frames(n_samples: int) -> int:
    """Frames of `log_mel` for `n_samples` samples: one every HOP of the pre-emphasised signal,
    which is one sample shorter, plus one."""
    return 1 + (n_samples - 1) // HOP


def log_mel(audio_32k: np.ndarray) -> np.ndarray:
    """The normalised log-mel spectrogram of 32 kHz mono audio, float32 (N_MELS, frames).

    Bands by frames, the original's layout (its model input is (batch, 1, 128, frames)), 100
    frames a second, `n_frames(len(audio))` of them. Same as EfficientAT's AugmentMelSTFT in eval
    mode: pre-emphasis x[n + 1] - 0.97 x[n] (one sample shorter), frames centred on every 320th
    sample of the reflect-padded signal (torch.stft(center=True)), the 800-sample symmetric Hann
    window in the middle of each 1024-point frame, power spectrum, Kaldi mel banks 0-15 kHz,
    ln(mel + 1e-5), then (x + 4.5) / 5. All in float32.
    """
    import scipy.fft

    audio = np.asarray(audio_32k, dtype=np.float32)
    if audio.ndim != 1 or audio.size < 2:
        raise ValueError(f"expected mono audio of at least 2 samples, got shape {audio.shape}")
    count = 1 + (audio.size - 1) // HOP
    pad = N_FFT // 2
    if audio.size - 1 > pad:
        # Pre-emphasis written straight into the reflect-padded buffer: one pass over a song.
        padded = np.empty(audio.size - 1 + 2 * pad, dtype=np.float32)
        emphasised = padded[pad:-pad]
        np.multiply(audio[:-1], np.float32(-PREEMPHASIS), out=emphasised)
        emphasised += audio[1:]
        padded[:pad] = emphasised[pad:0:-1]
        padded[-pad:] = emphasised[-2 : -pad - 2 : -1]
    else:  # torch.stft refuses this short a signal; NumPy reflects it as often as it takes.
        emphasised = audio[1:] - np.float32(PREEMPHASIS) * audio[:-1]
        padded = np.pad(emphasised, pad, mode="reflect")
    # The window covers samples (N_FFT - WIN_LENGTH) // 2 .. + WIN_LENGTH of each N_FFT frame:
    # we window just those and zero-pad them at the end, which moves each bin's phase, not its
    # power.
    offset = (N_FFT - WIN_LENGTH) // 2
    frames = np.lib.stride_tricks.sliding_window_view(padded[offset:], WIN_LENGTH)[::HOP][:count]
    first, last, projection = _mel_projection()
    power = np.empty((count, last - first), dtype=np.float32)
    # A chunk of frames at a time, so the buffers stay in the CPU's cache (a third faster than
    # whole-array steps for a song); the buffer's zero padding is never written.
    buffer = np.zeros((CHUNK_FRAMES, N_FFT), dtype=np.float32)
    for start in range(0, count, CHUNK_FRAMES):
        stop = min(start + CHUNK_FRAMES, count)
        windowed = buffer[: stop - start]
        np.multiply(frames[start:stop], _window(), out=windowed[:, :WIN_LENGTH])
        spectrum = scipy.fft.rfft(windowed, axis=1)[:, first:last]
        chunk = power[start:stop]
        np.square(spectrum.real, out=chunk)
        chunk += np.square(spectrum.imag)
    mel = projection @ power.T  # (N_MELS, frames)
    mel = np.log(mel + np.float32(LOG_OFFSET))
    mel += np.float32(NORM_SHIFT)
    mel /= np.float32(NORM_SCALE)
    return mel


def build_mn04(name: str = "mn04_as") -> keras.Model:
    """The mn04 architecture as a Keras functional model, without weights.

    Input: (batch, 128, frames) normalised log-mel from `log_mel`, any number of frames (1000 =
    10 s is what it was trained on). Outputs: [logits (batch, 527), embedding (batch, 384),
    hidden (batch, 512)] as in `EfficientAtOutputs` (before the sigmoid). Images are channels-last
    (batch, mel band, frame, channel). Batch normalisation is folded into the convolution before
    it by the converter, so every convolution has a bias and no normalisation layer follows.
    """
    keras = extras.tensorflow_keras("EfficientAT")
    layers = keras.layers

    def activation(hardswish: bool, layer_name: str) -> Any:
        if hardswish:
            return layers.Activation("hard_swish", name=f"{layer_name}_hardswish")
        return layers.ReLU(name=f"{layer_name}_relu")

    def depthwise(x: Any, kernel: int, stride: int, layer_name: str) -> Any:
        if stride == 1:
            return layers.DepthwiseConv2D(kernel, padding="same", name=layer_name)(x)
        # PyTorch pads (kernel - 1) // 2 on both sides; TF's "same" would pad less in front for
        # a stride of 2.
        x = layers.ZeroPadding2D(kernel // 2, name=f"{layer_name}_pad")(x)
        return layers.DepthwiseConv2D(kernel, strides=stride, name=layer_name)(x)

    mel = keras.Input(shape=(N_MELS, None), name="log_mel")
    x = layers.Reshape((N_MELS, -1, 1), name="image")(mel)

    x = layers.ZeroPadding2D(1, name="stem_pad")(x)
    x = layers.Conv2D(STEM_OUT, 3, strides=2, name="stem_conv")(x)
    x = activation(True, "stem")(x)

    for block in BLOCKS:
        prefix = f"block{block.index:02d}"
        inputs = x
        if block.expands:
            x = layers.Conv2D(block.expanded, 1, name=f"{prefix}_expand_conv")(x)
            x = activation(block.hardswish, f"{prefix}_expand")(x)
        x = depthwise(x, block.kernel, block.stride, f"{prefix}_depthwise_conv")
        x = activation(block.hardswish, f"{prefix}_depthwise")(x)
        if block.squeeze is not None:
            # Squeeze-excitation over channels: mean over bands and frames, ReLU bottleneck,
            # sigmoid gate per channel.
            scale = layers.GlobalAveragePooling2D(keepdims=True, name=f"{prefix}_se_pool")(x)
            scale = layers.Dense(block.squeeze, activation="relu", name=f"{prefix}_se_reduce")(
                scale
            )
            scale = layers.Dense(block.expanded, activation="sigmoid", name=f"{prefix}_se_expand")(
                scale
            )
            x = layers.Multiply(name=f"{prefix}_se_scale")([x, scale])
        x = layers.Conv2D(block.out_channels, 1, name=f"{prefix}_project_conv")(x)
        if block.residual:
            x = layers.Add(name=f"{prefix}_residual")([x, inputs])

    x = layers.Conv2D(EMBEDDING_SIZE, 1, name="head_conv")(x)
    x = activation(True, "head")(x)
    embedding = layers.GlobalAveragePooling2D(name="embedding")(x)
    hidden = layers.Dense(HIDDEN_SIZE, name="classifier_hidden")(embedding)
    hidden = activation(True, "classifier_hidden")(hidden)
    # (The original's dropout sits here; it does nothing at inference.)
    logits = layers.Dense(N_CLASSES, name="logits")(hidden)
    return keras.Model(mel, [logits, embedding, hidden], name=name)


class EfficientAtBackbone:
    """The pretrained mn04_as tagger with a compiled batched call; see `load_backbone`."""

    def __init__(self, model: keras.Model, labels: list[str]) -> None:
        import tensorflow as tf

        if len(labels) != N_CLASSES:
            raise ValueError(f"expected {N_CLASSES} labels, got {len(labels)}")
        self.name = model.name
        self.model = model
        self.labels = labels

        def call(log_mels: Any) -> tuple[Any, ...]:
            logits, embedding, hidden = model(log_mels, training=False)
            return logits, tf.sigmoid(logits), embedding, hidden

        # One traced graph for every batch size and length: far less overhead than predict().
        self._call = tf.function(
            call,
            input_signature=[tf.TensorSpec([None, N_MELS, None], tf.float32)],
            autograph=False,  # plain Keras layers: nothing to convert
        )

    def embed(self, log_mels: np.ndarray) -> EfficientAtOutputs:
        """Run windows of shape (n, 128, frames), each from `log_mel`, in one batched call."""
        logits, probabilities, embedding, hidden = self._call(_windows(log_mels))
        return EfficientAtOutputs(
            logits.numpy(), probabilities.numpy(), embedding.numpy(), hidden.numpy()
        )

    def warm_up(self) -> None:
        """Trace the graph and let TensorFlow pick its kernels before the first real request."""
        self.embed(np.zeros((1, N_MELS, CLIP_FRAMES), dtype=np.float32))


class EfficientAtLiteRt:
    """mn04_as served from its LiteRT graph: the outputs of `EfficientAtBackbone`, without
    TensorFlow; see `load_litert`."""

    name = "mn04_as"

    def __init__(self, graph: Graph, labels: list[str]) -> None:
        if len(labels) != N_CLASSES:
            raise ValueError(f"expected {N_CLASSES} labels, got {len(labels)}")
        self.graph = graph
        self.labels = labels

    def embed(self, log_mels: np.ndarray) -> EfficientAtOutputs:
        """Run windows of shape (n, 128, frames), each from `log_mel`, through the graph."""
        outputs = self.graph(_windows(log_mels))
        return EfficientAtOutputs(
            outputs["logits"], outputs["probabilities"], outputs["embedding"], outputs["hidden"]
        )

    def warm_up(self) -> None:
        """Create an interpreter and run it once before the first real request."""
        self.embed(np.zeros((1, N_MELS, CLIP_FRAMES), dtype=np.float32))


def _windows(log_mels: np.ndarray) -> np.ndarray:
    log_mels = np.asarray(log_mels, dtype=np.float32)
    if log_mels.ndim != 3 or log_mels.shape[1] != N_MELS or 0 in log_mels.shape:
        raise ValueError(
            f"expected log-mel windows of shape (n, {N_MELS}, frames), got {log_mels.shape}"
        )
    return log_mels


def _missing(path: Path) -> FileNotFoundError:
    return FileNotFoundError(
        f"{path} is missing; create it with: {CONVERT_COMMAND} --out {path.parent}"
    )


def _labels(weights_dir: Path) -> list[str]:
    path = weights_dir / LABELS_FILE
    if not path.is_file():
        raise _missing(path)
    return list(json.loads(path.read_text(encoding="utf-8"))["labels"])


def load_backbone(weights_dir: Path) -> EfficientAtBackbone:
    """Load mn04_as from the converter's output in `weights_dir` (normally models/efficientat)."""
    weights = Path(weights_dir) / WEIGHTS_FILE
    if not weights.is_file():
        raise _missing(weights)
    labels = _labels(Path(weights_dir))
    model = build_mn04()
    model.load_weights(weights)
    return EfficientAtBackbone(model, labels)


def load_litert(weights_dir: Path) -> EfficientAtLiteRt:
    """mn04_as from its LiteRT graph in `weights_dir` (see classifier.training.litert_convert)."""
    from .litert import Graph

    return EfficientAtLiteRt(Graph(Path(weights_dir) / LITERT_FILE), _labels(Path(weights_dir)))
