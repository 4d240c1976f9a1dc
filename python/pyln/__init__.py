"""pyln: Docker's libnetwork (the Container Network Model) as a Python library
with a Rust core.

    ctrl = pyln.Controller(state_dir="/var/lib/pyln")
    net = ctrl.new_network("bridge", "network1")
    ep = net.create_endpoint("Endpoint1")
    sbx = ctrl.new_sandbox("container1", hostname="test", domainname="docker.io")
    ep.join(sbx)
"""

from pyln import errors, netlabel
from pyln.bitseq import Bitseq
from pyln.controller import Controller
from pyln.endpoint import Endpoint, EndpointInfo
from pyln.idm import Idm
from pyln.network import IpamConf, Network
from pyln.sandbox import Sandbox
from pyln.types import PortBinding, TransportPort

__all__ = [
    "Bitseq",
    "Controller",
    "Endpoint",
    "EndpointInfo",
    "Idm",
    "IpamConf",
    "Network",
    "PortBinding",
    "Sandbox",
    "TransportPort",
    "errors",
    "netlabel",
]
__version__ = "0.1.0"
