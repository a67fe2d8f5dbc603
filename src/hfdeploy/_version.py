"""The installed version of hfdeploy."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hfdeploy")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"
