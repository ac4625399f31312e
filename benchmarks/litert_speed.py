"""The served networks on LiteRT against TensorFlow/Keras, in the same run. Prints figures; it
is not a test.

    python benchmarks/litert_speed.py [--repeats 7]

1. Milliseconds per batch of 32 windows (the most segments a song gets) for EfficientAT,
   musicnn MSD and the genre-fusion head: Keras on TensorFlow (its own thread pools, every
   core), and LiteRT with 1 and 2 threads, XNNPACK on and off, in one call of 32 and in
   pieces of MAX_BATCH (how classifier.litert.Graph runs them).
2. Batch handling: requests of varying sizes through one interpreter, resized whenever the
   size changes, against a fixed batch padded with zeros.
3. Two workers at once (two threads, an interpreter each), with 1 or 2 LiteRT threads per
   interpreter: songs per second, on this machine's cores.
4. Warm per-request time of genre-fusion (decoded audio to answer) on LiteRT and on Keras.
5. The front ends (log-mels of a 30-s song's 10 segments) with NumPy's BLAS on every core and
   on one thread, alone and while another thread keeps a core busy (a second worker).

Inputs are the log-mels of real music (GTZAN clips when ../shared is present, else generated).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from classifier import efficientat, fusion, litert, musicnn
from classifier.audio import decode_audio
from classifier.backbones import keras_efficientat, keras_musicnn
from classifier.model import find_card
from classifier.pipeline import classify_audio
from config import DEFAULT_MODELS_DIR, PROJECT_ROOT
from tests.support.audio_fixtures import song

GTZAN_MINI = PROJECT_ROOT.parent / "shared" / "data" / "gtzan-mini"
BATCH = 32
EFFICIENTAT_DIR = DEFAULT_MODELS_DIR / "efficientat"
MUSICNN_DIR = DEFAULT_MODELS_DIR / "musicnn"


def music(seconds: int) -> np.ndarray:
    """`seconds` of music at 32 kHz: GTZAN clips end to end, else generated."""
    if GTZAN_MINI.is_dir():
        clips = sorted(GTZAN_MINI.glob("*/*.00005.flac"))
        audio = np.concatenate([decode_audio(clip, fusion.SAMPLE_RATE) for clip in clips])
        return np.resize(audio, seconds * fusion.SAMPLE_RATE)
    return song(seconds, fusion.SAMPLE_RATE, seed=4)


def median_ms(call: Callable[[], object], repeats: int) -> float:
    call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def interpreter_call(
    path: Path, batch: np.ndarray, threads: int, xnnpack: bool
) -> Callable[[], object]:
    """One interpreter running the whole batch in one call."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interpreter = Interpreter(
        model_path=str(path), num_threads=threads, experimental_op_resolver_type=resolver
    )
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, batch.shape)
    interpreter.allocate_tensors()

    def call() -> None:
        interpreter.set_tensor(index, batch)
        interpreter.invoke()

    return call


def per_batch(repeats: int, inputs: dict[str, np.ndarray], keras_calls: dict) -> None:
    card = find_card("genre-fusion", DEFAULT_MODELS_DIR)
    graphs = {
        "EfficientAT": EFFICIENTAT_DIR / efficientat.LITERT_FILE,
        "musicnn MSD": MUSICNN_DIR / f"MSD_musicnn{musicnn.LITERT_SUFFIX}",
        "fusion head": card.litert_path,
    }
    print(f"\n1. ms per batch of {BATCH} (median of {repeats})")
    print(f"{'runtime':<44}" + "".join(f"{name:>14}" for name in graphs))
    row = [median_ms(lambda n=name: keras_calls[n](inputs[n]), repeats) for name in graphs]
    print(f"{'Keras on TensorFlow (all cores)':<44}" + "".join(f"{ms:>14.1f}" for ms in row))
    for xnnpack in (True, False):
        for threads in (1, 2):
            label = f"LiteRT, {threads} thread(s), XNNPACK {'on' if xnnpack else 'off'}"
            row = [
                median_ms(interpreter_call(path, inputs[name], threads, xnnpack), repeats)
                for name, path in graphs.items()
            ]
            print(f"{label + ', one call':<44}" + "".join(f"{ms:>14.1f}" for ms in row))
            if xnnpack:
                row = []
                for name, path in graphs.items():
                    graph = litert.Graph(path, threads)
                    row.append(median_ms(lambda g=graph, n=name: g(inputs[n]), repeats))
                label += f", pieces of {litert.MAX_BATCH}"
                print(f"{label:<44}" + "".join(f"{ms:>14.1f}" for ms in row))


def batch_handling(repeats: int, patches: np.ndarray) -> None:
    """Requests of 10, 32, 3, 32 and 7 patches through musicnn, one thread."""
    from ai_edge_litert.interpreter import Interpreter

    path = MUSICNN_DIR / f"MSD_musicnn{musicnn.LITERT_SUFFIX}"
    sizes = (10, 32, 3, 32, 7)
    print(f"\n2. musicnn MSD, requests of {sizes} patches in turn, 1 thread: total ms")
    resized = litert.Graph(path, 1)
    print(f"{'resized when the size changes, pieces of ' + str(litert.MAX_BATCH):<52}", end="")
    print(f"{median_ms(lambda: [resized(patches[:n]) for n in sizes], repeats):>8.1f}")
    for fixed in (litert.MAX_BATCH, BATCH):
        interpreter = Interpreter(model_path=str(path), num_threads=1)
        index = interpreter.get_input_details()[0]["index"]
        interpreter.resize_tensor_input(index, (fixed, *patches.shape[1:]))
        interpreter.allocate_tensors()
        padded = np.zeros((fixed, *patches.shape[1:]), dtype=np.float32)

        def requests(interpreter=interpreter, index=index, padded=padded, fixed=fixed) -> None:
            for n in sizes:
                for start in range(0, n, fixed):
                    piece = patches[start : min(n, start + fixed)]
                    padded[: len(piece)] = piece
                    padded[len(piece) :] = 0
                    interpreter.set_tensor(index, padded)
                    interpreter.invoke()

        label = f"a fixed batch of {fixed}, zero-padded"
        print(f"{label:<52}{median_ms(requests, repeats):>8.1f}")


