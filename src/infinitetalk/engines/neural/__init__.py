"""The neural engine: InfiniteTalk (Wan 2.1 I2V 14B + audio adapter) on torch, from the official weights.

Importing this package imports torch; ``infinitetalk.engines`` imports it lazily.
"""

from infinitetalk.engines.neural.engine import NeuralEngine, load_engine

__all__ = ["NeuralEngine", "load_engine"]
