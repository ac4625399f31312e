"""`scriabin classify SOURCE...`: the terminal front end of the classifier service.

Sources run concurrently up to the worker count and are printed in input order, as readable
text or as JSON Lines. One bad source never stops the others; the exit code says if any failed.
SIGINT or SIGTERM stop every source at once and remove their downloads (exit 130 or 143).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from classifier.errors import ScriabinError
from classifier.results import Classification
from classifier.service import ClassifierService
from config import Settings

from .replies import build_reply, error_text, render_text
from .signals import exit_status, on_stop_signals

log = logging.getLogger(__name__)


async def classify_sources(
    sources: Sequence[str],
    settings: Settings,
    model: str | None = None,
    as_json: bool = False,
    out: TextIO | None = None,
    chart: Path | None = None,
) -> int:
    """Classify every source, print each answer in input order; 0 when all succeeded. With
    `chart`, each answer is also drawn there (several sources: numbered files)."""
    out = out or sys.stdout
    try:
        # No warm-up: it would classify a song of noise first; the first source does its work.
        service = ClassifierService(settings, model, warm_up=False)
        await service.start()
    except ScriabinError as error:  # a setup problem (an unknown model, a missing extra)
        if as_json:  # every source still gets its line, with the error and its code
            for source in sources:
                out.write(json.dumps({"source": source, "error": str(error), "code": error.code}))
                out.write("\n")
        else:
            print(f"scriabin: {error}", file=sys.stderr)
        return 2
    # Never more in flight than workers, so a long list waits its turn instead of being "busy".
    gate = asyncio.Semaphore(settings.workers)

    async def one(source: str) -> Classification | BaseException:
        async with gate:
            try:
                return await service.classify(source)
            except Exception as error:
                return error

    stopped_by: list[signal.Signals] = []

    def stop(number: signal.Signals) -> None:
        stopped_by.append(number)
        service.stop_requests()

    failed = 0
    tasks = [asyncio.create_task(one(source)) for source in sources]
    try:
        with on_stop_signals(stop):
            for index, (source, task) in enumerate(zip(sources, tasks, strict=True), start=1):
                outcome = await task
                if stopped_by:
                    break
                failed += isinstance(outcome, BaseException)
                out.write(render(source, outcome, as_json, settings) + "\n")
                out.flush()
                if chart is not None and isinstance(outcome, Classification):
                    number = None if len(sources) == 1 else index
                    await draw(outcome, chart_path(chart, number))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await service.close()
    if stopped_by:
        print(f"scriabin: stopped by {stopped_by[0].name}", file=sys.stderr)
        return exit_status(stopped_by[0])
    return 1 if failed else 0


def chart_path(chart: Path, number: int | None) -> Path:
    """FILE.png for one source; FILE-1.png, FILE-2.png... for several."""
    return chart if number is None else chart.with_name(f"{chart.stem}-{number}{chart.suffix}")


async def draw(result: Classification, path: Path) -> None:
    """Write the answer's chart; a failure is reported, never fatal to the answer."""
    from .chart import chart_of

    chart = await chart_of(result)
    try:
        if chart is None:
            raise RuntimeError("it could not be drawn")
        path.write_bytes(chart)
    except (OSError, RuntimeError) as error:  # the text answer stands without its picture
        print(f"scriabin: could not write the chart {path}: {error}", file=sys.stderr)


def render(
    source: str, outcome: Classification | BaseException, as_json: bool, settings: Settings
) -> str:
    if isinstance(outcome, BaseException):
        message = error_text(outcome)
        if as_json:
            code = outcome.code if isinstance(outcome, ScriabinError) else "internal"
            return json.dumps({"source": source, "error": message, "code": code})
        return f"✗ {source}\n{message}\n"
    if as_json:
        return json.dumps(outcome.as_json(), ensure_ascii=False)
    return render_text(build_reply(outcome)) + "\n"
