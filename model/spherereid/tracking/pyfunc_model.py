"""Compatibility shim: the old home of the served pyfunc, kept so that model versions logged before it
moved to deploy/pyfunc_flavor.py still load. MLflow stores each version's entry script (reid_model.py),
which runs `from spherereid.tracking.pyfunc_model import ReIDEmbeddingModel` on every load, so the path is
fixed for those versions: the ones logged by the code of commits d17597b, 6ec65fc, 2588003 and ea32a01
(2026-11-28 to 2026-12-02). It cannot sit with the other compatibility code (tracking/client.py) without
breaking them: test_pyfunc_flavor.py::test_a_version_logged_before_the_move_still_loads_by_its_old_module_path
(tests/unit). Nothing in the library imports this module (tests/unit/test_layering.py allows it, and
only it, to import deploy)."""

from ..deploy.pyfunc_flavor import ReIDEmbeddingModel

__all__ = ["ReIDEmbeddingModel"]
