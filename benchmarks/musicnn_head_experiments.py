"""The cross-validation that decides the musicnn genre head's design: which embedding (penultimate
layer, pooled mid-end features, tags), which backbone (MSD, MTT, both), linear or small MLP, and
whether averaging with the MFCC CNN helps. Prints a table; not a test.

    python benchmarks/musicnn_head_experiments.py [--data ../shared/data/gtzan-mini] [--mfcc]

Folds, augmentation and clip-level answers are those of `scriabin train`: 5 folds by blocks of
clip numbers, every patch of a held-out clip heard and the mean of its probabilities taken, the
clean clip plus 3 degraded copies for training. Backbone outputs of every clip version are
computed once and cached in --cache, checked against the decoded audio (a decoder change
recomputes them). --mfcc also fits the shipped MFCC CNN's recipe in the same folds for the
ensemble rows (about 20 minutes; cached in mfcc_cnn_cv.npz there: delete it after changing
that recipe). About 5 minutes from cold on two cores without --mfcc.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from classifier import musicnn
from classifier.augment import resample_through
from classifier.datasets import block_folds, genres_of, read_gtzan
from classifier.evaluate import Accuracy
from classifier.musicnn_head import (
    DenseLayer,
    HeadInput,
    MusicnnHeadRecipe,
    fit_head,
    head_features,
    shared_backbone,
)

DEFAULT_DATA = REPO.parent / "shared" / "data" / "gtzan-mini"
DEFAULT_CACHE = Path("/tmp/scriabin-musicnn-head-cache")
FOLDS = 5
# Versions of each clip: the recipe's clean + degraded training copies, then the held-out
# conditions. The head hears 16 kHz audio, so "through 16 kHz" equals the clean clip; 8 kHz
# (telephone, voice messages) is the band limit that actually removes something it hears.
COPIES = 3
TRAIN_VERSIONS = ("clean", *(f"copy{i}" for i in range(1, COPIES + 1)))
TEST_VERSIONS = {"full-band": "clean", "16 kHz": "through16k", "8 kHz": "through8k"}
OUTPUTS = ("taggram", "penultimate", "pooled")


@dataclass(frozen=True)
class Variant:
    """One design to measure: what the head reads and how it is fitted."""

    head_input: HeadInput
    hidden_units: int = 0
    c: float = 1.0
    alpha: float = 1e-3
    copies: int = COPIES
    mfcc_weight: float = 0.0  # share of the MFCC CNN's probabilities in an ensemble

    @property
    def label(self) -> str:
        head = (
            f"MLP {self.hidden_units} a={self.alpha:g}" if self.hidden_units else f"LR C={self.c:g}"
        )
        extra = "" if self.copies == COPIES else f", {self.copies} aug copies"
        if self.mfcc_weight:
            extra += f", + MFCC CNN x{self.mfcc_weight:g}"
        return f"{self.head_input.label}, {head}{extra}"


def cached_outputs(
    recipe: MusicnnHeadRecipe, clips: Sequence, cache: Path
) -> list[dict[str, dict[str, musicnn.MusicnnOutputs]]]:
    """Per clip, per version name, per backbone: outputs for every patch (from disk if cached)."""
    cache.mkdir(parents=True, exist_ok=True)
    backbones = {name: shared_backbone(name, recipe.weights_dir) for name in musicnn.BACKBONES}
    result = []
    started = time.perf_counter()
    for number, clip in enumerate(clips, start=1):
        path = cache / f"{clip.key.replace('/', '_')}.npz"
        # The decoded clip's fingerprint: a changed decoder or file makes the entry stale.
        checksum = np.array([clip.audio.sum(dtype=np.float64), clip.audio.size])
        if not path.is_file() or not _same_checksum(path, checksum):
            audio = clip.audio
            versions = dict(zip(TRAIN_VERSIONS, recipe.versions(clip.key, audio), strict=True))
            versions["through16k"] = resample_through(audio, recipe.sample_rate, 16000)
            versions["through8k"] = resample_through(audio, recipe.sample_rate, 8000)
            arrays = {"audio_checksum": checksum}
            for version, samples in versions.items():
                patches = musicnn.log_mel_patches(samples)
                for name, backbone in backbones.items():
                    outputs = backbone.embed(patches)
                    for kind in OUTPUTS:
                        arrays[f"{version}/{name}/{kind}"] = getattr(outputs, kind)
            np.savez(path, **arrays)
            elapsed = time.perf_counter() - started
            print(f"  embedded {number}/{len(clips)} {clip.key} ({elapsed:.0f} s)", flush=True)
        with np.load(path) as arrays:
            result.append(
                {
                    version: {
                        name: musicnn.MusicnnOutputs(
                            *(arrays[f"{version}/{name}/{kind}"] for kind in OUTPUTS)
                        )
                        for name in musicnn.BACKBONES
                    }
                    for version in (*TRAIN_VERSIONS, *TEST_VERSIONS.values())
                }
            )
    return result


def _same_checksum(path: Path, checksum: np.ndarray) -> bool:
    with np.load(path) as arrays:
        return "audio_checksum" in arrays and np.array_equal(arrays["audio_checksum"], checksum)


def apply_head(layers: Sequence[DenseLayer], features: np.ndarray) -> np.ndarray:
    """The head's forward pass in NumPy (what build_head's Keras model computes)."""
    x = features.astype(np.float64)
    for number, layer in enumerate(layers, start=1):
        x = x @ layer.kernel + layer.bias
        if number < len(layers):
            x = np.maximum(x, 0)
    x = np.exp(x - x.max(axis=1, keepdims=True))
    return x / x.sum(axis=1, keepdims=True)


def cross_validate(
    variant: Variant,
    outputs: Sequence[dict[str, dict[str, musicnn.MusicnnOutputs]]],
    labels: np.ndarray,
    folds: Sequence[int],
    n_genres: int,
) -> dict[str, np.ndarray]:
    """Song-level probabilities of every clip under each test condition, from the fold that
    held it out."""
    songs = {condition: np.zeros((len(labels), n_genres)) for condition in TEST_VERSIONS}
    for fold in range(FOLDS):
        train = [i for i, f in enumerate(folds) if f != fold]
        rows, targets = [], []
        for i in train:
            for version in TRAIN_VERSIONS[: 1 + variant.copies]:
                features = head_features(outputs[i][version], variant.head_input)
                rows.append(features)
                targets.append(np.full(len(features), labels[i]))
        layers = fit_head(
            np.concatenate(rows),
            np.concatenate(targets),
            n_genres,
            hidden_units=variant.hidden_units,
            c=variant.c,
            alpha=variant.alpha,
        )
        for i in (i for i, f in enumerate(folds) if f == fold):
            for condition, version in TEST_VERSIONS.items():
                features = head_features(outputs[i][version], variant.head_input)
                songs[condition][i] = apply_head(layers, features).mean(axis=0)
    return songs


def mfcc_song_probabilities(
    data_dir: Path, cache: Path, folds: Sequence[int]
) -> dict[str, np.ndarray]:
    """The held-out song probabilities, in the same folds, of the recipe that made the shipped
    MFCC CNN (its card's hyperparameters; the defaults without a card). Cached."""
    path = cache / "mfcc_cnn_cv.npz"
    if path.is_file():
        with np.load(path) as arrays:
            return {condition: arrays[condition] for condition in ("full-band", "16 kHz")}
    from classifier.aggregate import song_probabilities
    from classifier.evaluate import EVAL_MAX_SEGMENTS
    from classifier.model import ModelCard
    from classifier.train import MfccCnnRecipe, load_clips
    from config import DEFAULT_MODELS_DIR

    clips = read_gtzan(data_dir)
    genres = genres_of(clips)
    card_path = DEFAULT_MODELS_DIR / "mfcc-cnn.json"
    recipe = MfccCnnRecipe.from_card(ModelCard.read(card_path)) if card_path.is_file() else None
    recipe = recipe or MfccCnnRecipe()
    print(f"  MFCC CNN recipe: {recipe.describe()}")
    data = load_clips(clips, genres, recipe.sample_rate)
    songs = {
        condition: np.zeros((len(clips), len(genres))) for condition in ("full-band", "16 kHz")
    }
    for fold in range(FOLDS):
        started = time.perf_counter()
        model = recipe.fit([data[i] for i, f in enumerate(folds) if f != fold], genres)
        for i in (i for i, f in enumerate(folds) if f == fold):
            audio = data[i].audio
            for condition, version in (
                ("full-band", audio),
                ("16 kHz", resample_through(audio, recipe.sample_rate, 16000)),
            ):
                probabilities = model.predict(version, EVAL_MAX_SEGMENTS).probabilities
                songs[condition][i] = song_probabilities(probabilities)
        print(f"  MFCC CNN fold {fold + 1}/{FOLDS}: {time.perf_counter() - started:.0f} s")
    np.savez(path, **songs)
    return songs


def variants_to_measure(with_mfcc: bool) -> list[Variant]:
    msd, mtt = ("MSD_musicnn",), ("MTT_musicnn",)
    both = (*msd, *mtt)

    def head(backbones: tuple[str, ...], *embeddings: str) -> HeadInput:
        return HeadInput(backbones=backbones, embeddings=embeddings)

    probe = Variant(head(msd, "penultimate"))
    pooled = Variant(head(msd, "pooled"))
    chosen = replace(pooled, c=0.1)
    rows = [
        # What the head reads, linear with C=1 (the probe's setting).
        probe,
        pooled,
        Variant(head(msd, "taggram")),
        Variant(head(msd, "penultimate", "taggram")),
        Variant(head(mtt, "penultimate")),
        Variant(head(mtt, "pooled")),
        Variant(head(mtt, "taggram")),
        Variant(head(both, "penultimate")),
        Variant(head(both, "pooled")),
        # Stronger regularisation.
        replace(probe, c=0.1),
        replace(probe, c=0.01),
        replace(probe, c=0.001),
        chosen,
        *(replace(pooled, c=c) for c in (0.03, 0.01, 0.003, 0.001)),
        Variant(head(msd, "taggram"), c=0.01),
        Variant(head(msd, "penultimate", "pooled"), c=0.01),
        Variant(head(both, "penultimate"), c=0.01),
        Variant(head(both, "pooled"), c=0.01),
        # A small MLP instead of a linear head.
        replace(probe, hidden_units=64, alpha=1e-2),
        replace(probe, hidden_units=256, alpha=1e-1),
        replace(probe, hidden_units=256, alpha=1.0),
        replace(pooled, hidden_units=256, alpha=1.0),
        replace(pooled, hidden_units=256, alpha=10.0),
        # Does augmentation matter?
        replace(probe, c=0.01, copies=0),
        replace(pooled, c=0.01, copies=0),
        replace(chosen, copies=0),
    ]
    if with_mfcc:
        rows += [replace(chosen, mfcc_weight=w) for w in (0.2, 0.35, 0.5)]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--mfcc", action="store_true", help="add the MFCC CNN ensemble rows")
    parser.add_argument("--json", type=Path, help="also write the table as JSON here")
    parser.add_argument("--only", help="measure only the variants whose label matches this regex")
    args = parser.parse_args()

    from classifier.train import load_clips

    clips = read_gtzan(args.data)
    genres = genres_of(clips)
    recipe = MusicnnHeadRecipe(augment_copies=COPIES)
    data = load_clips(clips, genres, recipe.sample_rate)
    outputs = cached_outputs(recipe, data, args.cache)
    labels = np.array([clip.label for clip in data])
    folds = block_folds(clips, FOLDS)
    mfcc = mfcc_song_probabilities(args.data, args.cache, folds) if args.mfcc else None

    print(f"{FOLDS}-fold cross-validation by clip blocks on {args.data.name} ({len(clips)} clips)")
    header = f"{'variant':<58} {'full-band':>26} {'16 kHz':>8} {'8 kHz':>8} {'NLL':>6}"
    print(header)
    print("-" * len(header))
    table = []
    for variant in variants_to_measure(args.mfcc):
        if args.only and not re.search(args.only, variant.label):
            continue
        songs = cross_validate(variant, outputs, labels, folds, len(genres))
        if variant.mfcc_weight and mfcc is not None:
            w = variant.mfcc_weight
            for condition in ("full-band", "16 kHz"):
                songs[condition] = (1 - w) * songs[condition] + w * mfcc[condition]
            songs["8 kHz"] = np.full_like(songs["8 kHz"], np.nan)
        accuracy = {
            condition: Accuracy(int(np.sum(probs.argmax(axis=1) == labels)), len(labels))
            for condition, probs in songs.items()
            if not np.isnan(probs).any()
        }
        # Mean negative log-probability of the true genre: finer-grained than 100 clips' hits.
        nll = float(-np.mean(np.log(songs["full-band"][np.arange(len(labels)), labels] + 1e-9)))
        short = {c: f"{a.value:.2f}" for c, a in accuracy.items()}
        print(
            f"{variant.label:<58} {accuracy['full-band']!s:>26} {short.get('16 kHz', '-'):>8} "
            f"{short.get('8 kHz', '-'):>8} {nll:6.3f}",
            flush=True,
        )
        table.append(
            {
                "variant": variant.label,
                **{c: a.as_dict() for c, a in accuracy.items()},
                "nll_full_band": round(nll, 4),
            }
        )
    if mfcc is not None:
        for condition in ("full-band", "16 kHz"):
            hits = int(np.sum(mfcc[condition].argmax(axis=1) == labels))
            print(f"MFCC CNN recipe alone, {condition}: {Accuracy(hits, len(labels))}")
    if args.json:
        args.json.write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
