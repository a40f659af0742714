"""Exceptions whose messages name the offending key or file and the fix."""


class BasisNmceError(Exception):
    """Base class: every error the library raises on purpose."""


class ConfigError(BasisNmceError, ValueError):
    """An invalid configuration value; the message names the key."""


class DataError(BasisNmceError, ValueError):
    """Invalid input data; the message names the file or array and the fix."""


class ChecksumError(DataError):
    """A downloaded or mirrored file does not match its published checksum."""


class TrainingError(BasisNmceError, RuntimeError):
    """Training went wrong (non-finite values, collapse); the message names the cause and fix."""


class SettingWarning(UserWarning):
    """A setting the data cannot honour as written was capped; the message says how to choose."""
