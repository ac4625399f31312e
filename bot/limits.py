"""Per-user limits shared by every adapter: a cooldown between requests and one job at a time.
In one process they live in memory (UserLimits); across bot processes, in Redis
(SharedUserLimits), behind the same async interface. Button presses have their own pace
(PressLimits)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

from classifier import shared
from classifier.errors import ScriabinError

# A user's "busy" mark in Redis lasts this long unless renewed (every BUSY_RENEW_EVERY_S while
# their song runs): longer than a Redis stall the bot rides out, short enough that a bot that
# died frees its users soon.
BUSY_LEASE_S = 45.0
BUSY_RENEW_EVERY_S = 10.0


class CoolingDown(ScriabinError):
    code = "cooldown"

    def __init__(self, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s
        seconds = max(1, math.ceil(retry_after_s))
        super().__init__(f"Easy there! You can ask again in {seconds} s.")


class AlreadyWorking(ScriabinError):
    code = "one_at_a_time"

    def __init__(self) -> None:
        super().__init__("I'm still working on your previous song. One at a time, please.")


class Limits(Protocol):
    async def refusal(self, user: str) -> ScriabinError | None: ...

    def admit(self, user: str) -> AbstractAsyncContextManager[None]: ...


class UserLimits:
    """Admits a user's request only when their cooldown has passed and no job of theirs runs.

    The cooldown counts from the start of the user's last admitted request, so a slow song
    does not lengthen the wait for the next one.
    """

    def __init__(self, cooldown_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._last_start: dict[str, float] = {}
        self._running: set[str] = set()

    async def refusal(self, user: str) -> ScriabinError | None:
        """Why the user would be refused right now, without taking their slot: lets adapters
        skip downloading an attachment for a request that cannot run."""
        return self._refusal(user)

    def _refusal(self, user: str) -> ScriabinError | None:
        if user in self._running:
            return AlreadyWorking()
        last = self._last_start.get(user)
        if last is not None and self._clock() - last < self.cooldown_s:
            return CoolingDown(self.cooldown_s - (self._clock() - last))
        return None

    @asynccontextmanager
    async def admit(self, user: str) -> AsyncIterator[None]:
        """Hold the user's slot for the duration of the block; raise if they must wait."""
        refusal = self._refusal(user)
        if refusal is not None:
            raise refusal
        now = self._clock()
        self._last_start[user] = now
        self._running.add(user)
        self._forget_expired(now)
        try:
            yield
        finally:
            self._running.discard(user)

    def _forget_expired(self, now: float) -> None:
        # Keeps the table as small as the number of users active within one cooldown.
        if len(self._last_start) > 1024:
            expired = [u for u, t in self._last_start.items() if now - t >= self.cooldown_s]
            for user in expired:
                del self._last_start[user]


class PressLimits:
    """How fast one person may press answer buttons: a burst of `burst` presses, then one every
    `every_s` seconds. Presses beyond it are dropped, so that a flood from one person costs a
    short answer each and nothing else. Kept in memory: each bot process paces the presses it
    receives."""

    def __init__(
        self,
        burst: int = 6,
        every_s: float = 1.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = burst
        self.every_s = every_s
        self._clock = clock
        self._allowance: dict[str, tuple[float, float]] = {}  # user -> (presses left, when)

    def allow(self, user: str) -> bool:
        """Whether `user` may press now (taking one press if so)."""
        now = self._clock()
        left, since = self._allowance.get(user, (float(self.burst), now))
        left = min(float(self.burst), left + (now - since) / self.every_s)
        allowed = left >= 1
        self._allowance[user] = (left - 1 if allowed else left, now)
        if len(self._allowance) > 4096:
            # Whoever has their whole burst back is remembered no longer.
            full = self.burst * self.every_s
            for name, (_, when) in list(self._allowance.items()):
                if now - when >= full:
                    del self._allowance[name]
        return allowed


class SharedUserLimits:
    """Per-user cooldown and one job at a time, held in Redis so that every bot process sees
    them (bot.limits.UserLimits is the one-process version).

    A user's "busy" mark is a lease of BUSY_LEASE_S, renewed while their song runs, made under a
    token of this request: a bot that dies frees its users within the lease, and a release that
    Redis does not take (a stall) is tried again until it does, so nobody stays locked out."""

    def __init__(self, state: shared.SharedState, cooldown_s: float) -> None:
        self.state = state
        self.cooldown_s = cooldown_s

    async def refusal(self, user: str) -> ScriabinError | None:
        busy, wait_ms = await asyncio.to_thread(self.state.user_limits, user)
        if busy:
            return AlreadyWorking()
        if wait_ms > 0:
            return CoolingDown(wait_ms / 1000)
        return None

    @asynccontextmanager
    async def admit(self, user: str) -> AsyncIterator[None]:
        refusal = await self.refusal(user)
        if refusal is not None:
            raise refusal
        token = secrets.token_hex(8)
        try:
            held = await asyncio.to_thread(
                self.state.hold_user, user, token, BUSY_LEASE_S, self.cooldown_s
            )
        except ScriabinError:
            self._release_eventually(user, token)  # the mark may have been made all the same
            raise
        if not held:  # another bot process admitted this user a moment ago
            raise AlreadyWorking()
        renewal = asyncio.create_task(self._renew(user, token))
        try:
            yield
        finally:
            renewal.cancel()
            try:
                await asyncio.to_thread(self.state.release_user, user, token)
            except ScriabinError:
                self._release_eventually(user, token)

    async def _renew(self, user: str, token: str) -> None:
        while True:
            await asyncio.sleep(BUSY_RENEW_EVERY_S)
            with contextlib.suppress(ScriabinError):  # logged; the lease outlasts a stall
                await asyncio.to_thread(self.state.renew_user, user, token, BUSY_LEASE_S)

    def _release_eventually(self, user: str, token: str) -> None:
        self.state.eventually(
            f"the busy mark of {user}", lambda: self.state.release_user(user, token)
        )
