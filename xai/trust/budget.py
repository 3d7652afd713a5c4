"""Sample budgets of the data-set trust checks: ``task.budget`` (quick / standard / thorough) trades
samples for time explicitly by choosing ``faithfulness_samples`` and ``randomisation_samples``; a
count set on its own (e.g. ``task.faithfulness_samples=0``) overrides the budget's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.errors import ConfigError

BUDGET_KEYS = ("faithfulness_samples", "randomisation_samples")

__all__ = ["BUDGET_KEYS", "apply_budget"]


def apply_budget(options: Mapping[str, Any]) -> tuple[dict, dict]:
    """``(options without budget keys, budget description)`` from the task options.

    ``options['budget']`` names an entry of ``options['budgets']`` (``{name: {key: count}}``); every
    key of :data:`BUDGET_KEYS` left ``None`` in ``options`` takes the budget's value. Without a
    budget (``None``) the counts must be given. The description, ``{'name', 'settings', 'set_explicitly'}``,
    goes into the results.
    """
    out = dict(options)
    name = out.pop("budget", None)
    budgets = dict(out.pop("budgets", None) or {})
    explicit = [key for key in BUDGET_KEYS if out.get(key) is not None]
    if name is None:
        missing = [key for key in BUDGET_KEYS if key in out and out[key] is None]
        if missing:
            raise ConfigError(f"task.{missing[0]} is null and task.budget is null: set one of them")
        return out, {"name": None, "settings": {k: out.get(k) for k in BUDGET_KEYS}, "set_explicitly": explicit}
    if str(name) not in budgets:
        choices = ", ".join(budgets) or "none configured"
        raise ConfigError(f"task.budget: {name!r} is not one of the budgets in task.budgets ({choices})")
    chosen = budgets[str(name)] or {}
    unknown = sorted(set(chosen) - set(BUDGET_KEYS))
    if unknown:
        raise ConfigError(f"task.budgets.{name}: unknown key {unknown[0]!r} (known: {', '.join(BUDGET_KEYS)})")
    for key in BUDGET_KEYS:
        if out.get(key) is None:
            value = chosen.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"task.budgets.{name}.{key}: expected a count ≥ 0, got {value!r}")
            out[key] = value
    return out, {"name": str(name), "settings": {k: out[k] for k in BUDGET_KEYS}, "set_explicitly": explicit}
