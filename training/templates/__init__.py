"""Jinja templates of the model and dataset cards, and the one function that renders them.

The cards are rendered as huggingface_hub renders cards (`ModelCard.from_template` / `DatasetCard.from_template`:
the YAML header comes from `ModelCardData` / `DatasetCardData`). The Hub renders with jinja2's lenient `Undefined`,
which would print a misspelt or missing name as nothing, so every render is first checked here with `StrictUndefined`.
"""

from __future__ import annotations

from pathlib import Path

import jinja2

TEMPLATES = Path(__file__).resolve().parent


def _fmt(value, digits: int = 3) -> str:
    """A number as the cards print it: `digits` decimals for a float, "n/a" for a missing or NaN one."""
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


HELPERS = {"fmt": _fmt}
ENVIRONMENT = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
ENVIRONMENT.globals.update(HELPERS)


class TemplateVariableError(ValueError):
    """A card template used a name (or a key of one) that the feeder did not give."""


def render(template: str, /, **context) -> str:
    """A template of this folder rendered strictly: a name the context lacks raises TemplateVariableError."""
    try:
        return ENVIRONMENT.get_template(template).render(**context)
    except jinja2.UndefinedError as error:
        raise TemplateVariableError(f"training/templates/{template}: {error} (the feeder must pass it, even as None)") from error


def render_card(card_class, card_data, template: str, /, **context):
    """`card_class.from_template(card_data, template_path=...)` after a strict render of the same template with the
    same variables (the card data's fields, then `context`, and `card_data` as YAML, as the Hub passes them)."""
    render(template, **{**card_data.to_dict(), **HELPERS, **context, "card_data": card_data.to_yaml()})
    card = card_class.from_template(card_data, template_path=str(TEMPLATES / template), **HELPERS, **context)
    return card.content if card.content.endswith("\n") else card.content + "\n"
