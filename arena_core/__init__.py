"""Arena: a plugin-based tournament engine for language-model debate and preference learning.

Importing the package imports nothing heavy; submodules are imported where they are used.
"""

__version__ = "0.1.0"
