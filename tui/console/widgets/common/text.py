"""Update text widgets only when their text changes: nothing redraws when nothing changed."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static


def set_text(widget: Static, content: Content | str, *, layout: bool = True) -> None:
    """``widget.update(content)`` unless it already shows exactly that.

    A layout pass reflows the whole screen. The dashboard's lines change every second or so
    (earnings, rates, readings) but rarely change how many lines they wrap to, so a widget
    already laid out at a fixed width is only repainted when its new text wraps to the
    height it has; it is laid out again when that height changes. ``layout=False``: the
    caller knows the height cannot change.
    """
    if isinstance(content, str):
        content = Content(content)
    if widget.content == content:
        return
    size = widget.size
    width, height = widget.styles.width, widget.styles.height
    if not layout or not widget.is_mounted or not size or (width is not None and width.is_auto):
        # Not laid out yet, or its width follows its text: Textual's own update.
        widget.update(content, layout=layout)
        return
    widget.update(content, layout=False)
    if height is not None and not height.is_auto:
        return  # a fixed (or fractional) height does not follow the text
    # Container and viewport sizes matter only to containers: a Static's height is its text's.
    if widget.get_content_height(size, size, size.width) != size.height:
        widget.refresh(layout=True)
