"""The blocking pipeline one worker runs per request: fetch -> decode -> features -> model ->
aggregate. Each stage lives in its own module; this one only strings them together."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from config import Settings

from .aggregate import clear_styles, ranked_genres, song_probabilities, strongest_tags, timeline
from .audio import Bounds, Hearing, decode_audio
from .budget import RequestBudget
from .errors import AudioTooShort, NotAudio, ScriabinError
from .fetch import download_budget, stream_audio
from .model import GenreModel, ModelSession
from .results import Classification, ModelRef, Timings
from .sources import Source, SourceInput, own_answer, parse_source


def classify_source(
    source: Source | SourceInput,
    model: GenreModel,
    settings: Settings,
    budget: RequestBudget | None = None,
) -> Classification:
    """Classify a link, a local file or uploaded bytes. Raises ScriabinError subclasses.

    `budget` bounds what the request may read and how long it may take (by default the
    settings' download limit and request timeout); another thread may call it off.
    """
    started = time.perf_counter()
    budget = budget or download_budget(settings)
    card = model.card
    bounds = Bounds(settings.max_duration_s, card.segment_s, budget.check)
    source = parse_source(source)
    listening = _Listening(model, settings.max_segments)
    if source.kind != "link":
        # Models that say which stretches they read let long files be decoded only there.
        media = source.data if source.kind == "upload" else source.path
        assert media is not None
        audio = decode_audio(media, card.sample_rate, bounds, listening.hearing())
        fetched_s, title = 0.0, source.name
    else:
        assert source.url is not None
        with stream_audio(source.url, settings, budget) as download:
            # Decoded while it downloads, and analysed segment by segment as they come in.
            reader = download.reader()
            try:
                audio = decode_audio(
                    reader, card.sample_rate, bounds, listening.hearing(lambda: reader.waits)
                )
            except ScriabinError as error:
                failure = download.failure()
                if failure is not None:
                    raise failure from None  # a broken download explains the rest
                if not isinstance(error, NotAudio):
                    raise
                # Some containers can only be read whole (an MP4 whose index comes last, a
                # stream that is shorter than it says): wait for all of it.
                listening.session = None
                audio = decode_audio(
                    download.result().path, card.sample_rate, bounds, listening.hearing()
                )
            title = download.result().title
            fetched_s = download.elapsed_s
    decoded = time.perf_counter()
    budget.check()
    result = classify_audio(
        audio,
        model,
        settings.max_segments,
        session=listening.session,
        uncertain_below=settings.uncertain_below,
        source=str(source),
        title=title,
        fetch_s=fetched_s,
        decode_s=max(0.0, decoded - started - fetched_s),
        started=started,
    )
    return own_answer(result, source)


class _Listening:
    """What the model hears of one song while it is decoded: the stretches it reads, and, for a
    link decoded as it downloads, its session (begun once the song's length is known) fed the
    segments that are in whenever the decoder has caught up with the download (`waits()` has
    grown: its reads had to wait). While the bytes come faster than they are decoded, segments
    wait for one batch: the model runs a batch far faster than the same segments one by one."""

    def __init__(self, model: GenreModel, max_segments: int) -> None:
        self._model = model
        self._max_segments = max_segments
        self.session: ModelSession | None = None

    def hearing(self, waits: Callable[[], int] | None = None) -> Hearing:
        """What the decoder is told; with `waits` (a download being read), its progress too."""
        seen = 0

        def progress(samples: np.ndarray, ready: int) -> None:
            nonlocal seen
            assert waits is not None
            if self.session is None:
                self.session = self._model.session(len(samples), self._max_segments)
            if waits() > seen:
                seen = waits()
                self.session.feed(samples, ready)

        return Hearing(
            lambda n: self._model.heard(n, self._max_segments),
            None if waits is None else progress,
        )


def classify_audio(
    audio: np.ndarray,
    model: GenreModel,
    max_segments: int,
    *,
    uncertain_below: float | None = None,
    source: str = "audio",
    title: str | None = None,
    url: str | None = None,
    fetch_s: float = 0.0,
    decode_s: float = 0.0,
    started: float | None = None,
    session: ModelSession | None = None,
) -> Classification:
    """Classify decoded mono samples at the model's sample rate. The answer is marked uncertain
    under `uncertain_below`, by default the model's own calibrated threshold, and unfamiliar
    (fits none of the genres well) under the card's own floor for that. `session`: the
    model's prediction begun while the song was decoded (see FusionSession), to finish."""
    started = time.perf_counter() if started is None else started
    card = model.card
    if session is not None:
        predictions = session.finish(audio)
    else:
        predictions = model.predict(audio, max_segments)
    if len(predictions.probabilities) == 0:
        raise AudioTooShort(f"That's too short: send at least {card.segment_s:.0f} s of audio.")
    probabilities = song_probabilities(predictions.probabilities)
    threshold = card.uncertain_below if uncertain_below is None else uncertain_below
    top = float(probabilities.max())
    return Classification(
        source=source,
        title=title,
        duration_s=round(len(audio) / card.sample_rate, 2),
        analysed_s=round(len(predictions.starts_s) * predictions.segment_s, 2),
        genres=ranked_genres(probabilities, card.genres),
        segments=timeline(predictions, card.genres),
        model=ModelRef(card.name, card.version),
        tags=strongest_tags(predictions),
        url=url,
        uncertain=top < threshold,
        unfamiliar=top < card.unfamiliar_below,
        styles=clear_styles(
            predictions, card.genres, int(probabilities.argmax()), sure=top >= threshold
        ),
        timings=Timings(
            fetch_s=round(fetch_s, 4),
            decode_s=round(decode_s, 4),
            features_s=round(predictions.features_s, 4),
            inference_s=round(predictions.inference_s, 4),
            total_s=round(time.perf_counter() - started, 4),
        ),
    )
