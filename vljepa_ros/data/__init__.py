"""Dataset format (reader/writer), generator CLI and converter for user data."""

from .dataset import Dataset, Frame  # noqa: F401
