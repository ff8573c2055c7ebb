"""A runner's execution slots: at most ``limit`` attempts run at once; jobs claimed beyond
them (see ``JobRunner``'s claiming ahead) wait their turn, first claimed first served."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable


class Slots:
    """``limit`` slots, of which ``held()`` are kept by attempts that are over but whose
    threads still run; :meth:`take` waits in line for one, :meth:`give` hands it on."""

    def __init__(self, limit: int, held: Callable[[], int]) -> None:
        self.limit = limit
        self.taken = 0
        self._held = held
        self._line: deque[asyncio.Future[bool]] = deque()
        self._closed = False

    @property
    def waiting(self) -> int:
        """Jobs waiting for a slot."""
        return sum(1 for turn in self._line if not turn.done())

    def _free(self) -> bool:
        return self.taken + self._held() < self.limit

    async def take(self, patience: float) -> bool:
        """Take a slot, waiting in line at most ``patience`` seconds; False when none came
        in time or the slots were closed (the caller hands its job back)."""
        if self._closed:
            return False
        if not self._line and self._free():
            self.taken += 1
            return True
        turn: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._line.append(turn)
        try:
            return await asyncio.wait_for(asyncio.shield(turn), patience)
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

    def give(self) -> None:
        """Give a taken slot back (its attempt is over) and admit whoever waits next."""
        self.taken -= 1
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
