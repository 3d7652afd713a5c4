"""What a head's maps explain: one class's score, or a contrast ``score A - score B`` between two classes.

A contrastive target asks "why class A rather than class B?" (Jacovi, Swayamdipta, Ravfogel, Elazar,
Choi & Goldberg, 2021, "Contrastive Explanations for Model Interpretability", EMNLP): the explained
score is the logit difference ``logit A - logit B`` (the probability difference for a head without
reachable logits). Class A is chosen by ``xai.explained_class`` as usual (predicted, true or a
name); class B by ``xai.contrast_class`` (a class name, or ``{head: name}``). A head that does not
have class B explains class A alone. For gradient methods the contrast's gradient is the difference
of the two classes' gradients, because differentiation is linear.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import ConfigError

__all__ = ["TARGET_KINDS", "TargetSpec"]

TARGET_KINDS = ("class", "contrast")


@dataclass(frozen=True)
class TargetSpec:
    """``kind``: ``class`` (explain class A's score) or ``contrast`` (``score A - score B``);
    ``contrast_class``: class B's name, or ``{head: name}`` (``None`` for ``class``)."""

    kind: str = "class"
    contrast_class: Any = None

    def __post_init__(self) -> None:
        if self.kind not in TARGET_KINDS:
            raise ConfigError(f"xai.target: {self.kind!r} is not one of {', '.join(TARGET_KINDS)}")
        if self.kind == "contrast" and not self.contrast_class:
            raise ConfigError("xai.contrast_class: xai.target=contrast needs the class to contrast with (a class name)")
        if self.kind == "class" and self.contrast_class:
            raise ConfigError(
                f"xai.contrast_class: {self.contrast_class!r} is set but xai.target is 'class'; "
                "use xai.target=contrast to explain against it"
            )
        if isinstance(self.contrast_class, Mapping):
            object.__setattr__(self, "contrast_class", {str(k): str(v) for k, v in self.contrast_class.items()})
        elif self.contrast_class is not None:
            object.__setattr__(self, "contrast_class", str(self.contrast_class))

    @classmethod
    def of(cls, target: Any = None, contrast_class: Any = None) -> TargetSpec:
        """From the config values ``xai.target`` / ``xai.contrast_class`` (``None``: the defaults)."""
        return cls("class" if target is None else str(target), contrast_class)

    def check(self, mappings: Any) -> TargetSpec:
        """Refuse a contrast class that no head has (or that the named head lacks); returns ``self``."""
        if self.kind != "contrast":
            return self
        heads = ("magnitude", "azimuth")
        if isinstance(self.contrast_class, Mapping):
            for head, name in self.contrast_class.items():
                if head not in heads or name not in mappings.classes(head):
                    known = mappings.classes(head) if head in heads else list(heads)
                    raise ConfigError(f"xai.contrast_class.{head}: {name!r} is unknown (known: {', '.join(known)})")
            return self
        if not any(self.contrast_class in mappings.classes(h) for h in heads):
            raise ConfigError(
                f"xai.contrast_class: {self.contrast_class!r} is not a class of either head "
                f"({', '.join(mappings.classes('magnitude'))} / {', '.join(mappings.classes('azimuth'))})"
            )
        return self

    def contrast_name(self, head: str, mappings: Any) -> str | None:
        """Class B of ``head``, or ``None`` when ``head`` explains a single class."""
        if self.kind != "contrast":
            return None
        name = self.contrast_class.get(head) if isinstance(self.contrast_class, Mapping) else self.contrast_class
        return name if name is not None and name in mappings.classes(head) else None

    def contrast_indices(self, head: str, mappings: Any, n: int) -> np.ndarray | None:
        """Class B's index for each of ``n`` samples, or ``None``."""
        name = self.contrast_name(head, mappings)
        return None if name is None else np.full(n, mappings.index(head, name), dtype=np.int32)

    def describe(self, head: str, mappings: Any, explained: str | None = None) -> dict:
        """The JSON record of ``head``'s target: ``{kind, contrast_class, score}``."""
        name = self.contrast_name(head, mappings)
        if name is None:
            return {"kind": "class", "contrast_class": None}
        out = {"kind": "contrast", "contrast_class": name}
        if explained is not None:
            out["score"] = f"score {explained} - score {name}"
            out["same_class"] = explained == name  # the contrast of a class with itself is zero
        return out