def two_workers(repeats: int, inputs: dict[str, np.ndarray]) -> None:
    """Two threads, each with its own interpreters, each running both backbones on 32 windows
    `repeats` times; with 1 or 2 LiteRT threads per interpreter."""
    print(f"\n3. two workers at once on {litert.cpu_count()} core(s), both backbones, 32 windows")
    for threads in (1, 2):
        audioset = litert.Graph(EFFICIENTAT_DIR / efficientat.LITERT_FILE, threads)
        msd = litert.Graph(MUSICNN_DIR / f"MSD_musicnn{musicnn.LITERT_SUFFIX}", threads)

        def songs(count: int, audioset: litert.Graph = audioset, msd: litert.Graph = msd) -> None:
            for _ in range(count):
                audioset(inputs["EfficientAT"])
                msd(inputs["musicnn MSD"])

        def at_once(workers: int, count: int) -> float:
            threads = [threading.Thread(target=songs, args=(count,)) for _ in range(workers)]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            return time.perf_counter() - started

        at_once(2, 1)  # each worker's interpreters created and run once
        alone = at_once(1, repeats) / repeats
        both = at_once(2, repeats)
        print(
            f"{threads} thread(s) per interpreter: one worker alone {1000 * alone:.0f} ms a "
            f"song, {1 / alone:.1f} songs/s; two at once {2 * repeats / both:.1f} songs/s"
        )


def per_request(repeats: int) -> None:
    import keras

    from classifier.fusion import FusionModel
    from classifier.model import load_model

    card = find_card("genre-fusion", DEFAULT_MODELS_DIR)
    served = load_model("genre-fusion", DEFAULT_MODELS_DIR)
    on_keras = FusionModel(
        card,
        head=keras.saving.load_model(card.model_path, compile=False),
        audioset=keras_efficientat(EFFICIENTAT_DIR),
        msd=keras_musicnn(fusion.MUSICNN_BACKBONE, MUSICNN_DIR),
    )
    print("\n4. genre-fusion, warm, decoded audio to answer: ms (median)")
    for seconds in (30, 240):
        audio = music(seconds)
        times = {
            name: median_ms(lambda m=model, a=audio: classify_audio(a, m, 40), repeats)
            for name, model in (("LiteRT", served), ("Keras", on_keras))
        }
        print(
            f"{seconds:>4} s song: LiteRT {times['LiteRT']:.0f} ms, Keras {times['Keras']:.0f} ms"
        )


def front_ends(repeats: int) -> None:
    import subprocess

    from threadpoolctl import threadpool_limits

    print("\n5. Front ends of a 30-s song (10 segments), median ms")
    audio = music(30)
    starts = fusion.segment_starts(len(audio), fusion.SEGMENT_SAMPLES, 40)
    for label in ("alone", "a core kept busy"):
        # Another process spinning on one core stands in for a second busy worker.
        spinner = (
            None
            if label == "alone"
            else subprocess.Popen([sys.executable, "-c", "while True: pass"])
        )
        try:
            figures = {}
            for blas in (None, 1):
                with threadpool_limits(limits=blas, user_api="blas"):
                    call = lambda: fusion.segment_inputs(audio, starts)  # noqa: E731
                    figures[blas] = median_ms(call, repeats)
        finally:
            if spinner is not None:
                spinner.kill()
                spinner.wait()
        print(
            f"{label:<18} BLAS on every core {figures[None]:6.1f} ms, "
            f"on one thread {figures[1]:6.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    litert.use_threads(1)
    # use_threads keeps NumPy's BLAS on one thread; section 5 compares, so it starts unlimited.
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=litert.cpu_count(), user_api="blas")
    audio = music(BATCH * 3 + 3)
    starts = np.arange(BATCH) * fusion.SEGMENT_SAMPLES
    mels, patches = fusion.segment_inputs(audio, starts)
    audioset = keras_efficientat(EFFICIENTAT_DIR)
    msd = keras_musicnn(fusion.MUSICNN_BACKBONE, MUSICNN_DIR)
    card = find_card("genre-fusion", DEFAULT_MODELS_DIR)
    model = fusion.FusionModel(card, audioset=audioset, msd=msd)
    outputs = fusion.FusionOutputs(audioset.embed(mels), msd.embed(patches))
    features = fusion.head_features(outputs, model.columns)
    import keras

    from classifier.model import traced_head

    _, keras_head = traced_head(card, keras.saving.load_model(card.model_path, compile=False))
    inputs = {"EfficientAT": mels, "musicnn MSD": patches, "fusion head": features}
    keras_calls = {
        "EfficientAT": audioset.embed,
        "musicnn MSD": msd.embed,
        "fusion head": keras_head,
    }
    per_batch(args.repeats, inputs, keras_calls)
    batch_handling(args.repeats, patches)
    two_workers(args.repeats, inputs)
    per_request(args.repeats)
    front_ends(args.repeats)


if __name__ == "__main__":
    main()
