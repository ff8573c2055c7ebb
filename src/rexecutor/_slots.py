"""A runner's execution slots, and its claiming ahead.

At most ``limit`` attempts run at once. An executor whose attempts typically take less than
``AHEAD_FOR`` seconds has its next jobs claimed while the current ones run (as many again as
its limit): they wait here for a slot, first claimed first served, so the slots never wait
for a claim's round trip. A job that finds no slot within ``AHEAD_PATIENCE`` seconds goes
back to the queue (the runner releases it), so no job waits long behind a slow attempt.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

AHEAD_FOR = 0.05
AHEAD_PATIENCE = 1.0
#: Weight of the latest attempt in the typical attempt's duration (a moving average).
TYPICAL_WEIGHT = 0.1


class Slots:
    """``limit`` slots, of which ``held()`` are kept by attempts that are over but whose
    threads still run; :meth:`take` waits in line for one, :meth:`give` hands it on."""

    def __init__(self, limit: int, held: Callable[[], int]) -> None:
        self.limit = limit
        self.taken = 0
        self._held = held
        self._line: deque[asyncio.Future[bool]] = deque()
        self._closed = False
        #: How long attempts typically take, in seconds (None: none ended yet).
        self.typical: float | None = None

    def ahead(self, most: int) -> int:
        """How many jobs to claim beyond the limit (at most ``most``): as many again as the
        limit while attempts are short, else none."""
        if self.typical is None or self.typical >= AHEAD_FOR:
            return 0
        return min(self.limit, most)

    def waited_too_long(self) -> None:
        """A job found no slot within the patience: attempts are not short now, so claim no
        more ahead until they are again."""
        self.typical = max(self.typical or 0.0, AHEAD_PATIENCE)

    @property
    def waiting(self) -> int:
        """Jobs waiting for a slot."""
        return sum(1 for turn in self._line if not turn.done())

    def _free(self) -> bool:
        return self.taken + self._held() < self.limit

    async def take(self) -> bool:
        """Take a slot, waiting in line at most ``AHEAD_PATIENCE`` seconds; False when none
        came in time or the slots were closed (the caller hands its job back)."""
        if self._closed:
            return False
        if not self._line and self._free():
            self.taken += 1
            return True
        turn: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._line.append(turn)
        try:
            return await asyncio.wait_for(asyncio.shield(turn), AHEAD_PATIENCE)
        except TimeoutError:
            if turn.done() and turn.result():
                return True  # admitted as the patience ran out
            turn.cancel()
            return False
        except asyncio.CancelledError:
            if turn.done() and turn.result():
                self.give()  # admitted just as the waiter was stopped: pass the slot on
            turn.cancel()
            raise

    def give(self, took: float | None = None) -> None:
        """Give a taken slot back (its attempt is over, after ``took`` seconds) and admit
        whoever waits next."""
        self.taken -= 1
        if took is not None:
            typical = self.typical
            self.typical = took if typical is None else typical + TYPICAL_WEIGHT * (took - typical)
        self.admit()

    def admit(self) -> None:
        """Admit waiters while slots are free (after a give, a raised limit, a thread's end)."""
        while self._line and self._free():
            turn = self._line.popleft()
            if not turn.done():
                self.taken += 1
                turn.set_result(True)

    def close(self) -> None:
        """Refuse every waiter and every later :meth:`take` (the runner stops)."""
        self._closed = True
        while self._line:
            turn = self._line.popleft()
            if not turn.done():
                turn.set_result(False)
