"""How every command's --help reads, set once for the whole app (main.py calls `apply`).

Docstrings are wrapped at the source's line length, and Rich keeps those line breaks after the
first paragraph, so sentences would break mid-line: each paragraph is joined into one line here and
Rich wraps it to the terminal. An indented block (an example's command lines) keeps its breaks.
Typer also shows a value placeholder (`<bool>`) after flags, which take no value: it is hidden.
"""

from __future__ import annotations

import inspect
from typing import Any

import typer


def reflow(doc: str | None) -> str:
    """The docstring with each paragraph on one line; indented blocks stay as written."""
    paragraphs = inspect.cleandoc(doc or "").split("\n\n")
    return "\n\n".join(_reflow_paragraph(paragraph) for paragraph in paragraphs)


def _reflow_paragraph(paragraph: str) -> str:
    lines = paragraph.splitlines()
    if any(line[:1].isspace() for line in lines[1:]):
        return paragraph
    return " ".join(line.strip() for line in lines)


def apply(app: typer.Typer) -> None:
    """Reflow the help of every command of the app and of its sub-apps; hide flags' placeholders."""
    for info in app.registered_commands:
        if info.help is None and info.callback is not None:
            info.help = reflow(info.callback.__doc__)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            apply(group.typer_instance)
    _hide_flag_placeholders()


def _hide_flag_placeholders() -> None:
    """Typer's help shows an option's value type (`<bool>`) in a column; a flag takes no value."""
    from typer import core

    option = getattr(core, "TyperOption", None)
    shown = getattr(option, "display_type_rich", None)
    if shown is None or getattr(shown, "hides_flags", False):
        return  # another Typer version (nothing to hide there), or done already

    def display_type_rich(self: Any, ctx: Any) -> str | None:
        return None if getattr(self, "is_flag", False) else shown(self, ctx)

    display_type_rich.hides_flags = True  # type: ignore[attr-defined]
    option.display_type_rich = display_type_rich  # type: ignore[union-attr]
