"""``demo``: the real controllers on a small world, telling a short story.

Four VMs on three hosts in two pools; their nodes join with the
uninitialized taint (one with a little-endian systemUUID, as UEFI guests
report it); then one VM live-migrates, one stops and one is deleted. Each
node's state is printed whenever it changes, and the demo ends by itself.

- :mod:`~entrypoints.demo.world`: the VMs, hosts and pools, and the XO
  side (in memory, or the fake XO server read over HTTP);
- :mod:`~entrypoints.demo.cluster`: kubelet's side (in memory, or a real
  kube-apiserver on loopback);
- :mod:`~entrypoints.demo.story`: the container built for the chosen
  sides, the story, and what it prints.
"""

from entrypoints.demo.story import run_demo

__all__ = ["run_demo"]
