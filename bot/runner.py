"""`scriabin bot`: one process, one classifier service, every chat adapter whose token is
set (Discord, Telegram), or the console adapter when none is. SIGTERM or SIGINT stop it within
seconds: intake stops, people with a song in flight are told the bot is restarting, every
temporary file is removed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from classifier.service import Classifier, classifier_service
from config import Settings

from .core import GenreBot
from .feedback import FeedbackStore
from .platforms import ChatAdapter, chat_adapters
from .signals import on_stop_signals

log = logging.getLogger(__name__)

# How long stopped requests get to end (they are told at once), then how long adapters get to
# deliver those last answers, and each to disconnect: well inside a host's 10-s grace period.
DRAIN_S = 2.0
DELIVER_S = 0.5
ADAPTER_STOP_S = 3.0


def chat_bot(service: Classifier, settings: Settings) -> GenreBot:
    """The GenreBot every chat adapter shares; with workers, its per-user limits are shared by
    every bot process too (in Redis)."""
    limits = None
    if settings.broker_url:
        from classifier.remote import RemoteClassifierService

        from .limits import SharedUserLimits

        assert isinstance(service, RemoteClassifierService)
        limits = SharedUserLimits(service.state, settings.cooldown_s)
    return GenreBot(service, feedback=FeedbackStore(settings.database_path), limits=limits)


async def run_bot(settings: Settings, adapters: list[ChatAdapter] | None = None) -> None:
    """Start the service, then every adapter; when one stops for good, stop the others."""
    async with classifier_service(settings) as service:
        bot = chat_bot(service, settings)
        if adapters is None:
            adapters = chat_adapters(bot, settings)
        if not adapters:
            from .console import ConsoleAdapter

            # One person at their own terminal: the chat cooldown would only get in the way.
            adapters = [ConsoleAdapter(GenreBot(service, cooldown_s=0, local_files=True))]
        log.info("starting: %s", ", ".join(adapter.name for adapter in adapters))
        stop = asyncio.Event()

        def stop_on(number: signal.Signals) -> None:
            log.info("%s: stopping", number.name)
            # Songs in flight end now, each answered "restarting" by its adapter.
            service.stop_requests()
            stop.set()

        tasks = [asyncio.create_task(adapter.run(), name=adapter.name) for adapter in adapters]
        stopper = asyncio.create_task(stop.wait(), name="signals")
        try:
            with on_stop_signals(stop_on):
                done, _pending = await asyncio.wait(
                    [*tasks, stopper], return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    if task is not stopper and task.exception() is not None:
                        log.error("%s stopped", task.get_name(), exc_info=task.exception())
                service.stop_requests()
                await _drain(service)
                for adapter in adapters:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(adapter.stop(), ADAPTER_STOP_S)
        finally:
            for task in [*tasks, stopper]:
                task.cancel()
            await asyncio.gather(*tasks, stopper, return_exceptions=True)


async def _drain(service: Classifier) -> None:
    """Wait (briefly) for stopped requests to end, then let adapters send their answers."""
    waited = 0.0
    while service.in_flight and waited < DRAIN_S:
        await asyncio.sleep(0.05)
        waited += 0.05
    await asyncio.sleep(DELIVER_S)
