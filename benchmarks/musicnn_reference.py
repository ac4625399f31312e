"""Record the original musicnn code's outputs on tests/support/musicnn_clips.py's clips, the
fixture that tests/classifier/test_musicnn.py holds our Keras port to. Not run in CI: it needs a
throwaway environment.

The original package cannot live in our environment (it pins numpy<1.17 and is TF1 graph code),
so it runs in a separate virtualenv outside the repository, with its float16 cast made float32:

    python3.11 -m venv /work/scratch/musicnn-ref
    /work/scratch/musicnn-ref/bin/pip install tensorflow tf-keras librosa soundfile
    /work/scratch/musicnn-ref/bin/pip install --no-deps musicnn==0.1.0
    cd /work/scratch/musicnn-ref/lib/python3.11/site-packages/musicnn
    sed -i 's/audio_rep.astype(np.float16)/audio_rep.astype(np.float32)/' extractor.py
    rm -r __pycache__  # same size, same second: Python would keep running the float16 bytecode
    TF_USE_LEGACY_KERAS=1 /work/scratch/musicnn-ref/bin/python benchmarks/musicnn_reference.py

It writes tests/support/fixtures/musicnn_reference.npz: per model, the per-patch tag probabilities
of the original `extractor()` and the penultimate features of its graph (`models.define_model`)
run on the same patches. The extractor's own penultimate output cannot be used: after the first
patch it repeats that patch's values (it concatenates the stale first-patch variable).
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tf.compat.v1.layers needs tf-keras

from tests.support.musicnn_clips import CLIPS, SAMPLE_RATE, reference_clip

FIXTURE = REPO / "tests" / "support" / "fixtures" / "musicnn_reference.npz"
MODELS = ("MSD_musicnn", "MTT_musicnn")
PATCH_SECONDS = 3


def original_penultimate(model: str, patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tag probabilities and penultimate features of the original graph for every patch."""
    import musicnn
    import tensorflow as tf
    from musicnn import models

    tf.compat.v1.reset_default_graph()
    x = tf.compat.v1.placeholder(tf.float32, [None, *patches.shape[1:]])
    is_training = tf.compat.v1.placeholder(tf.bool)
    outputs = models.define_model(x, is_training, model, 50)
    logits, penultimate = outputs[0], outputs[-1]
    with tf.compat.v1.Session() as session:
        # The checkpoints are saved under an empty file prefix inside each model's folder.
        checkpoint = os.path.join(os.path.dirname(musicnn.__file__), model) + "/"
        tf.compat.v1.train.Saver().restore(session, checkpoint)
        taggram, features = session.run(
            [tf.nn.sigmoid(logits), penultimate], feed_dict={x: patches, is_training: False}
        )
    return taggram, features


def main() -> None:
    import librosa
    import soundfile
    from musicnn import extractor

    warnings.filterwarnings("ignore", category=UserWarning)  # tf.layers deprecation, per layer
    arrays: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as scratch:
        paths = []
        for i in range(len(CLIPS)):
            clip = reference_clip(i)
            arrays[f"clip{i}_checksum"] = np.array([clip.sum(dtype=np.float64), clip.size])
            path = Path(scratch) / f"clip{i}.wav"
            soundfile.write(path, clip, SAMPLE_RATE, subtype="FLOAT")  # read back bit-exact
            paths.append(path)
            patches, _ = extractor.batch_data(str(path), 187, 187)
            if patches.dtype != np.float32:
                sys.exit("patch musicnn/extractor.py's float16 cast first (see the docstring)")
            # How the unpatched cast breaks this clip: 10000 * power overflows float16.
            power = librosa.feature.melspectrogram(
                y=clip, sr=SAMPLE_RATE, n_fft=512, hop_length=256, n_mels=96
            )
            with np.errstate(over="ignore"):
                overflow = np.isinf(10000 * power.astype(np.float16)).sum()
            print(
                f"clip {i}: peak {np.abs(clip).max():.2f}, float16 would give {overflow} inf bins"
            )
        for model in MODELS:
            for i, path in enumerate(paths):
                taggram, _tags, features = extractor.extractor(
                    str(path), model=model, input_length=PATCH_SECONDS, extract_features=True
                )
                patches, _ = extractor.batch_data(str(path), 187, 187)
                graph_taggram, penultimate = original_penultimate(model, patches)
                # The same original graph, batched or patch by patch, must agree.
                assert np.abs(graph_taggram - taggram).max() < 1e-5
                stale = np.abs(features["penultimate"] - features["penultimate"][:1]).max()
                print(
                    f"{model} clip {i}: {len(taggram)} patches, extractor penultimate rows "
                    f"differ from the first by at most {stale:.2g}"
                )
                arrays[f"{model}_clip{i}_taggram"] = taggram.astype(np.float32)
                arrays[f"{model}_clip{i}_penultimate"] = penultimate.astype(np.float32)
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(FIXTURE, **arrays)
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
