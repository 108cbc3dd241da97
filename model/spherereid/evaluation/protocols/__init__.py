"""Evaluation protocols, one per module: standard (one shared gallery), cuhk03_classic (single-gallery-
shot), gallery_subsets (a gallery per query, CUHK-SYSU); per_query holds what the last two share."""
