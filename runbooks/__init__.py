"""Runbooks shipped with the control plane as package data (Markdown), and later the policy
files that point at them. `read(name)` returns one; `names()` lists them."""

from __future__ import annotations

from importlib.resources import files


def names() -> list[str]:
    return sorted(
        p.name.removesuffix(".md") for p in files(__name__).iterdir() if p.name.endswith(".md")
    )


def read(name: str) -> str:
    if name not in names():
        raise KeyError(f"no runbook named {name!r}; known: {', '.join(names())}")
    return files(__name__).joinpath(f"{name}.md").read_text(encoding="utf-8")
