"""Our Keras 3 port of the pretrained musicnn tagger (Pons & Serra 2019): its log-mel front end and
its backbone, giving per-patch tag probabilities and embeddings that genre heads build on; served
from its LiteRT graph, trained and converted from the Keras model."""

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

# Front end, as the models were trained: 16 kHz mono, 512-point STFT every 256 samples,
# 96 Slaney mel bands, log10(10000 * power + 1) computed in float32.
SAMPLE_RATE = 16000
N_FFT = 512
HOP = 256
N_MELS = 96
LOG_GAIN = 10000.0
PATCH_FRAMES = 187  # 3 s: what the models were trained on (librosa.time_to_frames(3) + 1)

# The two pretrained backbones the converter produces.
BACKBONES = ("MSD_musicnn", "MTT_musicnn")
WEIGHTS_SUFFIX = ".weights.h5"
TAGS_FILE = "tags.json"
CONVERT_COMMAND = "python -m classifier.training.musicnn_convert"
# Each backbone as a LiteRT graph of 187-frame patches, beside the weights it was converted from.
LITERT_SUFFIX = ".tflite"

# Architecture ("7774timbraltemporal" front end, dense mid end, global-pool back end).
TIMBRAL_FILTERS = int(1.6 * 128)  # 204
TEMPORAL_FILTERS = int(1.6 * 32)  # 51
TIMBRAL_WIDTHS = (int(0.4 * N_MELS), int(0.7 * N_MELS))  # 38 and 67 mel bands, 7 frames long
TIMBRAL_LENGTH = 7
TEMPORAL_LENGTHS = (128, 64, 32)  # frames, one mel band wide
MIDEND_FILTERS = 64
MIDEND_LENGTH = 7
MIDEND_LAYERS = 3
BACKEND_UNITS = 200
N_TAGS = 50
# tf.layers.batch_normalization's default, which every musicnn layer used.
BN_EPSILON = 1e-3

# (name, filters, kernel size, padding) of each front-end block, in the original's order.
FRONTEND_BLOCKS = tuple(
    (f"timbral_{TIMBRAL_LENGTH}x{width}", TIMBRAL_FILTERS, (TIMBRAL_LENGTH, width), "valid")
    for width in TIMBRAL_WIDTHS
) + tuple(
    (f"temporal_{length}", TEMPORAL_FILTERS, (length, 1), "same") for length in TEMPORAL_LENGTHS
)
FRONTEND_CHANNELS = len(TIMBRAL_WIDTHS) * TIMBRAL_FILTERS + len(TEMPORAL_LENGTHS) * TEMPORAL_FILTERS
MIDEND_CHANNELS = FRONTEND_CHANNELS + MIDEND_LAYERS * MIDEND_FILTERS  # 561 + 192 = 753
POOLED_SIZE = 2 * MIDEND_CHANNELS  # max and mean over time: 1506

# Weight decay drove many front-end filters' weights to ~1e-30 (most of MSD_musicnn's): such a
# filter computes relu(bias) whatever the log-mel input (|weights . input| < 1e-16), so its
# normalised output is a constant we need not convolve for.
DEAD_WEIGHT = 1e-20


@dataclass(frozen=True)
class MusicnnOutputs:
    """Per-patch outputs of one backbone call; row i of every field belongs to patch i.

    taggram: (n, 50) sigmoid tag probabilities, in the order of `MusicnnBackbone.tags`.
    penultimate: (n, 200) the batch-normalised penultimate dense layer (after its ReLU).
    pooled: (n, 1506) mid-end features pooled over time: 753 maxima, then 753 means.

    Many features never vary (dead filters and units of the original training): about 1100 of
    MSD_musicnn's pooled features and 48 of its penultimate ones, 600 and 35 for MTT_musicnn.
    """

    taggram: np.ndarray
    penultimate: np.ndarray
    pooled: np.ndarray


