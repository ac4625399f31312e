"""Errors a user can cause or act on. Their text is written to be shown in a chat reply as is;
anything else that goes wrong is a bug, logged with context and answered with an apology."""

from __future__ import annotations


class ScriabinError(Exception):
    """Base of every error whose message is fit for the user who sent the request."""

    code = "error"


class InvalidSource(ScriabinError):
    """Not a link we accept, or a file that does not exist."""

    code = "invalid_source"


class UnsafeAddress(ScriabinError):
    """The link points into a private network (server-side request forgery guard)."""

    code = "unsafe_address"


class UnsupportedLink(ScriabinError):
    """Nothing playable was found behind the link."""

    code = "unsupported_link"


class PlaylistOnly(ScriabinError):
    code = "playlist"


class LiveStream(ScriabinError):
    code = "live"


class TooLong(ScriabinError):
    code = "too_long"


class TooLarge(ScriabinError):
    code = "too_large"


class MediaUnavailable(ScriabinError):
    """Private, removed, geo-blocked or age-gated media, or a site that wants a human."""

    code = "unavailable"


class DownloadFailed(ScriabinError):
    """The site did not answer as it should (timeouts, HTTP errors)."""

    code = "download_failed"


class NotAudio(ScriabinError):
    """The data cannot be decoded as audio (corrupt, empty or not a media file)."""

    code = "not_audio"


class AudioTooShort(ScriabinError):
    code = "too_short"


class Busy(ScriabinError):
    """Every worker is busy and the queue is full: the caller should retry later."""

    code = "busy"


class UnknownModel(ScriabinError):
    code = "unknown_model"


class MissingExtra(ScriabinError):
    """This installation lacks an install extra the command needs (see classifier.extras)."""

    code = "missing_extra"


class TooSlow(ScriabinError):
    """The request ran past its overall deadline (a slow site, or too much to decode)."""

    code = "too_slow"


class ShuttingDown(ScriabinError):
    """The bot is restarting: requests in flight are given up and their files removed."""

    code = "restarting"
