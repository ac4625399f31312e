"""What hostile media and links cost one request: its answer, its time and its peak memory above
the idle process, for this checkout and (with --before) an older one, side by side, in the same
run on the same machine. Also how `scriabin classify` ends when SIGTERM arrives mid-download.

    python benchmarks/hostile_inputs.py [--before OLD_CHECKOUT] [--only CASE ...]

An older checkout can be made with `git archive <commit> | tar -x -C /tmp/before`; it runs with
this checkout's environment. Each request runs in a fresh process that first loads and warms its
checkout's default model (the "idle" memory), then serves the one request; a request still going
after --give-up seconds is reported as such and its process killed. Takes 5-15 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.audio_bombs import constant_flac, wav_header
from tests.support.audio_fixtures import song, write_audio
from tests.support.http_server import LocalServer

# Runs inside the child, in the checkout being measured: load and warm the default model, then
# serve one request in a thread, reporting the outcome and peak memory (ru_maxrss, KiB).
CHILD = r"""
import json, os, resource, sys, threading, time
from pathlib import Path
spec = json.loads(sys.argv[1])
from classifier.model import load_model
from classifier.pipeline import classify_source
from classifier.results import Upload
from config import load_settings
settings = load_settings(allow_private_networks=True)
model = load_model(None, settings.models_dir)
model.warm_up(settings.max_segments)
idle = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if spec.get("upload"):
    source = Upload(Path(spec["upload"]).read_bytes(), "upload")
else:
    source = spec["link"]
outcome = []
def run():
    try:
        result = classify_source(source, model, settings)
        outcome.append(f"answered: {result.top.genre} {result.top.confidence:.0%}")
    except Exception as error:
        outcome.append(f"{type(error).__name__}: {error}")
started = time.monotonic()
worker = threading.Thread(target=run, daemon=True)
worker.start()
worker.join(spec["give_up"])
seconds = time.monotonic() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
answer = outcome[0] if outcome else f"still running after {spec['give_up']:.0f} s"
print(json.dumps({"answer": answer, "seconds": seconds, "idle_kib": idle, "peak_kib": peak}))
sys.stdout.flush()
os._exit(0)
"""


def run_case(tree: Path, spec: dict, cwd: Path) -> dict:
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SCRIABIN_")},
        "PYTHONPATH": str(tree),
        "SCRIABIN_MODELS_DIR": str(tree / "models"),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(spec)],
        cwd=cwd,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Watched from outside too, so a process the kernel kills for its memory still has figures.
    peak_kib = 0
    while process.poll() is None and time.monotonic() - started < spec["give_up"] + 300:
        peak_kib = max(peak_kib, _high_water_kib(process.pid))
        time.sleep(0.2)
    if process.poll() is None:
        process.kill()
    out, err = process.communicate()
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if lines:
        return json.loads(lines[-1])
    killed = "killed by the kernel (out of memory)" if process.returncode == -9 else "crashed"
    return {
        "answer": f"{killed}, status {process.returncode}: {err.strip()[-200:]}",
        "peak_kib": peak_kib,
        "idle_kib": float("nan"),
        "seconds": time.monotonic() - started,
    }


def _high_water_kib(pid: int) -> int:
    """The process's peak resident memory so far (Linux /proc), 0 when it cannot be read."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def sigterm_case(tree: Path, url: str) -> dict:
    """`scriabin classify` on a download that trickles; SIGTERM once its .part file exists."""
    with tempfile.TemporaryDirectory() as temp:
        environment = {
            **os.environ,
            "PYTHONPATH": str(tree),
            "TMPDIR": temp,
            "SCRIABIN_ALLOW_PRIVATE_NETWORKS": "1",
            "SCRIABIN_MODELS_DIR": str(tree / "models"),
            "TF_CPP_MIN_LOG_LEVEL": "3",
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "classify", url],
            cwd=tree,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 300
        while not list(Path(temp).glob("scriabin-*/*.part")):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                return {"answer": "the download never started"}
            time.sleep(0.1)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        seconds = time.monotonic() - started
        left = sorted(str(p.relative_to(temp)) for p in Path(temp).rglob("*"))
        return {
            "answer": f"exit status {process.returncode}; left behind: {left or 'nothing'}",
            "seconds": seconds,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="an older checkout to measure beside")
    parser.add_argument("--only", nargs="*", help="run only these cases")
    parser.add_argument("--give-up", type=float, default=150.0, help="seconds per request")
    args = parser.parse_args()
    trees = {"now": REPO} if args.before is None else {"before": args.before, "now": REPO}

    work = Path(tempfile.mkdtemp(prefix="hostile-"))
    (work / "private").mkdir()
    write_audio(work / "private" / "recording.wav", song(20.0, 22050, seed=1), 22050)
    server = LocalServer()
    uploads: dict[str, Callable[[], bytes]] = {
        "flac-655khz-20min": lambda: constant_flac(1200, 655_350),
        "flac-384khz-20min": lambda: constant_flac(1200, 384_000),
        "flac-192khz-stereo-20min": lambda: constant_flac(1200, 192_000, channels=2),
        "wav-zero-bits-per-sample": lambda: wav_header(44_100, 1, 0, 88_200) + bytes(88_200),
        "ffconcat-naming-a-private-file": lambda: (
            b"ffconcat version 1.0\nfile 'private/recording.wav'\n"
        ),
    }
    links = {
        "endless-html-page": server.url("endless?type=text/html"),
        "page-dripping-1-byte-per-s": server.url("drip?type=text/html&every=1"),
    }
    try:
        for name in [*uploads, *links, "sigterm-mid-download"]:
            if args.only and name not in args.only:
                continue
            for label, tree in trees.items():
                if name == "sigterm-mid-download":
                    url = server.url("drip?type=audio/mpeg&every=0.001&length=1000000")
                    result = sigterm_case(tree, url)
                else:
                    spec: dict = {"give_up": args.give_up}
                    if name in uploads:
                        path = work / f"{name}.bin"
                        path.write_bytes(uploads[name]())
                        spec["upload"] = str(path)
                    else:
                        spec["link"] = links[name]
                    result = run_case(tree, spec, work)
                line = f"{name:32s} {label:6s} {result.get('seconds', float('nan')):7.1f} s"
                if "peak_kib" in result:
                    idle, peak = result["idle_kib"] / 1024, result["peak_kib"] / 1024
                    line += f"  idle {idle:6.0f} MB  peak {peak:6.0f} MB  (+{peak - idle:.0f} MB)"
                print(f"{line}  {result['answer'][:160]}", flush=True)
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