@dataclass(frozen=True)
class DeadFilters:
    """The filters of one front-end block whose output never changes, and that output."""

    live: np.ndarray  # indices of the filters still computed
    dead: np.ndarray  # indices of the constant ones
    values: np.ndarray  # (len(dead),) float32: their output after normalisation and pooling


def slaney_mel_banks(
    n_mels: int = N_MELS, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """librosa.filters.mel's default filters (Slaney's mel scale and area normalisation, 0 Hz
    to Nyquist) as a (n_fft // 2 + 1, n_mels) float32 matrix, computed as librosa 0.10 does,
    without loading librosa (whose filters module alone takes 0.6 s to import).

    Slaney's scale is linear below 1 kHz (3 mel per 200 Hz) and logarithmic above it (27 mel
    per factor 6.4); the triangles are linear in Hz between n_mels + 2 edges equally spaced in
    mel, each scaled to unit area (2 / its width in Hz).
    """
    linear_step = 200.0 / 3
    log_start = 1000.0 / linear_step  # the mel of 1 kHz
    log_step = np.log(6.4) / 27.0

    def hz_to_mel(hz: float) -> float:
        if hz < 1000.0:
            return hz / linear_step
        return log_start + float(np.log(hz / 1000.0)) / log_step

    mels = np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2), n_mels + 2)
    edges = np.where(
        mels >= log_start, 1000.0 * np.exp(log_step * (mels - log_start)), linear_step * mels
    )
    bins = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    widths = np.diff(edges)
    ramps = np.subtract.outer(edges, bins)
    weights = np.zeros((n_mels, len(bins)), dtype=np.float32)
    for i in range(n_mels):
        rising = -ramps[i] / widths[i]
        falling = ramps[i + 2] / widths[i + 1]
        weights[i] = np.maximum(0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2 : n_mels + 2] - edges[:n_mels]))[:, None]
    return np.ascontiguousarray(weights.T)


@functools.cache
def _mel_basis() -> np.ndarray:
    # (N_FFT // 2 + 1, N_MELS): a frame matrix multiplies it directly.
    return slaney_mel_banks()


@functools.cache
def _window() -> np.ndarray:
    # The periodic Hann window librosa uses for an STFT.
    n = np.arange(N_FFT, dtype=np.float64)
    return (0.5 - 0.5 * np.cos(2 * np.pi * n / N_FFT)).astype(np.float32)


