"""The terminal view of an actor's timeline (``insiderwatch actor``, without ``--json``)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from insiderwatch.stream.tail import SEVERITY_STYLE

__all__ = ["render_timeline"]


def _status(item: dict) -> str:
    if item["suppressed"]:
        held = item["suppressed"]
        return (
            f"held back ({held.get('scope')}{', by ' + held['rule'] if held.get('rule') else ''})"
        )
    return item.get("status") or ""


def render_timeline(timeline: dict, plot_path: str | None = None) -> None:
    """Print the timeline: context, alerts in event-time order, then the current windows."""
    console = Console()
    console.print(f"[bold]{timeline['actor_id']}[/bold]")
    context = timeline["context"]
    if context:
        shown = {
            k: v for k, v in context.items() if k not in ("actor_id",) and v not in (None, False)
        }
        console.print(f"context: {shown}")
    table = Table(title=f"alerts ({len(timeline['alerts'])})", show_lines=False)
    for column in ("event time", "kind", "severity", "score", "status", "verdict"):
        table.add_column(column)
    table.add_column("summary", overflow="fold")
    for item in timeline["alerts"]:
        severity = item.get("severity") or ""
        table.add_row(
            item["timestamp"],
            item["kind"],
            f"[{SEVERITY_STYLE.get(severity, '')}]{severity}[/]" if severity else "",
            f"{item['score']:.3f}" if isinstance(item.get("score"), int | float) else "",
            _status(item),
            item.get("verdict") or "",
            item.get("summary") or "",
        )
    console.print(table)
    windows = timeline["windows"]
    if windows is None:
        console.print(
            f"windows: no worker holds this actor's state ({'; '.join(timeline['workers'])})"
        )
    else:
        usual = windows["usual"]
        day = windows["windows"]["24h"]
        hour = windows["windows"]["1h"]
        risk = windows["risk"]
        console.print(
            f"windows as of {windows['windows_as_of']} (peer group {windows['peer_group']}, "
            f"{windows['events_learnt']} events learnt over {windows['active_days']} days):\n"
            f"  last hour: {hour['events']:.1f} accesses (usual {usual['events_per_working_hour']:.1f} "
            f"per working hour), {hour['no_ticket']:.1f} without a ticket\n"
            f"  last day:  {day['events']:.1f} accesses (usual {usual['events_per_day']:.1f}), "
            f"{day['rare']:.1f} rare\n"
            f"  risk: {risk['ratio']:.2f}x the limit ({risk['days_with_risk']} of the last "
            f"{risk['days_considered']} days with risk)\n"
            f"  top accesses: "
            + ", ".join(f"{a['access']} {a['share']:.0%}" for a in windows["top_accesses"])
        )
    if plot_path:
        console.print(f"plot: {plot_path}")
