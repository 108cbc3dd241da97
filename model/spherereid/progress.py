"""Progress bars: tqdm when installed, else a silent stand-in (a bare GPU image has only torch,
torchvision and numpy). Every module takes its bars from here, never from tqdm itself."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

try:
    from tqdm import tqdm
except ImportError:  # a bare GPU image (torch, torchvision, numpy only): run without progress bars

    class tqdm:  # type: ignore[no-redef]  # noqa: N801 - stands in for tqdm.tqdm
        """The parts of tqdm.tqdm the package uses: iterate, or count with update(); as a context manager."""

        def __init__(
            self,
            iterable: Iterable[Any] | None = None,
            *args: object,
            total: int | None = None,
            **kwargs: object,
        ) -> None:
            self.iterable, self.total, self.n = iterable, total, 0

        def __iter__(self) -> Iterator[Any]:
            return iter(self.iterable if self.iterable is not None else ())

        def __len__(self) -> int:
            if self.total is not None:
                return self.total
            return len(self.iterable) if self.iterable is not None else 0  # type: ignore[arg-type]

        def __enter__(self) -> tqdm:
            return self

        def __exit__(self, *exc: object) -> None:
            self.close()

        def update(self, n: int = 1) -> None:
            self.n += n

        def set_postfix(self, **kwargs: object) -> None:
            pass

        def close(self) -> None:
            pass


__all__ = ["tqdm"]
