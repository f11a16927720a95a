"""civicguard: a privacy-by-design security operations platform for cities."""

__version__ = "0.1.0"
