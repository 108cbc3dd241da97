"""Progress bars: tqdm when installed, else a silent stand-in (a bare GPU image has only torch,
torchvision and numpy)."""

from __future__ import annotations

try:
    from tqdm import tqdm
except ImportError:  # a bare GPU image (torch, torchvision, numpy only): run without progress bars

    class tqdm:  # type: ignore[no-redef]  # noqa: N801 - stands in for tqdm.tqdm
        def __init__(self, iterable, *args: object, total: int | None = None, **kwargs: object):
            self.iterable, self.total = iterable, total

        def __iter__(self):
            return iter(self.iterable)

        def __len__(self) -> int:
            return self.total if self.total is not None else len(self.iterable)

        def set_postfix(self, **kwargs: object) -> None:
            pass


__all__ = ["tqdm"]
