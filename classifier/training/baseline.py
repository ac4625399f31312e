"""The original Scriabin model and pipeline, rebuilt faithfully so that it can be measured
beside ours on the same clips and files in the same run (accuracy and speed).

The original was saved by Keras under TensorFlow 1.14; Keras 3 cannot read that model
config, so the same architecture is rebuilt here and the weights are loaded layer by layer.
The seed model lives in ../shared/seed-model and is never copied into the project.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from classifier.genres import GTZAN_GENRES
from config import PROJECT_ROOT

SEED_MODEL_PATH = PROJECT_ROOT.parent / "shared" / "seed-model" / "music_genre_cnn.hdf5"
# How the original used its model (../shared/seed-model/README.md).
SEED_GENRES = list(GTZAN_GENRES)  # its outputs, in this order
SEED_SAMPLE_RATE = 22050
SEED_SEGMENT_SAMPLES = 66150
SEED_SEGMENTS = 10
SEED_FRAMES = 130
SEED_MFCC = {"n_mfcc": 13, "n_fft": 2048, "hop_length": 512}


def build_seed_network(path: Path = SEED_MODEL_PATH):
    """The original architecture with its trained weights, loaded by layer order."""
    import h5py
    import keras
    from keras import layers

    network = keras.Sequential(
        [
            keras.Input((SEED_FRAMES, SEED_MFCC["n_mfcc"], 1)),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(3, strides=2, padding="same"),
            layers.BatchNormalization(epsilon=1e-3),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(3, strides=2, padding="same"),
            layers.Conv2D(64, 2, activation="relu"),
            layers.MaxPooling2D(2, strides=2, padding="same"),
            layers.Dropout(0.2),
            layers.Conv2D(128, 1, activation="relu"),
            layers.MaxPooling2D(2, strides=2, padding="same"),
            layers.Dropout(0.2),
            layers.Conv2D(256, 1, activation="relu"),
            layers.MaxPooling2D(1, strides=2, padding="same"),
            layers.Dropout(0.2),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dropout(0.3),
            layers.Dense(len(SEED_GENRES), activation="softmax"),
        ]
    )
    with h5py.File(path, "r") as file:
        saved = file["model_weights"]
        names = [name.decode() for name in saved.attrs["layer_names"]]
        weighted = [name for name in names if saved[name].attrs["weight_names"].size]
        ours = [layer for layer in network.layers if layer.weights]
        for layer, name in zip(ours, weighted, strict=True):
            group = saved[name]
            arrays = {
                weight.decode().split("/")[-1].split(":")[0]: np.asarray(group[weight])
                for weight in group.attrs["weight_names"]
            }
            order = ["kernel", "bias"]
            if isinstance(layer, layers.BatchNormalization):
                order = ["gamma", "beta", "moving_mean", "moving_variance"]
            layer.set_weights([arrays[key] for key in order])
    return network


def seed_features(audio: np.ndarray) -> np.ndarray:
    """The original's input: the first 30 s cut into 10 segments of 3 s, MFCCs of each."""
    import librosa

    rows = []
    for index in range(SEED_SEGMENTS):
        segment = audio[index * SEED_SEGMENT_SAMPLES : (index + 1) * SEED_SEGMENT_SAMPLES]
        # The original dropped segments of any other length; librosa's centred frames make
        # that 1 + samples // hop, known before computing anything.
        if 1 + len(segment) // SEED_MFCC["hop_length"] != SEED_FRAMES:
            continue
        rows.append(librosa.feature.mfcc(y=segment, sr=SEED_SAMPLE_RATE, **SEED_MFCC).T)
    return np.asarray(rows, dtype=np.float32).reshape(-1, SEED_FRAMES, SEED_MFCC["n_mfcc"], 1)


@dataclass(frozen=True)
class SeedVerdict:
    genre: str | None
    segment_probabilities: np.ndarray


def seed_predict(network, audio: np.ndarray) -> SeedVerdict:
    """The original prediction: the most frequent per-segment top genre (a majority vote)."""
    features = seed_features(audio)
    if len(features) == 0:
        return SeedVerdict(None, np.zeros((0, len(SEED_GENRES)), dtype=np.float32))
    probabilities = np.asarray(network.predict(features, verbose=0))
    votes = Counter(probabilities.argmax(axis=1).tolist())
    return SeedVerdict(SEED_GENRES[votes.most_common(1)[0][0]], probabilities)


def original_request(path: Path, model_path: Path = SEED_MODEL_PATH) -> str | None:
    """One request the way the original served it, minus the download: convert the media to
    a WAV file (its yt-dlp ffmpeg post-processor; FFmpeg's libraries through PyAV here), reload
    the model, read the WAV with librosa, analyse its first 30 s. The speed baseline."""
    import tempfile

    import librosa

    with tempfile.TemporaryDirectory(prefix="scriabin-original-") as folder:
        wav = Path(folder) / "audio.wav"
        _convert_to_wav(path, wav)
        network = build_seed_network(model_path)
        audio, _ = librosa.load(str(wav), sr=SEED_SAMPLE_RATE, mono=True)
    return seed_predict(network, audio).genre


def _convert_to_wav(source: Path, target: Path) -> None:
    """What `ffmpeg -i source -vn -acodec pcm_s16le target.wav` does, at the source's rate and
    channel layout, as FFmpegExtractAudio(preferredcodec="wav") ran it."""
    import av

    with av.open(str(source)) as media, av.open(str(target), mode="w", format="wav") as wav:
        audio = media.streams.audio[0]
        out = wav.add_stream(
            "pcm_s16le", rate=audio.codec_context.sample_rate, layout=audio.codec_context.layout
        )
        for frame in media.decode(audio):
            frame.pts = None
            for packet in out.encode(frame):
                wav.mux(packet)
        for packet in out.encode(None):
            wav.mux(packet)
