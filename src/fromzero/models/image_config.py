"""Checks every image family's config shares: the input channels and the class count the data fills in."""

from __future__ import annotations

from fromzero.config import require


def require_image_io(in_channels: int, num_classes: int | None = None, min_classes: int = 1,
                     why: str = "") -> None:
    """``in_channels`` positive; ``num_classes`` (when the family has one) at least ``min_classes``; ``why``
    says why that minimum (e.g. " (background + at least one class)")."""
    require(in_channels > 0, "in_channels", f"must be positive, got {in_channels}")
    if num_classes is not None:
        require(num_classes >= min_classes, "num_classes", f"must be at least {min_classes}{why}, got {num_classes}")