def log_mel(audio_16k: np.ndarray) -> np.ndarray:
    """The (frames, 96) float32 log-mel spectrogram of 16 kHz mono audio, as musicnn expects.

    Same as librosa.feature.melspectrogram with its (0.10+) defaults, centred frames on a
    zero-padded signal, followed by log10(10000 * x + 1), all in float32: the original package
    casts to float16 before the log, which overflows to inf on loud music. (The models were
    trained with librosa < 0.10, whose reflect padding differs in the first and last frame only.)
    """
    import scipy.fft

    audio = np.asarray(audio_16k, dtype=np.float32)
    if audio.ndim != 1 or audio.size == 0:
        raise ValueError(f"expected non-empty mono audio, got shape {audio.shape}")
    padded = np.pad(audio, N_FFT // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    # SciPy's FFT keeps float32 and is several times faster than NumPy's here.
    power = np.abs(scipy.fft.rfft(frames * _window(), axis=1)) ** 2
    mel = power @ _mel_basis()
    return np.log10(LOG_GAIN * mel + 1.0, dtype=np.float32)


def patch_starts(
    n_frames: int,
    patch_frames: int = PATCH_FRAMES,
    hop_frames: int = PATCH_FRAMES,
    max_patches: int | None = None,
) -> np.ndarray:
    """First frame of each patch: every `hop_frames` like the original extractor, or, when that
    gives more than `max_patches`, the centres of `max_patches` equal stretches of the track."""
    if max_patches is not None and max_patches < 1:
        raise ValueError(f"max_patches must be at least 1, got {max_patches}")
    last = n_frames - patch_frames
    if last < 0:
        return np.zeros(1, dtype=np.int64)
    starts = np.arange(0, last + 1, hop_frames, dtype=np.int64)
    if max_patches is not None and len(starts) > max_patches:
        centres = (np.arange(max_patches) + 0.5) * (last / max_patches)
        starts = np.round(centres).astype(np.int64)
    return starts


def log_mel_patches(
    audio_16k: np.ndarray,
    patch_frames: int = PATCH_FRAMES,
    hop_frames: int = PATCH_FRAMES,
    max_patches: int | None = None,
) -> np.ndarray:
    """Cut the log-mel spectrogram of 16 kHz mono audio into (n, patch_frames, 96) float32 patches.

    Patches start every `hop_frames` frames from the first, as in the original extractor (the
    tail shorter than a patch is dropped). With `max_patches`, a longer track is sampled instead
    at `max_patches` evenly spaced patches over its whole length. A track shorter than one patch
    is repeated to fill it, as the models were trained ("repeat-pad").
    """
    mel = log_mel(audio_16k)
    if len(mel) < patch_frames:
        mel = np.resize(mel, (patch_frames, N_MELS))  # np.resize repeats the rows in order
    starts = patch_starts(len(mel), patch_frames, hop_frames, max_patches)
    windows = np.lib.stride_tricks.sliding_window_view(mel, patch_frames, axis=0)
    # windows is (positions, 96, patch_frames); fancy indexing copies only the chosen patches.
    return np.ascontiguousarray(windows[starts].transpose(0, 2, 1))


def build_musicnn(
    name: str = "musicnn", dead_filters: dict[str, DeadFilters] | None = None
) -> keras.Model:
    """The musicnn architecture as a Keras functional model, without weights.

    Input: (batch, frames, 96) log-mel patches (any number of frames; 187 is what it was
    trained on). Outputs: [taggram, penultimate, pooled] as in `MusicnnOutputs`. Layer names
    say what each layer is; the converter maps the TF1 checkpoint onto them. `dead_filters`
    (see `without_dead_filters`) leaves out front-end filters whose output is a constant.
    """
    keras = extras.tensorflow_keras("musicnn")
    layers, ops = keras.layers, keras.ops

    def norm(layer_name: str) -> Any:
        return layers.BatchNormalization(epsilon=BN_EPSILON, name=layer_name)

    mel = keras.Input(shape=(None, N_MELS), name="log_mel")
    image = norm("input_norm")(ops.expand_dims(mel, -1))  # one channel: a single mean/variance

    # Front end: each block convolves, normalises, then keeps the maximum over frequency.
    # Timbral filters span 7 frames and part of the spectrum, over the time axis zero-padded by
    # 3 frames on each side so the output keeps every frame. Temporal filters span many frames
    # of one band, with TF "same" padding (one frame more at the end for even lengths), as the
    # original did.
    padded = layers.ZeroPadding2D(((TIMBRAL_LENGTH // 2, TIMBRAL_LENGTH // 2), (0, 0)))(image)
    frontend = []
    for tag, filters, kernel_size, padding in FRONTEND_BLOCKS:
        skipped = (dead_filters or {}).get(tag)
        conv = layers.Conv2D(
            filters if skipped is None else len(skipped.live),
            kernel_size,
            padding=padding,
            activation="relu",
            name=f"{tag}_conv",
        )(padded if padding == "valid" else image)
        features = ops.max(norm(f"{tag}_norm")(conv), axis=2)
        if skipped is not None:
            # Put the constant outputs of the skipped filters back in their places.
            constants = ops.ones_like(features[..., :1]) * skipped.values
            order = np.argsort(np.concatenate([skipped.live, skipped.dead]))
            features = ops.take(ops.concatenate([features, constants], axis=-1), order, axis=-1)
        frontend.append(features)
    frontend_features = layers.Concatenate(name="frontend")(frontend)  # (batch, frames, 561)

    # Mid end: the original's full-width 2-D convolutions are 1-D convolutions over time with
    # the features as channels; layers 2 and 3 add their input back (residuals), and all three
    # are kept, densely concatenated with the front end.
    midend = [frontend_features]
    x = frontend_features
    for i in range(1, MIDEND_LAYERS + 1):
        conv = layers.Conv1D(
            MIDEND_FILTERS,
            MIDEND_LENGTH,
            padding="same",
            activation="relu",
            name=f"midend_{i}_conv",
        )(x)
        normed = norm(f"midend_{i}_norm")(conv)
        x = normed if i == 1 else layers.Add(name=f"midend_{i}_residual")([normed, x])
        midend.append(x)
    midend_features = layers.Concatenate(name="midend")(midend)  # (batch, frames, 753)

    # Back end: global max and mean over time. The original flattens a (753, 2) stack, so its
    # dense layer sees max and mean interleaved per feature; we feed it the same order.
    max_pool = ops.max(midend_features, axis=1)
    mean_pool = ops.mean(midend_features, axis=1)
    interleaved = ops.reshape(ops.stack([max_pool, mean_pool], axis=-1), (-1, POOLED_SIZE))
    pooled = layers.Concatenate(name="pooled")([max_pool, mean_pool])
    hidden = norm("pool_norm")(interleaved)
    hidden = layers.Dense(BACKEND_UNITS, activation="relu", name="penultimate_dense")(hidden)
    penultimate = norm("penultimate_norm")(hidden)
    logits = layers.Dense(N_TAGS, name="tags_dense")(penultimate)
    taggram = layers.Activation("sigmoid", name="taggram")(logits)
    return keras.Model(mel, [taggram, penultimate, pooled], name=name)


def find_dead_filters(model: keras.Model) -> dict[str, DeadFilters]:
    """The front-end blocks of a full model (with weights) that have constant filters, and
    those filters' outputs; blocks whose filters are all live, or all dead, are left out."""
    dead_filters = {}
    for tag, *_ in FRONTEND_BLOCKS:
        kernel, bias = model.get_layer(f"{tag}_conv").get_weights()
        gamma, beta, mean, variance = model.get_layer(f"{tag}_norm").get_weights()
        dead = np.abs(kernel).reshape(-1, kernel.shape[-1]).max(axis=0) < DEAD_WEIGHT
        if not dead.any() or dead.all():
            continue
        # relu(bias), normalised; the same at every frequency, so also its maximum.
        values = (np.maximum(bias, 0) - mean) / np.sqrt(variance + BN_EPSILON) * gamma + beta
        dead_filters[tag] = DeadFilters(
            np.flatnonzero(~dead), np.flatnonzero(dead), values[dead].astype(np.float32)
        )
    return dead_filters


def without_dead_filters(model: keras.Model) -> keras.Model:
    """The same model, with weights, minus the front-end filters whose output is a constant.

    Exact to float32 rounding, and several times faster for MSD_musicnn, where most timbral
    filters are dead. Returns `model` itself when it has none.
    """
    dead_filters = find_dead_filters(model)
    if not dead_filters:
        return model
    compact = build_musicnn(model.name, dead_filters)
    for layer in compact.layers:
        if not layer.weights:
            continue
        weights = model.get_layer(layer.name).get_weights()
        tag = layer.name.rsplit("_", 1)[0]
        if tag in dead_filters:
            # Kernels, biases and normalisation vectors all end on the filter axis.
            weights = [w[..., dead_filters[tag].live] for w in weights]
        layer.set_weights(weights)
    return compact


class MusicnnBackbone:
    """One pretrained musicnn model with a compiled batched call; see `load_backbone`."""

    def __init__(self, name: str, model: keras.Model, tags: list[str]) -> None:
        import tensorflow as tf

        self.name = name
        self.model = model
        self.tags = tags
        # One traced graph for every batch size: far less overhead per call than model.predict.
        self._call = tf.function(
            lambda patches: model(patches, training=False),
            input_signature=[tf.TensorSpec([None, None, N_MELS], tf.float32)],
            autograph=False,  # plain Keras layers: nothing to convert
        )

    def embed(self, patches: np.ndarray) -> MusicnnOutputs:
        """Run all patches, shape (n, frames, 96) from `log_mel_patches`, in one batched call."""
        taggram, penultimate, pooled = self._call(_patches(patches, None))
        return MusicnnOutputs(taggram.numpy(), penultimate.numpy(), pooled.numpy())

    def warm_up(self) -> None:
        """Trace the graph and let TensorFlow pick its kernels before the first real request."""
        self.embed(np.zeros((1, PATCH_FRAMES, N_MELS), dtype=np.float32))


class MusicnnLiteRt:
    """One pretrained musicnn model served from its LiteRT graph: the outputs of
    `MusicnnBackbone` for 187-frame patches, without TensorFlow; see `load_litert`."""

    def __init__(self, name: str, graph: Graph, tags: list[str]) -> None:
        self.name = name
        self.graph = graph
        self.tags = tags

    def embed(self, patches: np.ndarray) -> MusicnnOutputs:
        """Run patches of shape (n, 187, 96) from `log_mel_patches` through the graph."""
        outputs = self.graph(_patches(patches, PATCH_FRAMES))
        return MusicnnOutputs(outputs["taggram"], outputs["penultimate"], outputs["pooled"])

    def warm_up(self) -> None:
        """Create an interpreter and run it once before the first real request."""
        self.embed(np.zeros((1, PATCH_FRAMES, N_MELS), dtype=np.float32))


def _patches(patches: np.ndarray, frames: int | None) -> np.ndarray:
    patches = np.asarray(patches, dtype=np.float32)
    if (
        patches.ndim != 3
        or patches.shape[2] != N_MELS
        or len(patches) == 0
        or frames not in (None, patches.shape[1])
    ):
        expected = f"(n, {frames or 'frames'}, {N_MELS})"
        raise ValueError(f"expected patches of shape {expected}, got {patches.shape}")
    return patches


def _tags(name: str, weights_dir: Path) -> list[str]:
    path = weights_dir / TAGS_FILE
    if not path.is_file():
        raise _missing(path)
    return list(json.loads(path.read_text(encoding="utf-8"))[name])


def _missing(path: Path) -> FileNotFoundError:
    return FileNotFoundError(
        f"{path} is missing; create it with: {CONVERT_COMMAND} --out {path.parent}"
    )


def load_backbone(name: str, weights_dir: Path) -> MusicnnBackbone:
    """Load `name` ("MSD_musicnn" or "MTT_musicnn") from the converter's output in `weights_dir`."""
    model = load_keras_model(name, weights_dir)
    return MusicnnBackbone(name, without_dead_filters(model), _tags(name, Path(weights_dir)))


def load_keras_model(name: str, weights_dir: Path) -> keras.Model:
    """The whole Keras model `name` with its converted weights, dead filters included."""
    if name not in BACKBONES:
        raise ValueError(f"unknown musicnn backbone {name!r}; choose one of {BACKBONES}")
    weights = Path(weights_dir) / f"{name}{WEIGHTS_SUFFIX}"
    if not weights.is_file():
        raise _missing(weights)
    model = build_musicnn(name)
    model.load_weights(weights)
    return model


def load_litert(name: str, weights_dir: Path) -> MusicnnLiteRt:
    """`name` from its LiteRT graph in `weights_dir` (see classifier.training.litert_convert)."""
    from .litert import Graph

    if name not in BACKBONES:
        raise ValueError(f"unknown musicnn backbone {name!r}; choose one of {BACKBONES}")
    graph = Graph(Path(weights_dir) / f"{name}{LITERT_SUFFIX}")
    return MusicnnLiteRt(name, graph, _tags(name, Path(weights_dir)))
