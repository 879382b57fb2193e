"""The README's example jobs, importable by the demo's worker."""

from __future__ import annotations


def say_hello(name: str | None = None) -> str:
    """A job with a single argument and a return value."""
    if name is None:
        name = "Stranger"
    return f"Hi there, {name}!"


def count_words(text: str) -> int:
    """Count the words of a text (the README's count_words_at_url, without the network)."""
    return len(text.split())


class Calculator:
    """Test instance methods."""

    def __init__(self, denominator: float) -> None:
        self.denominator = denominator

    def calculate(self, x: float, y: float) -> float:
        return x * y / self.denominator


def fail(message: str) -> None:
    """A job that raises, to show the failed queue."""
    raise RuntimeError(message)
