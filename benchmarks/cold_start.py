"""Cold start and memory: `scriabin classify` of one 30-s file in a fresh process (wall time
and peak RSS), and `scriabin bot` (the console adapter, no chat token) from launch to ready,
its RSS when idle and after answering a song. Prints figures; it is not a test.

    python benchmarks/cold_start.py [--repeats 3]

References measured in the same run: a bare Python start, and importing TensorFlow and Keras
(what the serving path no longer loads).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Only the standard library is imported here: a child's peak RSS counts the parent's pages at
# the fork, so this process stays small.
PROJECT_ROOT = Path(__file__).resolve().parents[1]
GTZAN_MINI = PROJECT_ROOT.parent / "shared" / "data" / "gtzan-mini"
READY_LINE = "Scriabin"  # the console's greeting starts with the bot's name
IDLE_S = 2.0


def environment(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCRIABIN_")}
    env.pop("DISCORD_TOKEN", None)
    env.pop("TELEGRAM_TOKEN", None)
    env["SCRIABIN_DATABASE_PATH"] = str(folder / "bench.sqlite3")
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one run of `command`."""
    began = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _pid, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - began
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed")
    return wall, usage.ru_maxrss / 1024


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bot_figures(song_path: Path, env: dict[str, str]) -> tuple[float, float, float, float]:
    """Seconds to ready, idle RSS, RSS after one answer and peak RSS (MB) of `scriabin bot`."""
    began = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "bot"],
        env=env,
        cwd=PROJECT_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        bufsize=1,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        while READY_LINE not in process.stdout.readline():
            if process.poll() is not None:
                raise SystemExit("scriabin bot stopped before it was ready")
        ready = time.perf_counter() - began
        time.sleep(IDLE_S)
        idle = rss_mb(process.pid)
        process.stdin.write(f"{song_path}\n")
        process.stdin.flush()
        while "%" not in process.stdout.readline():  # the answer's confidences
            pass
        answered, peak = rss_mb(process.pid), rss_mb(process.pid, "VmHWM")
        process.stdin.write("/quit\n")
        process.stdin.flush()
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    return ready, idle, answered, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-") as name:
        folder = Path(name)
        env = environment(folder)
        clips = sorted(GTZAN_MINI.glob("*/*.00003.flac"))
        if clips:
            song_path, origin = clips[0], clips[0].name
        else:
            song_path, origin = folder / "song.flac", "generated 30-s FLAC"
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "import sys; from tests.support.audio_fixtures import song, write_audio; "
                    "write_audio(__import__('pathlib').Path(sys.argv[1]), song(30, 22050, "
                    "seed=1), 22050, 'flac')",
                    str(song_path),
                ],
                cwd=PROJECT_ROOT,
                check=True,
            )
        python = sys.executable
        runs = {
            "python -c pass": [python, "-c", "pass"],
            "import tensorflow, keras": [python, "-c", "import tensorflow, keras"],
            "scriabin classify": [python, "-m", "bot.cli", "classify", str(song_path)],
            # (bot.cli from this checkout, whatever `scriabin` is installed)
        }
        print(f"file: {origin}; CPU cores: {os.cpu_count()}; median of {args.repeats} runs")
        print(f"{'':<26} {'wall':>8} {'peak RSS':>10}")
        for label, command in runs.items():
            figures = [timed(command, env) for _ in range(args.repeats)]
            wall = statistics.median(f[0] for f in figures)
            peak = statistics.median(f[1] for f in figures)
            print(f"{label:<26} {wall:>7.2f}s {peak:>7.0f} MB")
        bots = [bot_figures(song_path, env) for _ in range(args.repeats)]
        ready, idle, answered, peak = (statistics.median(f[i] for f in bots) for i in range(4))
        print(f"{'scriabin bot: ready':<26} {ready:>7.2f}s")
        print(
            f"{'scriabin bot: RSS':<26} idle {idle:.0f} MB, after one answer {answered:.0f} MB, "
            f"peak {peak:.0f} MB"
        )


if __name__ == "__main__":
    main()
