"""The `scriabin` command: classify, bot, train, evaluate, models."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import sys
import tempfile
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

from classifier.errors import ScriabinError
from config import PROJECT_ROOT, Settings, load_settings

from .logs import configure_logging

if TYPE_CHECKING:
    from classifier.shared import SharedState

log = logging.getLogger("scriabin")

# Thread counts of the numeric libraries (BLAS, OpenMP, TensorFlow), read at their import.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)
DEFAULT_SPLITS_DIR = PROJECT_ROOT.parent / "shared" / "data" / "gtzan-splits"
# What `scriabin train` makes unless told otherwise: the kind of the default model.
DEFAULT_KIND = "fusion-head"


def package_version() -> str:
    try:
        return version("scriabin")
    except PackageNotFoundError:
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scriabin", description="Tells the music genre of a song from a link or a file."
    )
    parser.add_argument("--version", action="version", version=f"scriabin {package_version()}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="show the log on stderr (-vv: with debugging detail)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    classify = commands.add_parser("classify", help="classify links or audio files")
    classify.add_argument("sources", nargs="+", metavar="SOURCE", help="a URL or a file path")
    classify.add_argument("--json", action="store_true", help="print JSON Lines")
    classify.add_argument("--model", help="model name (default: the best measured one)")
    classify.add_argument(
        "--chart",
        type=Path,
        metavar="FILE.png",
        help="also draw each answer as a PNG chart (several sources: FILE-1.png, FILE-2.png...)",
    )

    bot = commands.add_parser("bot", help="run the chat bot (console when no token is set)")
    bot.add_argument("--model", help="model name (default: the best measured one)")

    train = commands.add_parser("train", help="train a model on GTZAN-layout folders")
    train.add_argument("data_dirs", type=Path, nargs="+", metavar="DATA_DIR")
    train.add_argument("--kind", default=DEFAULT_KIND, help=f"model kind (default: {DEFAULT_KIND})")
    train.add_argument("--name", help="model name (default: the kind)")
    train.add_argument("--model-version", default="1.0.0", help="version written in the card")
    train.add_argument("--out", type=Path, help="output folder (default: the models folder)")
    _add_measure_options(train)
    train.add_argument("--no-eval", action="store_true", help="skip the held-out measurement")
    train.add_argument(
        "--feedback",
        type=Path,
        metavar="FILE.csv",
        help="also train on the songs of a `scriabin feedback export` (downloaded safely)",
    )

    evaluate = commands.add_parser(
        "evaluate", help="measure a model's recipe with whole artists held out from training"
    )
    evaluate.add_argument("data_dirs", type=Path, nargs="+", metavar="DATA_DIR")
    evaluate.add_argument("--model", help="model name (default: the best measured one)")
    _add_measure_options(evaluate)
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    evaluate.add_argument(
        "--write-card", action="store_true", help="store the metrics in the model's card"
    )

    commands.add_parser("models", help="list the available models and their accuracy")

    worker = commands.add_parser(
        "worker", help="run a classifier worker for SCRIABIN_BROKER_URL (Celery on Redis)"
    )
    worker.add_argument("--model", help="model name (default: the best measured one)")
    status = commands.add_parser("status", help="queue, workers and cache of the scaled-out bot")
    status.add_argument(
        "--worker-here",
        action="store_true",
        help="print nothing; exit 0 if a worker on this host is alive, else 1 (health checks)",
    )

    feedback = commands.add_parser("feedback", help="what chat users said about the answers")
    what = feedback.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = what.add_parser("export", help="write link,genre,votes CSV of the corrections")
    export.add_argument("file", type=Path, nargs="?", help="output file (default: stdout)")
    what.add_parser("stats", help="how often people agreed, per predicted genre")
    import_ = what.add_parser(
        "import",
        help="download the songs of an export into a folder that `train` and `evaluate` read",
    )
    import_.add_argument("file", type=Path, help="a `scriabin feedback export` CSV")
    import_.add_argument("folder", type=Path, help="the folder to create or add to")
    return parser


def _add_measure_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--artists",
        type=Path,
        help=(
            "artist index (GTZANindex.txt lines `genre.000NN.wav ::: Artist ::: Title`); "
            "default: one beside the data, else ../shared's"
        ),
    )
    parser.add_argument(
        "--folds", type=int, default=5, help="clip folds (when no artist index is found)"
    )
    parser.add_argument(
        "--splits",
        type=Path,
        default=DEFAULT_SPLITS_DIR,
        help="folder with the artist-filtered split lists (used on the full GTZAN)",
    )
    parser.add_argument("--epochs", type=int, help="override the recipe's training epochs")
    parser.add_argument(
        "--limit-per-genre", type=int, help="use only the first N clips of each genre"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except Exception as error:  # a bad setting is the operator's to fix: say which, plainly
        print(f"scriabin: invalid settings: {error}", file=sys.stderr)
        return 2
    configure_logging(settings, args.verbose, service=runs_as_service(args, settings))
    handlers = {
        "classify": classify_command,
        "bot": bot_command,
        "train": train_command,
        "evaluate": evaluate_command,
        "models": models_command,
        "feedback": feedback_command,
        "worker": worker_command,
        "status": status_command,
    }
    try:
        code = handlers[args.command](args, settings)
        sys.stdout.flush()  # here, where a reader that has left is caught below
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Whoever read our output has stopped (`scriabin models | head -1`): nothing to add.
        # Later writes, and the flush at exit, go nowhere instead of failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (ValueError, FileNotFoundError, ScriabinError) as error:
        # A wrong folder, kind, model or option: the operator's to fix, said in one line.
        print(f"scriabin: {error}", file=sys.stderr)
        return 2


def runs_as_service(args: argparse.Namespace, settings: Settings) -> bool:
    """Whether the command runs as a service or a long job (a chat bot, a worker, training),
    whose log is its record, rather than at a terminal where someone reads its answers (the
    console chat among them): the default log level of each (bot.logs)."""
    if args.command == "bot":
        from .platforms import wanted_platforms

        return bool(wanted_platforms(settings))
    return args.command in ("worker", "train", "evaluate")


def classify_command(args: argparse.Namespace, settings: Settings) -> int:
    from .classify_cli import classify_sources

    return asyncio.run(
        classify_sources(args.sources, settings, args.model, args.json, chart=args.chart)
    )


def bot_command(args: argparse.Namespace, settings: Settings) -> int:
    from .runner import run_bot

    if args.model:
        settings = settings.model_copy(update={"model": args.model})
    asyncio.run(run_bot(settings))
    return 0


def train_command(args: argparse.Namespace, settings: Settings) -> int:
    from classifier.training.recipes import override_epochs, recipe_class
    from classifier.training.report import format_report
    from classifier.training.train import run_training

    recipe = recipe_class(args.kind)()
    override_epochs(recipe, args.epochs)
    with tempfile.TemporaryDirectory(prefix="scriabin-feedback-") as folder:
        data_dirs = list(args.data_dirs)
        if args.feedback is not None:
            data_dirs.append(feedback_folder(args.feedback, data_dirs, Path(folder), settings))
        card, evaluation = run_training(
            data_dirs,
            recipe,
            name=args.name or args.kind,
            version=args.model_version,
            out_dir=args.out or settings.models_dir,
            artists=args.artists,
            folds=args.folds,
            splits_dir=args.splits,
            evaluate=not args.no_eval,
            limit_per_genre=args.limit_per_genre,
        )
    if evaluation is not None:
        print(format_report(evaluation, f"{card.name} {card.version} on {_folders(args)}"))
    print(f"wrote {card.model_path} and {card.path}")
    return 0


def feedback_folder(
    csv_file: Path, data_dirs: list[Path], folder: Path, settings: Settings
) -> Path:
    """The songs of a feedback export, downloaded into `folder` as one more indexed collection
    (only the genres the other folders have)."""
    from classifier.training.datasets import genres_of, read_gtzan_folders
    from classifier.training.feedback import import_feedback, read_link_labels

    genres = genres_of(read_gtzan_folders(data_dirs))
    added = import_feedback(read_link_labels(csv_file), genres, folder, settings)
    print(f"feedback: {sum(added.values())} song(s) from {csv_file}: {added or 'none usable'}")
    return folder


def evaluate_command(args: argparse.Namespace, settings: Settings) -> int:
    from classifier.model import find_card
    from classifier.training.evaluate import run_evaluation
    from classifier.training.report import format_report

    card = find_card(args.model or settings.model, settings.models_dir)
    evaluation = run_evaluation(
        args.data_dirs,
        card,
        artists=args.artists,
        folds=args.folds,
        splits_dir=args.splits,
        epochs=args.epochs,
        limit_per_genre=args.limit_per_genre,
        write_card=args.write_card,
    )
    if args.json:
        print(json.dumps(evaluation.as_metrics(), indent=2))
    else:
        title = f"{card.name} {card.version} recipe on {_folders(args)}"
        print(format_report(evaluation, title))
    return 0


def _folders(args: argparse.Namespace) -> str:
    return " + ".join(str(folder) for folder in args.data_dirs)


def models_command(args: argparse.Namespace, settings: Settings) -> int:
    from classifier.backbones import DISPLAY_NAMES
    from classifier.model import available_models

    cards = available_models(settings.models_dir)
    if not cards:
        print(f"no models in {settings.models_dir}")
        return 1
    # The one `classify` and the bot use: SCRIABIN_MODEL's, else the best measured.
    chosen = settings.model or cards[0].name
    for card in cards:
        headline = card.metrics.get("headline") or {}
        if card.headline_accuracy is None:
            figure = "not measured"
        else:
            figure = (
                f"accuracy {card.headline_accuracy:.3f} (n={headline.get('n')}, "
                f"{headline.get('protocol', 'held-out clips')})"
            )
        default = "  (default)" if card.name == chosen else ""
        print(f"{card.name} {card.version} [{card.kind}], {len(card.genres)} genres{default}")
        print(f"  {figure}")
        by_source = card.metrics.get("by_source") or {}
        if by_source.get("n"):
            print(
                f"  accuracy {by_source['accuracy']:.3f} (n={by_source['n']}, "
                f"{by_source['protocol']})"
            )
        backbones = card.features.get("backbones") or []
        if backbones:
            names = "; ".join(DISPLAY_NAMES.get(name, name) for name in backbones)
            print(f"  pretrained backbones: {names}")
    if chosen not in {card.name for card in cards}:
        print(
            f"scriabin: SCRIABIN_MODEL names {chosen!r}, which is not among these models",
            file=sys.stderr,
        )
        return 2
    return 0


def worker_command(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.broker_url:
        print("scriabin: set SCRIABIN_BROKER_URL (a Redis URL) to run workers", file=sys.stderr)
        return 2
    if args.model:
        settings = settings.model_copy(update={"model": args.model})
    # Job processes that each used every core would fight over them: the numeric libraries
    # read their thread counts once, at import, so they are set before anything imports them.
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(settings.threads_per_worker)

    from classifier.jobs import run_worker
    from classifier.shared import SharedState

    SharedState(settings.broker_url).ping()
    run_worker(settings)
    return 0


def status_command(args: argparse.Namespace, settings: Settings) -> int:
    from classifier.shared import SharedState

    if args.worker_here:
        return 0 if settings.broker_url and worker_here(SharedState(settings.broker_url)) else 1
    if not settings.broker_url:
        print("in-process classifier (SCRIABIN_BROKER_URL is not set): nothing shared to show")
        return 0
    state = SharedState(settings.broker_url)
    state.ping()
    workers = state.workers()
    mean = state.mean_job_seconds()
    counters = state.counters()
    asked = counters["cache_hits"] + counters["cache_misses"]
    print(f"queue: {state.queue_length()} job(s) waiting")
    print(f"workers alive: {len(workers)} ({', '.join(sorted(workers)) or 'none'})")
    print(f"jobs running: {len(state.jobs_running())}")
    print(f"mean job: {'-' if mean is None else f'{mean:.2f} s'}")
    wait = state.expected_wait_s()
    print(
        f"expected wait for a new job: {'no worker' if wait == float('inf') else f'{wait:.1f} s'}"
    )
    share = f" ({counters['cache_hits'] / asked:.0%})" if asked else ""
    print(f"cache: {counters['cache_hits']} hit(s), {counters['cache_misses']} miss(es){share}")
    print(
        f"jobs: {counters['jobs_started']} started, {counters['jobs_joined']} joined, "
        f"{counters['jobs_done']} done; {counters['busy']} 'busy' answer(s)"
    )
    return 0


def worker_here(state: SharedState) -> bool:
    """Whether a worker process of this host has sent its heartbeat lately (workers are named
    `<host>-<pid>`); a Redis that cannot be reached counts as no."""
    prefix = f"{socket.gethostname()}-"
    try:
        return any(name.startswith(prefix) for name in state.workers())
    except ScriabinError:
        return False


def feedback_command(args: argparse.Namespace, settings: Settings) -> int:
    from .feedback import FeedbackStore

    if args.action == "import":
        from classifier.genres import GENRES
        from classifier.training.feedback import import_feedback, read_link_labels

        added = import_feedback(read_link_labels(args.file), tuple(GENRES), args.folder, settings)
        print(
            f"imported {sum(added.values())} song(s) into {args.folder}: {added or 'none usable'}"
            f"; train on it beside the others: scriabin train ... {args.folder}"
        )
        return 0
    store = FeedbackStore(settings.database_path)
    if args.action == "export":
        if args.file is None:
            rows = store.export(sys.stdout)
        else:
            with args.file.open("w", newline="", encoding="utf-8") as out:
                rows = store.export(out)
            print(f"wrote {rows} song(s) to {args.file}")
        return 0
    agreement = store.agreement()
    if not agreement:
        print("no feedback yet")
        return 0
    print(f"{'predicted':<10} {'answers':>7} {'votes':>6} {'agreed':>6} {'agreement':>9}")
    for row in agreement:
        share = "-" if row.agreement is None else f"{row.agreement:.0%}"
        print(f"{row.genre:<10} {row.answers:>7} {row.votes:>6} {row.agreed:>6} {share:>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
