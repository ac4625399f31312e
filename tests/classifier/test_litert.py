"""The bot serves its networks from LiteRT graphs converted from the Keras models: same outputs to
float32 rounding, the same answers, and nothing of the `train` extra (TensorFlow, Keras, librosa,
scikit-learn) loaded anywhere on the way from a song to its answer (classify, the bot, a
worker). Keras still serves where LiteRT has no wheel."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from classifier import efficientat, fusion, litert, musicnn
from classifier.aggregate import song_probabilities
from classifier.backbones import keras_efficientat, keras_musicnn
from classifier.fusion import FusionModel
from classifier.model import GenreModel, find_card, load_model
from classifier.musicnn_head import MusicnnHeadModel
from classifier.training.litert_convert import blocked_taps
from config import DEFAULT_MODELS_DIR
from tests.support.audio_fixtures import song, write_song
from tests.support.processes import REPO, scriabin_environment

EFFICIENTAT_DIR = DEFAULT_MODELS_DIR / "efficientat"
MUSICNN_DIR = DEFAULT_MODELS_DIR / "musicnn"
# Largest |LiteRT - Keras| allowed. Measured on generated music and on the 100 gtzan-mini clips
# (x86-64 with AVX-512, XNNPACK, one thread), the bounds are about ten times that, for other CPUs
# and library versions; a wrong layer or a mis-folded normalisation moves these by far more.
BACKBONE_BOUNDS = {
    # measured 3.3e-5, 1.6e-6, 2.0e-6, 7.0e-6
    "EfficientAT": {"logits": 3e-4, "probabilities": 2e-5, "embedding": 2e-5, "hidden": 1e-4},
    # measured 5.2e-6, 1.4e-5 and 5.8e-4 (pooled features reach ~100: 6e-6 of their size)
    "musicnn MSD": {"taggram": 5e-5, "penultimate": 2e-4, "pooled": 5e-3},
}
# Genre probabilities, per segment and per song: measured at most 8.8e-6 (segments) and 1.8e-6
# (songs) for genre-fusion over the 100 gtzan-mini clips, 4.7e-6 for musicnn-genre.
PROBABILITY_BOUND = 1e-4
# What only the `train` extra installs: the serving path must load none of it.
TRAINING_ONLY = {"tensorflow", "keras", "librosa", "sklearn"}
SERVING_CHECK = f"""
import sys
from bot.cli import main

