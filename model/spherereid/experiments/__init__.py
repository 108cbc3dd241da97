"""Research workflows built on the stages: the paper's ablation grid and the cross-dataset matrix."""
