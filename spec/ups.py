"""A UPS: what it powers, how long it can, and when the cluster goes down in order on battery.

The UPS's USB (or serial) cable goes to one node, which runs the NUT server and the primary
`upsmon`; every other node is a secondary over the LAN. Every node of the cluster is on it (a
node off the UPS dies at once in a power cut, and the order below means nothing), with whatever
else shares its outlets (the switch, the router, the backup host) as `other_watts`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from spec.base import Model, Name, Watts

UPS_PASSWORD = "upsPassword"  # the NUT users' password (upsd.users), a secret of the stack


class Ups(Model):
    # The node the UPS's data cable goes to.
    node: Name
    # NUT's name of the UPS (`<name>@<node>`), and the driver and port NUT's hardware list gives
    # for the model (networkupstools.org/stable-hcl.html): most USB UPSes take usbhid-ups, auto.
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,30}$")] = "ups"
    driver: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{1,40}$")] = "usbhid-ups"
    port: Annotated[str, Field(pattern=r"^(auto|/dev/[A-Za-z0-9/_.-]+)$")] = "auto"
    # The UPS's rating in watts (not VA) and its battery's energy in Wh (its data sheet).
    rated_watts: Annotated[float, Field(gt=0)]
    battery_wh: Annotated[float, Field(gt=0)]
    # Everything else on its outlets (switch, router, backup host), at its most.
    other_watts: Watts = 0
    # How long the cluster rides a power cut on battery before it shuts down: most cuts are
    # shorter than a minute or two. A timer, not a battery percentage (cheap UPSes misreport it).
    ride_through_seconds: Annotated[int, Field(ge=10, le=3600)] = 120
    # How long a k3s node's pods get to stop (kubelet's graceful node shutdown).
    pod_grace_seconds: Annotated[int, Field(ge=10, le=600)] = 60
