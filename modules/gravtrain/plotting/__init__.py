"""Figures (matplotlib) returned as objects and never shown; this room imports nothing of gravtrain."""

from gravtrain.plotting.event_display import event_display_figure

__all__ = ["event_display_figure"]
