"""Old home of the served pyfunc, kept so that model versions logged before it moved to
deploy/pyfunc_flavor.py still load: their entry script runs `from spherereid.tracking.pyfunc_model
import ReIDEmbeddingModel`. Nothing in the library imports this module (tests/unit/test_layering.py
allows it, and only it, to import deploy)."""

from ..deploy.pyfunc_flavor import ReIDEmbeddingModel

__all__ = ["ReIDEmbeddingModel"]
