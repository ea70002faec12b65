"""Actions: the asynchronous events behind droplet, volume and reserved-IP changes.

An action starts `in-progress` and moves to `completed` (or `errored`) when its
modelled duration has passed on the virtual clock (action.yml status enum; pydo's
integration helper `wait_for_action` polls until the status leaves in-progress).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from fakes.clock import VirtualClock, iso
from fakes.digitalocean.catalog import region_dict


@dataclass
class Action:
    id: int
    type: str
    resource_type: str
    resource_id: int | None
    region_slug: str | None
    started_at: float
    status: str = "in-progress"
    completed_at: float | None = None
    # Which droplet the action keeps busy ("Droplet already has a pending event").
    busy_droplet_id: int | None = None
    _on_done: Callable[[], None] | None = field(default=None, repr=False)
    _on_error: Callable[[], None] | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "status": self.status,
            "type": self.type,
            "started_at": iso(self.started_at),
            "completed_at": iso(self.completed_at) if self.completed_at else None,
            "resource_id": self.resource_id,
            "resource_type": self.resource_type,
            "region": region_dict(self.region_slug) if self.region_slug else None,
            "region_slug": self.region_slug,
        }


class ActionLog:
    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self._ids = itertools.count(1_900_000_001)
        self.actions: dict[int, Action] = {}
        # droplet id -> its in-progress actions that keep it busy: `locked` on every
        # droplet of a listing page must not cost a walk over every action.
        self._busy: dict[int, set[int]] = {}
        # Admin fault: the next action of these types ends errored.
        self._errored_next: dict[str, int] = {}

    def start(
        self,
        action_type: str,
        *,
        resource_type: str,
        resource_id: int | None,
        region_slug: str | None,
        duration: float,
        on_done: Callable[[], None] | None = None,
        on_error: Callable[[], None] | None = None,
        busy_droplet_id: int | None = None,
    ) -> Action:
        action = Action(
            id=next(self._ids),
            type=action_type,
            resource_type=resource_type,
            resource_id=resource_id,
            region_slug=region_slug,
            started_at=self.clock.now(),
            busy_droplet_id=busy_droplet_id,
            _on_done=on_done,
            _on_error=on_error,
        )
        self.actions[action.id] = action
        if busy_droplet_id is not None:
            self._busy.setdefault(busy_droplet_id, set()).add(action.id)
        errored = self._take_errored(action_type)
        self.clock.call_later(duration, lambda: self._finish(action, errored))
        return action

    def record_completed(self, action_type: str, *, resource_type: str,
                         resource_id: int | None, region_slug: str | None) -> Action:
        """An action that is already over when the API answers (e.g. rename)."""
        action = self.start(action_type, resource_type=resource_type, resource_id=resource_id,
                            region_slug=region_slug, duration=0)
        self.clock.run_due()
        return action

    def fail_next(self, action_type: str, count: int = 1) -> None:
        self._errored_next[action_type] = self._errored_next.get(action_type, 0) + count

    def _take_errored(self, action_type: str) -> bool:
        remaining = self._errored_next.get(action_type, 0)
        if remaining:
            self._errored_next[action_type] = remaining - 1
            return True
        return False

    def _settled(self, action: Action) -> None:
        busy = self._busy.get(action.busy_droplet_id)
        if busy is not None:
            busy.discard(action.id)
            if not busy:
                del self._busy[action.busy_droplet_id]

    def _finish(self, action: Action, errored: bool) -> None:
        if action.status != "in-progress":
            return
        self._settled(action)
        action.completed_at = self.clock.now()
        if errored:
            action.status = "errored"
            if action._on_error:
                action._on_error()
        else:
            action.status = "completed"
            if action._on_done:
                action._on_done()

    def abort_for_droplet(self, droplet_id: int) -> None:
        """The droplet went away: whatever it was doing errors now."""
        for action_id in sorted(self._busy.get(droplet_id, ())):
            action = self.actions[action_id]
            if action.status == "in-progress":
                self._settled(action)
                action.status = "errored"
                action.completed_at = self.clock.now()
                if action._on_error:
                    action._on_error()

    def droplet_busy(self, droplet_id: int) -> bool:
        return bool(self._busy.get(droplet_id))

    def newest_first(self) -> list[Action]:
        return list(reversed(self.actions.values()))  # ids grow with insertion

    def get(self, action_id: int) -> Action | None:
        return self.actions.get(action_id)

    def for_resource(self, resource_type: str, resource_id: int | str) -> list[Action]:
        return [
            a for a in self.actions.values()
            if a.resource_type == resource_type and a.resource_id == resource_id
        ]
