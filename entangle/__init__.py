"""entangle: does a language model keep moral, grammatical and economic good apart?"""

__version__ = "0.1.0"
