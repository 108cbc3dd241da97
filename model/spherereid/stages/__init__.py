"""Pipeline stages: each module has run(...) (typed keyword arguments) and main(argv) (CLI)."""
