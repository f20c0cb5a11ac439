"""``HealthStatus``: the health of a check or of a group of checks, and how bad each is."""

from __future__ import annotations

from enum import Enum

__all__ = ["HealthStatus"]


class HealthStatus(str, Enum):
    """The health of a check or of a group of checks (a ``str`` enum: values equal names)."""

    UP = "UP"
    DEGRADED = "DEGRADED"
    DOWN = "DOWN"
    UNKNOWN = "UNKNOWN"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def worst(cls, *statuses: HealthStatus | str) -> HealthStatus:
        """The worst of ``statuses``: DOWN > DEGRADED > UP.

        UNKNOWN counts only when nothing else is there: ``worst(UP, UNKNOWN)``
        is UP, ``worst(UNKNOWN)`` and ``worst()`` are UNKNOWN. Plain strings
        naming a status are accepted; anything else raises ``ValueError``.
        """
        worst = cls.UNKNOWN
        for status in statuses:
            rank = _RANK[cls(status)]
            if rank > _RANK[worst]:
                worst = cls(status)
        return worst


# How bad each status is, for ``worst``: UNKNOWN is below everything.
_RANK = {
    HealthStatus.UNKNOWN: 0,
    HealthStatus.UP: 1,
    HealthStatus.DEGRADED: 2,
    HealthStatus.DOWN: 3,
}
