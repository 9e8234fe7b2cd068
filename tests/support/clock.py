"""A clock the test moves by hand, for code that takes a `clock` callable."""


class Clock:
    """Returns `now`, which moves only when the test changes it."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
