"""pyln: Docker's libnetwork (the Container Network Model) as a Python library
with a Rust core."""

from pyln import errors
from pyln.bitseq import Bitseq
from pyln.idm import Idm

__all__ = ["Bitseq", "Idm", "errors"]
__version__ = "0.1.0"
