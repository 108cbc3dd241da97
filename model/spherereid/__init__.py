"""SphereReID person re-identification (Fan et al., 2018): library, stages and CLI."""

__version__ = "0.1.0"