code = main(sys.argv[1:])
loaded = sorted({{name.split(".")[0] for name in sys.modules}} & {TRAINING_ONLY!r})
print("loaded:", loaded)
sys.exit(code or (3 if loaded else 0))
"""


@pytest.fixture(scope="module")
def served() -> dict[str, GenreModel]:
    return {
        name: load_model(name, DEFAULT_MODELS_DIR) for name in ("genre-fusion", "musicnn-genre")
    }


@pytest.fixture(scope="module")
def on_keras() -> dict[str, GenreModel]:
    """The shipped models run on their Keras files and Keras backbones, as before LiteRT."""
    import keras

    fusion_card = find_card("genre-fusion", DEFAULT_MODELS_DIR)
    musicnn_card = find_card("musicnn-genre", DEFAULT_MODELS_DIR)
    msd = keras_musicnn(fusion.MUSICNN_BACKBONE, MUSICNN_DIR)
    return {
        "genre-fusion": FusionModel(
            fusion_card,
            head=keras.saving.load_model(fusion_card.model_path, compile=False),
            audioset=keras_efficientat(EFFICIENTAT_DIR),
            msd=msd,
        ),
        "musicnn-genre": MusicnnHeadModel(
            musicnn_card,
            head=keras.saving.load_model(musicnn_card.model_path, compile=False),
            backbones={fusion.MUSICNN_BACKBONE: msd},
        ),
    }


def _generated_music(seconds: int = 120) -> np.ndarray:
    return np.concatenate(
        [song(30, fusion.SAMPLE_RATE, seed=seed) for seed in range(seconds // 30)]
    )


def test_backbones_give_the_keras_outputs_on_music(
    served: dict[str, GenreModel], on_keras: dict[str, GenreModel]
) -> None:
    audio = _generated_music()
    mels, patches = fusion.segment_inputs(audio, served["genre-fusion"].starts(len(audio), 40))
    lite, keras = served["genre-fusion"], on_keras["genre-fusion"]
    assert isinstance(lite.audioset, efficientat.EfficientAtLiteRt)
    assert isinstance(lite.msd, musicnn.MusicnnLiteRt)
    assert (lite.audioset.labels, lite.msd.tags) == (keras.audioset.labels, keras.msd.tags)
    pairs = {
        "EfficientAT": (lite.audioset.embed(mels), keras.audioset.embed(mels)),
        "musicnn MSD": (lite.msd.embed(patches), keras.msd.embed(patches)),
    }
    for backbone, (ours, theirs) in pairs.items():
        for output, bound in BACKBONE_BOUNDS[backbone].items():
            mine, reference = getattr(ours, output), getattr(theirs, output)
            assert mine.shape == reference.shape and mine.dtype == np.float32
            assert np.abs(mine - reference).max() <= bound, f"{backbone} {output}"


@pytest.mark.parametrize("name", ["genre-fusion", "musicnn-genre"])
def test_both_shipped_models_give_the_keras_probabilities(
    name: str, served: dict[str, GenreModel], on_keras: dict[str, GenreModel]
) -> None:
    audio = _generated_music()
    if name == "musicnn-genre":
        audio = fusion.to_musicnn_rate(audio)
    ours, theirs = served[name].predict(audio, 40), on_keras[name].predict(audio, 40)
    assert np.abs(ours.probabilities - theirs.probabilities).max() <= PROBABILITY_BOUND
    assert ours.tag_probabilities is not None and theirs.tag_probabilities is not None
    assert np.abs(ours.tag_probabilities - theirs.tag_probabilities).max() <= 5e-5


@pytest.mark.slow
def test_every_gtzan_mini_clip_gets_the_same_top_genre_as_on_keras(
    gtzan_mini: Path, served: dict[str, GenreModel], on_keras: dict[str, GenreModel]
) -> None:
    from classifier.audio import decode_audio

    clips = sorted(gtzan_mini.glob("*/*.flac"))
    largest, changed = 0.0, []
    for clip in clips:
        audio = decode_audio(clip, fusion.SAMPLE_RATE)
        ours = song_probabilities(served["genre-fusion"].predict(audio, 40).probabilities)
        theirs = song_probabilities(on_keras["genre-fusion"].predict(audio, 40).probabilities)
        largest = max(largest, float(np.abs(ours - theirs).max()))
        if ours.argmax() != theirs.argmax():
            changed.append(clip.name)
    print(f"genre-fusion on {len(clips)} gtzan-mini clips: max |LiteRT - Keras| {largest:.2g}")
    assert len(clips) == 100
    assert changed == []
    assert largest <= PROBABILITY_BOUND


@pytest.mark.slow
def test_serving_path_loads_nothing_of_the_training_extra(tmp_path: Path) -> None:
    audio = write_song(tmp_path / "song.wav", seconds=30, fmt="wav")
    environment = scriabin_environment(
        tmp_path, SCRIABIN_DATABASE_PATH=str(tmp_path / "scriabin.sqlite3")
    )
    runs = {
        "classify": ([audio.as_posix()], None),
        # No chat token: the console chat, which answers the file, then is told to quit.
        "bot": ([], f"{audio}\n/quit\n"),
    }
    for command, (arguments, typed) in runs.items():
        done = subprocess.run(
            [sys.executable, "-c", SERVING_CHECK, command, *arguments],
            cwd=REPO,
            env=environment,
            input=typed or "",
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, (command, done.stdout[-500:], done.stderr[-2000:])
        assert "Model: genre-fusion" in done.stdout, command
        assert "loaded: []" in done.stdout, command


@pytest.mark.slow
def test_a_worker_loads_nothing_of_the_training_extra(tmp_path: Path, redis_server) -> None:
    from tests.support.processes import start_workers, stop_workers

    imports = tmp_path / "imports.txt"
    # -X importtime reports every import, in the worker and in its job process (forked).
    workers = start_workers(
        1, redis_server.url, tmp_path, python_options=("-X", "importtime"), stderr=imports
    )
    stop_workers(workers)
    modules = {
        line.rsplit("|", 1)[-1].strip().split(".")[0]
        for line in imports.read_text(encoding="utf-8").splitlines()
        if line.startswith("import time:")
    }
    assert "ai_edge_litert" in modules and "classifier" in modules
    assert not modules & TRAINING_ONLY


@pytest.mark.slow
def test_without_litert_the_keras_models_serve_and_the_log_says_so_once() -> None:
    code = (
        "import logging, sys\n"
        "sys.modules['ai_edge_litert'] = None  # as where it has no wheel: importing it fails\n"
        "logging.basicConfig(level=logging.WARNING, format='%(name)s: %(message)s')\n"
        "import numpy as np\n"
        "from classifier.model import load_model\n"
        "from config import DEFAULT_MODELS_DIR\n"
        "model = load_model(None, DEFAULT_MODELS_DIR)\n"
        "load_model('musicnn-genre', DEFAULT_MODELS_DIR)\n"
        "rng = np.random.default_rng(0)\n"
        "predictions = model.predict(rng.normal(size=32000 * 7).astype('float32') * 0.1, 5)\n"
        "print(type(model.audioset).__name__, type(model.msd).__name__, "
        "'tensorflow' in sys.modules, predictions.probabilities.shape)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["EfficientAtBackbone", "MusicnnBackbone", "True", "(2,", "14)"]
    assert done.stderr.count("LiteRT (ai-edge-litert) is not installed") == 1


@pytest.mark.parametrize(
    ("blocked", "command", "said"),
    [
        # Where LiteRT has no wheel, a serving install has nothing to run the models on.
        (
            ("ai_edge_litert", *TRAINING_ONLY),
            ["classify", "SONG"],
            "LiteRT has no wheel for this platform, so the models run on TensorFlow here;",
        ),
        # Training always needs the extra.
        ((*TRAINING_ONLY,), ["train", "DATA"], "Training, evaluation and conversion needs"),
        ((*TRAINING_ONLY,), ["evaluate", "DATA"], "Training, evaluation and conversion needs"),
    ],
)
def test_without_the_training_extra_the_error_names_it(
    tmp_path: Path, blocked: tuple[str, ...], command: list[str], said: str
) -> None:
    song = write_song(tmp_path / "song", seconds=4, fmt="wav")
    arguments = [
        str(song) if word == "SONG" else str(tmp_path) if word == "DATA" else word
        for word in command
    ]
    code = (
        "import sys\n"
        f"for name in {sorted(blocked)!r}:\n"
        "    sys.modules[name] = None  # as in an install without them: importing fails\n"
        "from bot.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *arguments],
        cwd=REPO,
        env=scriabin_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.startswith(f"scriabin: {said}"), done.stderr[-2000:]
    assert "pip install 'scriabin[train]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_graph_serves_threads_at_once_with_the_answers_it_gives_one_at_a_time() -> None:
    graph = litert.Graph(MUSICNN_DIR / f"MSD_musicnn{musicnn.LITERT_SUFFIX}", 1)
    rng = np.random.default_rng(1)
    batches = [rng.normal(2.0, 1.0, (n, 187, 96)).astype(np.float32) for n in (3, 11, 1, 8)]
    expected = [graph(batch)["taggram"] for batch in batches]
    results: list[list[np.ndarray]] = [[] for _ in batches]

    def worker(index: int) -> None:
        for _ in range(3):
            results[index].append(graph(batches[index])["taggram"])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for want, got in zip(expected, results, strict=True):
        assert len(got) == 3
        for answer in got:
            np.testing.assert_array_equal(answer, want)


def test_a_long_batch_runs_in_pieces_with_the_outputs_of_one_call() -> None:
    graph = litert.Graph(EFFICIENTAT_DIR / efficientat.LITERT_FILE, 1)
    rng = np.random.default_rng(2)
    windows = rng.normal(-1.0, 1.0, (litert.MAX_BATCH + 3, efficientat.N_MELS, 300))
    whole = graph(windows)["logits"]
    assert whole.shape == (litert.MAX_BATCH + 3, efficientat.N_CLASSES)
    for i in (0, litert.MAX_BATCH, litert.MAX_BATCH + 2):
        alone = graph(windows[i : i + 1])["logits"][0]
        assert np.abs(alone - whole[i]).max() <= 1e-4


def test_served_musicnn_takes_three_second_patches_only(served: dict[str, GenreModel]) -> None:
    backbone = served["genre-fusion"].msd
    with pytest.raises(ValueError, match=r"\(n, 187, 96\)"):
        backbone.embed(np.zeros((2, 100, musicnn.N_MELS), dtype=np.float32))


def test_a_missing_graph_names_the_command_that_writes_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="litert_convert"):
        efficientat.load_litert(tmp_path)
    with pytest.raises(FileNotFoundError, match="litert_convert"):
        musicnn.load_litert("MSD_musicnn", tmp_path)


def test_a_long_filter_runs_as_a_short_one_over_blocks() -> None:
    rng = np.random.default_rng(3)
    signal, kernel = rng.normal(size=40), rng.normal(size=11)
    expected = np.correlate(signal, kernel, mode="valid")  # out[t] = sum_j x[t + j] k[j]
    block = 4
    blocked = blocked_taps(kernel[:, None], block)[..., 0]  # (reach, i, p)
    reach = len(blocked)
    outputs = len(expected) // block
    grouped = signal[: (outputs + reach - 1) * block].reshape(-1, block)
    got = np.stack(
        [
            sum(grouped[q + m] @ blocked[m] for m in range(reach))  # (p,)
            for q in range(outputs)
        ]
    ).ravel()
    np.testing.assert_allclose(got, expected[: outputs * block], atol=1e-12)


def test_a_lone_request_gets_every_core_and_busy_workers_their_share(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("_threads", "_alone"):  # restored after the test
        monkeypatch.setattr(litert, name, getattr(litert, name))
    litert.use_threads(1, alone=2)
    assert litert.threads() == 2
    with litert.request():
        assert litert.threads() == 2
        with litert.request():
            assert litert.threads() == 1
        assert litert.threads() == 2
    litert.use_threads(1)  # threads the operator set are kept whatever runs
    with litert.request():
        assert litert.threads() == 1
