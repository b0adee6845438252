"""NBA player-points props prediction pipeline on Apache Beam.

Entry point: the ``props`` console script (``python -m pipeline``); see ``pipeline/cli.py``.
"""

__version__ = "0.1.0"
