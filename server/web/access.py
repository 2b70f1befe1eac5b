"""Who may see and change which desk: the one rule of roles and office privacy mode
(docs/privacy.md), as a value the views ask. ``context.viewer()`` builds it for the
logged-in user; the views take their scopes from it and ``params`` answers 403 or 404 by
``Viewer.access``.

- A member sees and changes only the desks linked to them.
- Everyone's personal page (/my-day, /my-week) shows only their own desks, combined.
- An admin sees and changes every desk.
- In office privacy mode an admin still manages every desk (names, online, settings,
  pauses) but sees a desk's own figures only if it is theirs or its member shares it, and
  otherwise the fleet only as totals over at least ``min_group`` desks.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from sitwatch.server.queries.scope import ALL_DESKS, Scope


class DeskAccess(Enum):
    NONE = "none"  # the desk is not there for this viewer (404)
    MANAGE = "manage"  # listed, renamed, configured, paused; its figures are not shown (403)
    FULL = "full"  # its figures, timeline and exports too


@dataclass(frozen=True)
class Viewer:
    """A logged-in user as the rule sees them."""

    is_admin: bool
    own_desks: frozenset[str] = frozenset()
    shared_desks: frozenset[str] = frozenset()  # desks whose member shares with admins
    office_mode: bool = False
    min_group: int = 5

    def access(self, device_id: str) -> DeskAccess:
        """The rule, for one desk."""
        if device_id in self.own_desks or (self.is_admin and not self.office_mode):
            return DeskAccess.FULL
        if not self.is_admin:
            return DeskAccess.NONE
        return DeskAccess.FULL if device_id in self.shared_desks else DeskAccess.MANAGE

    @property
    def scope(self) -> Scope:
        """The desks whose own figures this viewer sees (``access`` FULL)."""
        if self.is_admin and not self.office_mode:
            return ALL_DESKS
        if self.is_admin:
            return Scope.of(self.own_desks | self.shared_desks)
        return Scope.of(self.own_desks)

    @property
    def own_scope(self) -> Scope:
        """The viewer's own desks: what their personal page combines (one person's figures,
        in every role and mode: a desk of one's own is always ``access`` FULL)."""
        return Scope.of(self.own_desks)

    @property
    def manage_scope(self) -> Scope:
        """The desks this viewer lists and may change (``access`` MANAGE or FULL)."""
        return ALL_DESKS if self.is_admin else Scope.of(self.own_desks)

    @property
    def sees_fleet_totals_only(self) -> bool:
        """An admin in office mode: the fleet's figures only as totals over min_group desks."""
        return self.is_admin and self.office_mode

    def may_see_total_of(self, desks: int) -> bool:
        """Whether a fleet total over ``desks`` desks may be shown to this viewer."""
        return not self.sees_fleet_totals_only or desks >= self.min_group
