"""ranking: chunks are capped by the gallery size (the engine itself is checked against a reference in
test_metrics_reference.py)."""

from spherereid.evaluation import ranking


def test_chunks_are_capped_by_gallery_size(monkeypatch):
    # With 2**10 elements per chunk and 100 gallery items, at most 10 queries per chunk.
    monkeypatch.setattr(ranking, "CHUNK_ELEMENTS", 1 << 10)
    assert ranking.rows_per_chunk(1024, 100) == 10
    assert ranking.rows_per_chunk(1024, 10**7) == 1
    assert ranking.rows_per_chunk(3, 100) == 3
