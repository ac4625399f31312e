"""Record the original EfficientAT code's outputs on tests/support/efficientat_clips.py's clips,
the fixture that tests/classifier/test_efficientat.py holds our Keras port to. Not run in CI: it
needs PyTorch.

The original runs in a throwaway virtualenv outside the repository, with a local CPU wheel of
torch, and a scratch copy of the EfficientAT files it needs (fschmid56/EfficientAT, MIT):
models/mn/{model,block_types,utils,attention_pooling}.py, models/preprocess.py and
helpers/utils.py, plus metadata/class_labels_indices.csv linked to the label CSV. No torchvision
or torchaudio wheel matches that torch, so the scratch copy also holds two stand-ins:
torchvision/ops/misc.py (ConvNormActivation as torchvision builds it: Conv2d without bias when a
norm follows, BatchNorm2d, activation) and torchaudio/compliance/kaldi.py (torchaudio's
get_mel_banks, copied unchanged; torchaudio/__init__.py imports only that):

    python3.11 -m venv /work/scratch/efficientat-venv
    /work/scratch/efficientat-venv/bin/pip install \\
        /opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl numpy
    # write the files above under /work/scratch/efficientat-ref/, then:
    /work/scratch/efficientat-venv/bin/python benchmarks/efficientat_reference.py \\
        --efficientat /work/scratch/efficientat-ref

It builds the model the way EfficientAT's inference.py does (get_model with the width of
"mn04_as", MLP head, defaults otherwise), loads mn04_as_mAP_432.pt into it strictly (as
_mobilenet_v3 does after its download), and runs AugmentMelSTFT (n_mels 128, sr 32000, window
800, hop 320; SpecAugment masks off, which eval mode skips anyway) and the model in eval mode,
float32, on each clip. It writes tests/support/fixtures/efficientat_reference.npz: per clip a
checksum, the first and last EDGE_FRAMES frames of the normalised log-mel (where the padding
shows), the logits, the pooled embedding and the classifier's hidden layer.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import sys
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PRETRAINED = REPO.parent / "shared" / "pretrained" / "efficientat-mn04"
CHECKPOINT = PRETRAINED / "mn04_as_mAP_432.pt"
NPZ = PRETRAINED / "mn04_as_mAP_432.npz"
CHECKPOINT_SHA256 = "899a8c6217063f6941793102a2780b3dd788ab11fce468d9cf5f0577c453321c"
FIXTURE = REPO / "tests" / "support" / "fixtures" / "efficientat_reference.npz"
EDGE_FRAMES = 40


def load_original(efficientat: Path) -> tuple[object, object]:
    """EfficientAT's mel front end and mn04_as model, from the scratch copy, in eval mode."""
    import torch

    # The scratch copy first: its models/, helpers/, torchvision/ and torchaudio/ packages.
    sys.path.insert(0, str(efficientat))
    from helpers.utils import NAME_TO_WIDTH
    from models.mn.model import get_model
    from models.preprocess import AugmentMelSTFT

    if hashlib.sha256(CHECKPOINT.read_bytes()).hexdigest() != CHECKPOINT_SHA256:
        sys.exit(f"{CHECKPOINT} is not the released mn04_as_mAP_432.pt")
    with contextlib.redirect_stdout(io.StringIO()):  # get_model prints the whole module tree
        model = get_model(
            width_mult=NAME_TO_WIDTH("mn04_as"), pretrained_name=None, head_type="mlp"
        )
    state_dict = torch.load(CHECKPOINT, map_location="cpu")
    model.load_state_dict(state_dict, strict=True)
    model.eval()
    # The converter reads the npz: it must hold exactly the checkpoint's tensors.
    with np.load(NPZ) as arrays:
        assert sorted(arrays.files) == sorted(state_dict)
        for key, tensor in state_dict.items():
            np.testing.assert_array_equal(arrays[key], tensor.numpy(), err_msg=key)
    mel = AugmentMelSTFT(n_mels=128, sr=32000, win_length=800, hopsize=320, freqm=0, timem=0)
    mel.eval()
    return mel, model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--efficientat", type=Path, required=True, help="scratch EfficientAT copy")
    args = parser.parse_args()

    import torch

    sys.path.insert(0, str(REPO))
    from tests.support.efficientat_clips import CLIPS, reference_clip

    # Deprecation notices of the reference code (stft return_complex=False, cuda.amp.autocast).
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    mel, model = load_original(args.efficientat.resolve())
    # The classifier's hidden layer: the output of its dropout (identity in eval mode), i.e.
    # Linear 384 -> 512 then hard-swish.
    hidden: list[torch.Tensor] = []
    model.classifier[4].register_forward_hook(lambda _m, _i, output: hidden.append(output.clone()))

    arrays: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for i in range(len(CLIPS)):
            clip = reference_clip(i)
            arrays[f"clip{i}_checksum"] = np.array([clip.sum(dtype=np.float64), clip.size])
            spec = mel(torch.from_numpy(clip[None]))  # (1, 128, frames)
            logits, embedding = model(spec.unsqueeze(0))  # input (1, 1, 128, frames)
            spec = spec[0].numpy()
            arrays[f"clip{i}_frames"] = np.array(spec.shape[1])
            arrays[f"clip{i}_mel_head"] = spec[:, :EDGE_FRAMES].astype(np.float32)
            arrays[f"clip{i}_mel_tail"] = spec[:, -EDGE_FRAMES:].astype(np.float32)
            arrays[f"clip{i}_logits"] = logits.numpy().astype(np.float32)
            arrays[f"clip{i}_embedding"] = embedding.numpy().astype(np.float32)
            arrays[f"clip{i}_hidden"] = hidden.pop().numpy().astype(np.float32)
            top = np.argsort(-logits[0].numpy())[:3]
            print(
                f"clip {i}: {clip.size / 32000:.2f} s, peak {np.abs(clip).max():.2f}, "
                f"{spec.shape[1]} frames, top classes {top.tolist()}"
            )
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(FIXTURE, **arrays)
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
