"""What an owner wants to see of a plan: power, what each node's loss does, the data path, and the topology.

Rendered twice from the same figures: plain text for the terminal, Markdown (with a Mermaid
diagram GitHub draws) for the pull request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from plan.backups import Copy, copies
from plan.datapath import DataPath, TrafficClass, datapath, gb
from plan.failover import NodeFailure, running_from_spec, simulate
from plan.placement import plan_guests
from plan.power import ClusterDraw, cluster_draw
from plan.routes import addresses
from plan.ups import UpsPlan, no_ups_note, ups_plan
from spec.models import Cluster


@dataclass(frozen=True)
class Reports:
    cluster: Cluster
    placement: dict[str, str]
    draw: ClusterDraw
    failures: list[NodeFailure]
    datapath: DataPath
    copies: list[Copy]

    @classmethod
    def of(cls, cluster: Cluster) -> Reports:
        plan = plan_guests(cluster)
        placement, stopped = dict(plan.where), set(plan.parked)
        failures = simulate(cluster, running_from_spec(cluster, placement, stopped))
        running = {g: n for g, n in placement.items() if g not in stopped}
        draw = cluster_draw(cluster, running)
        return cls(cluster, placement, draw, failures, datapath(cluster), copies(cluster))

    # --- power ------------------------------------------------------------------------

    def power_json(self) -> dict[str, Any]:
        d = self.draw
        return {
            "budget_watts": d.budget_watts,
            "idle_watts": round(d.idle_watts, 2),
            "expected_watts": round(d.watts, 2),
            "within_budget": d.within_budget,
            "kwh_per_month": round(d.kwh_per_month, 2),
            "cost_per_month": round(d.cost_per_month, 2),
            "currency": self.cluster.power.currency,
            "nodes": [
                {
                    "node": n.node,
                    "idle_watts": n.idle_watts,
                    "utilisation": round(n.utilisation, 3),
                    "watts": round(n.watts, 2),
                }
                for n in d.nodes
            ],
            "ups": self._ups_json(),
        }

    def _ups_json(self) -> dict[str, Any] | None:
        u = ups_plan(self.cluster, self.draw)
        if u is None:
            return None
        return {
            "rated_watts": u.ups.rated_watts,
            "peak_watts": round(u.peak_watts, 1),
            "expected_watts": round(u.expected_watts, 1),
            "runtime_minutes": round(u.runtime_minutes, 1),
            "needed_minutes": round(u.needed_minutes, 1),
            "ride_through_seconds": u.ups.ride_through_seconds,
            "shutdown_minutes": round(u.shutdown_minutes, 1),
        }

    def _ups_verdict(self) -> str:
        u: UpsPlan | None = ups_plan(self.cluster, self.draw)
        if u is None:
            return no_ups_note(self.cluster)
        ok = "ok" if u.rating_covers_peak and u.runtime_covers_shutdown else "TOO SMALL"
        return (
            f"UPS ({ok}): {u.ups.rated_watts:g} W rated for a {u.peak_watts:.0f} W peak; about "
            f"{u.runtime_minutes:.0f} min on battery at {u.expected_watts:.0f} W, {u.needed_minutes:.1f} min needed "
            f"(ride through {u.ups.ride_through_seconds} s, then shut down in {u.shutdown_minutes:.1f} min)"
        )

    def _power_rows(self) -> list[tuple[str, str, str, str]]:
        rows = [(n.node, f"{n.idle_watts:.1f} W", f"{n.utilisation:.0%}", f"{n.watts:.1f} W") for n in self.draw.nodes]
        rows.append(("total", f"{self.draw.idle_watts:.1f} W", "", f"{self.draw.watts:.1f} W"))
        return rows

    def _power_verdict(self) -> str:
        d, cur = self.draw, self.cluster.power.currency
        state = "within" if d.within_budget else "OVER"
        return (
            f"{d.watts:.1f} W expected, {state} the budget of {d.budget_watts:.0f} W; "
            f"{d.kwh_per_month:.1f} kWh and {d.cost_per_month:.2f} {cur} a month "
            f"at {self.cluster.power.price_per_kwh:.2f} {cur}/kWh"
        )

    def power_text(self) -> list[str]:
        rows = self._power_rows()
        width = max(10, *(len(a) for a, *_ in rows))
        lines = ["Power (modelled):", f"  {'node':<{width}} {'idle':>9} {'busy':>5} {'expected':>9}"]
        lines += [f"  {a:<{width}} {b:>9} {c:>5} {e:>9}" for a, b, c, e in rows]
        lines.append(f"  {self._power_verdict()}")
        lines.append(f"  {self._ups_verdict()}")
        return lines

    def power_markdown(self) -> list[str]:
        lines = ["### Power", "", "| node | idle | busy | expected |", "|---|---:|---:|---:|"]
        lines += [f"| {a} | {b} | {c} | {e} |" for a, b, c, e in self._power_rows()]
        return [*lines, "", self._power_verdict(), "", self._ups_verdict()]

    # --- failover ---------------------------------------------------------------------

    def failover_json(self) -> list[dict[str, Any]]:
        return [
            {
                "node": f.node,
                "moved": f.moved,
                "down_by_design": f.down_by_design,
                "down_not_ha": f.down_not_ha,
                "watts": round(f.draw.watts, 2),
                "ceph_writable": f.ceph_writable,
                "corosync_quorum": f.corosync_quorum,
                "etcd_quorum": f.etcd_quorum,
                "problems": f.problems(),
            }
            for f in self.failures
        ]

    def failover_text(self) -> list[str]:
        lines = ["Failover (each node lost in turn):"]
        for f in self.failures:
            lines.append(f"  {'ok  ' if f.survives else 'FAIL'} {f.describe()}")
            lines += [f"       - {p}" for p in f.problems()]
        return lines

    def failover_markdown(self) -> list[str]:
        lines = [
            "### If a node dies",
            "",
            "| node lost | HA guests restart on | stays down | Ceph writable | corosync | etcd | draw |",
            "|---|---|---|---|---|---|---:|",
        ]
        for f in self.failures:
            moved = ", ".join(f"{g} → {n}" for g, n in f.moved.items()) or "–"
            down = ", ".join([*(f"{g} (anti-affinity)" for g in f.down_by_design), *f.down_not_ha]) or "–"
            etcd = "–" if f.etcd is None else f"{f.etcd.remaining}/{f.etcd.total} {'✅' if f.etcd.kept else '❌'}"
            lines.append(
                f"| {f.node} | {moved} | {down} | {'✅' if f.ceph_writable else '❌'} "
                f"| {f.corosync.remaining}/{f.corosync.total} {'✅' if f.corosync.kept else '❌'} | {etcd} "
                f"| {f.draw.watts:.1f} W |"
            )
        problems = [p for f in self.failures for p in f.problems()]
        return [*lines, "", *(f"- ❌ {p}" for p in problems)] if problems else lines

    # --- data path --------------------------------------------------------------------

    def datapath_json(self) -> dict[str, Any]:
        d = self.datapath
        return {
            "nodes": {
                node: [
                    {"link": link.name, "gbps": link.gbps, "aggregate_gbps": link.aggregate_gbps, "how": link.how}
                    for link in links
                ]
                for node, links in d.links.items()
            },
            "classes": [
                {
                    "name": c.name,
                    "carrier": c.carrier,
                    "network": c.network,
                    "gbps": c.slowest.gbps,
                    "slowest": c.slowest.where(),
                    "latency_only": c.latency_only,
                    "write_gbps": None if c.writes is None else round(c.writes.gbps, 2),
                    "write_limit": None if c.writes is None else c.writes.by.where(),
                    "notes": list(c.notes),
                }
                for c in d.classes
            ],
            "shared": {carrier: list(names) for carrier, names in d.shared.items()},
            "public_on_lan": d.public_on_lan,
            "bottleneck": d.bottleneck,
            "advice": d.advice,
        }

    def _node_links(self) -> list[tuple[str, str]]:
        return [
            (node, "; ".join(f"{link.name} {gb(link.gbps)}" + (f" ({link.how})" if link.how else "") for link in links))
            for node, links in self.datapath.links.items()
        ]

    def _notes(self, c: TrafficClass) -> list[str]:
        if c.writes is not None or c.latency_only:
            return list(c.notes)
        return [f"slowest: {c.slowest.where()}", *c.notes]

    def datapath_text(self) -> list[str]:
        d = self.datapath
        lines = ["Data path (what one flow gets; a bond puts a flow on one member):"]
        lines += [f"  {node}: {links}" for node, links in self._node_links()]
        for c in d.classes:
            figure = "latency" if c.latency_only else gb(c.slowest.gbps)
            lines.append(f"  {c.name:<18} {figure:>9}  {c.network}")
            lines += [f"  {'':<18} {'':>9}  - {note}" for note in self._notes(c)]
        lines += [f"  {carrier} carries: {', '.join(names)}" for carrier, names in d.shared.items()]
        lines.append(f"  Bottleneck: {d.bottleneck}")
        if d.advice is not None:
            lines.append(f"  Advice: {d.advice}")
        return lines

    def datapath_markdown(self) -> list[str]:
        d = self.datapath
        lines = ["### Data path", "", "| class | carried by | one flow | notes |", "|---|---|---:|---|"]
        for c in d.classes:
            figure = "latency" if c.latency_only else gb(c.slowest.gbps)
            lines.append(f"| {c.name} | {c.network} | {figure} | {'; '.join(self._notes(c))} |")
        lines += ["", "| node | links |", "|---|---|"]
        lines += [f"| {node} | {links} |" for node, links in self._node_links()]
        lines.append("")
        lines += [f"- `{carrier}` carries {', '.join(names)}" for carrier, names in d.shared.items()]
        lines += ["", f"**Bottleneck:** {d.bottleneck}"]
        return [*lines, "", f"**Advice:** {d.advice}"] if d.advice is not None else lines

    # --- topology ---------------------------------------------------------------------

    def topology_mermaid(self) -> list[str]:
        c = self.cluster
        k3s_role = {}
        if c.k3s is not None:
            k3s_role = {s: "k3s server" for s in c.k3s.servers} | {a: "k3s agent" for a in c.k3s.agents}
        lines = ["```mermaid", "flowchart TB", '  lan(["LAN ' + str(c.networks.lan.cidr) + '"])']
        storage = f"{c.networks.storage.mode} {c.networks.ceph.cluster}, Ceph public {c.networks.ceph.public}"
        if c.networks.storage.mode == "bond":
            lines.append(f'  stor(["storage switch {c.networks.ceph.cluster}"])')
        for node in c.nodes:
            n = _id(node.name)
            title = f"{node.name} {node.address}" + (" (maintenance)" if node.maintenance else "")
            lines.append(f'  subgraph {n}["{title}"]')
            for g in c.guests:
                if self.placement.get(g.name) == node.name:
                    role = k3s_role.get(g.name, g.kind.upper())
                    ha = ", HA" if g.ha else ""
                    lines.append(f'    {_id(g.name)}["{g.name}<br/>{role}{ha}"]')
            if node.osds:
                lines.append(f'    {n}_osd[("OSD {", ".join(o.device for o in node.osds)}")]')
            lines.append("  end")
            lines.append(f"  {n} ---|{node.bond.mode} {'+'.join(node.bond.members)}| lan")
            if node.storage_bond is not None:
                lines.append(f"  {n} ---|{node.storage_bond.mode} {'+'.join(node.storage_bond.members)}| stor")
        if c.networks.storage.mode == "mesh":
            seen = set()
            for node in c.nodes:
                for link in node.mesh_links:
                    pair = tuple(sorted((node.name, link.peer)))
                    if pair not in seen:
                        seen.add(pair)
                        lines.append(f"  {_id(pair[0])} <-.->|mesh| {_id(pair[1])}")
        lines.append("```")
        lines.insert(2, f"  %% storage network: {storage}")
        return lines

    # --- backups: the RPO table --------------------------------------------------------------

    def backups_json(self) -> list[dict[str, Any]]:
        return [
            {
                "data": c.data,
                "copies": c.where,
                "schedule": c.schedule,
                "worst_case_loss_hours": c.every_hours,
                "back_days": c.back_days,
                "off_cluster": c.off_cluster,
            }
            for c in self.copies
        ]

    def _backup_rows(self) -> list[tuple[str, str, str, str, str]]:
        def loss(c: Copy) -> str:
            if c.every_hours is not None:
                return f"≤ {c.every_hours:g} h"
            if c.where.startswith("skipped"):
                return "–"
            return c.schedule if c.schedule != "–" else "everything"

        def back(c: Copy) -> str:
            return "–" if c.back_days is None else f"{c.back_days:g} days"

        return [(c.data, c.where, loss(c), back(c), "yes" if c.off_cluster else "NO") for c in self.copies]

    def _backup_verdict(self) -> str:
        exposed = [c.data for c in self.copies if not c.off_cluster and not c.where.startswith("skipped")]
        if not exposed:
            return "Every piece of data has a copy off the cluster (or a stated reason to need none)."
        return f"No copy off the cluster, lost with it: {', '.join(exposed)}."

    def backups_text(self) -> list[str]:
        lines = ["Backups (RPO: the most a loss costs, and how far back the copies go):"]
        for d, where, loss, b, o in self._backup_rows():
            short = where if len(where) <= 44 else where[:43] + "…"
            lines.append(f"  {d:<28} {short:<44} {loss:<10} {b:<9} off-cluster: {o}")
        lines.append(f"  {self._backup_verdict()}")
        return lines

    def backups_markdown(self) -> list[str]:
        lines = [
            "### Backups (RPO)",
            "",
            "| data | copies | worst-case loss | back | off the cluster |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {d} | {w} | {loss} | {b} | {'✅' if o == 'yes' else '❌'} |" for d, w, loss, b, o in self._backup_rows()
        ]
        return [*lines, "", self._backup_verdict()]

    # --- names: what an owner opens -------------------------------------------------------------

    def names_json(self) -> list[dict[str, str]]:
        return [{"what": a.what, "url": a.url, "how": a.how} for a in addresses(self.cluster)]

    def names_text(self) -> list[str]:
        lines = ["Names (what you open after `pulumi up`):"]
        lines += [f"  {a.what:<16} {a.url:<40} {a.how}" for a in addresses(self.cluster)]
        return lines

    def names_markdown(self) -> list[str]:
        lines = ["### Names", "", "| what | URL | how |", "|---|---|---|"]
        return lines + [f"| {a.what} | {a.url} | {a.how} |" for a in addresses(self.cluster)]

    def markdown(self, stack: str, resources: int, violations: list[dict[str, Any]]) -> str:
        mandatory = [v for v in violations if v.get("enforcement") == "mandatory"]
        status = "❌ mandatory policy violations" if mandatory else "✅ no mandatory policy violation"
        lines = [f"## homelab `{stack}`: {resources} resources, {status}", ""]
        verdicts = [v for v in violations if not v.get("not_known_yet")]
        waiting = [v for v in violations if v.get("not_known_yet")]
        if verdicts:
            lines += ["### Policy violations", ""]
            lines += [f"- **{v['policy']}** ({v['enforcement']}): {_one_line(v['message'])}" for v in verdicts]
            lines.append("")
        if waiting:
            lines += ["### Not judged until the cluster answers", ""]
            lines += [f"- **{v['policy']}**: {_one_line(v['message'])}" for v in waiting]
            lines.append("")
        lines += [
            *self.power_markdown(),
            "",
            *self.failover_markdown(),
            "",
            *self.datapath_markdown(),
            "",
            *self.backups_markdown(),
            "",
            *self.names_markdown(),
            "",
            "### Topology",
            "",
            *self.topology_mermaid(),
        ]
        return "\n".join(lines) + "\n"


def _id(name: str) -> str:
    """A Mermaid node ID from a name (hyphens are not allowed in IDs)."""
    return name.replace("-", "_")


def _one_line(text: str) -> str:
    return " ".join(text.split())
