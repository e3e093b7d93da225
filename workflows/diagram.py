"""The Workflow Builder's drawing of the derived graph (issue 22): where each node and edge goes.

Rows by graph level (workflows.graph.levels), top to bottom: the inputs, then the steps that need
nothing, then the steps that wait for those, and so on; the steps of one row may run side by side.
An edge joins a step to each step it waits for (its `needs`), drawn dashed when only its `when`
reads it and double when its `for_each` maps over it. Pure layout from workflow_variable_flow's
answer, so the page template only draws: no JavaScript is needed to see the graph.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NODE_WIDTH = 176
NODE_HEIGHT = 62
GAP_X = 20
GAP_Y = 34
PAD = 6
INPUTS_HEIGHT = 30
LANE_GAP = 12  # between the lanes of edges that pass a row
TITLE_CHARS = 22
BADGE_CHARS = 13


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class Node:
    step: int  # 1-based step number
    x: int
    y: int
    title: str
    payload: str
    level: int
    when: str = ""
    for_each: str = ""
    item_as: str = ""
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    width: int = NODE_WIDTH
    height: int = NODE_HEIGHT

    @property
    def state(self) -> str:
        return "problem" if self.problems else "warning" if self.warnings else "ok"

    @property
    def marks(self) -> list[str]:
        return self.problems or self.warnings

    @property
    def badges(self) -> list[dict[str, Any]]:
        """The condition and map badges along the node's foot, each with its x offset."""
        found = []
        if self.when:
            found.append({"kind": "when", "text": "if " + _clip(self.when.strip().strip("{} "), BADGE_CHARS),
                          "title": f"Runs only when {self.when.strip()}"})
        if self.for_each:
            found.append({"kind": "map", "text": "\u00d7 " + _clip(self.for_each, BADGE_CHARS),
                          "title": f"Once for each {self.item_as} in {self.for_each}"})
        x = 8
        for badge in found:
            badge["width"] = 10 + 6 * len(badge["text"])
            badge["x"] = x
            x += badge["width"] + 6
        return found


@dataclass
class Edge:
    source: int  # 0: the inputs
    target: int
    kind: str  # "data", "when" (only its condition reads it), "map" (its for_each), "input"
    path: str


@dataclass
class Diagram:
    width: int
    height: int
    nodes: list[Node]
    edges: list[Edge]
    inputs: dict[str, int] | None  # the inputs bar's box
    rows: int  # step rows: more than one step in a row runs side by side

    @property
    def parallel(self) -> bool:
        return len({node.level for node in self.nodes}) < len(self.nodes)


def _edge_kind(reads: list[dict[str, Any]], source_key: str) -> str:
    fields = {read.get("field") or "blocks" for read in reads if read["source"] == f"step:{source_key}"}
    if "for_each" in fields:
        return "map"
    return "when" if fields == {"when"} else "data"


def _curve(x1: float, y1: float, x2: float, y2: float) -> str:
    bend = max((y2 - y1) / 2, 12)
    return f"M{x1:.0f},{y1:.0f} C{x1:.0f},{y1 + bend:.0f} {x2:.0f},{y2 - bend:.0f} {x2:.0f},{y2:.0f}"


def _lane(x1: float, y1: float, x2: float, y2: float, lane: float) -> str:
    above, below = y1 + GAP_Y / 2, y2 - GAP_Y / 2
    return (f"M{x1:.0f},{y1:.0f} Q{x1:.0f},{above:.0f} {x1 + 12:.0f},{above:.0f} L{lane - 12:.0f},{above:.0f} "
            f"Q{lane:.0f},{above:.0f} {lane:.0f},{above + 12:.0f} L{lane:.0f},{below - 12:.0f} "
            f"Q{lane:.0f},{below:.0f} {lane - 12:.0f},{below:.0f} L{x2 + 12:.0f},{below:.0f} "
            f"Q{x2:.0f},{below:.0f} {x2:.0f},{y2:.0f}")


def flow_diagram(flow: list[dict[str, Any]], *, problems: dict[int, list[str]] | None = None,
                 warnings: dict[int, list[str]] | None = None, has_inputs: bool = True) -> Diagram:
    """Lay out `flow` (workflow_variable_flow's answer); problems and warnings by 1-based step number."""
    problems, warnings = problems or {}, warnings or {}
    by_level: dict[int, list[dict[str, Any]]] = {}
    for step in flow:
        by_level.setdefault(step["level"], []).append(step)
    widest = max((len(row) for row in by_level.values()), default=1)
    width = PAD * 2 + widest * NODE_WIDTH + (widest - 1) * GAP_X
    top = PAD + (INPUTS_HEIGHT + GAP_Y if has_inputs else 0)
    nodes: dict[int, Node] = {}
    for level in sorted(by_level):
        row = by_level[level]
        span = len(row) * NODE_WIDTH + (len(row) - 1) * GAP_X
        left = (width - span) // 2
        for place, step in enumerate(row):
            number = step["index"] + 1
            nodes[number] = Node(
                step=number, x=left + place * (NODE_WIDTH + GAP_X), y=top + level * (NODE_HEIGHT + GAP_Y),
                title=_clip(f"{number}. {step['output_key']}", TITLE_CHARS), payload=_clip(step["payload"], TITLE_CHARS + 4),
                level=level, when=step.get("when", ""), for_each=step.get("for_each", ""),
                item_as=step.get("item_as", "item"), problems=problems.get(number, []),
                warnings=warnings.get(number, []))
    edges = []
    inputs = {"x": PAD, "y": PAD, "width": width - 2 * PAD, "height": INPUTS_HEIGHT} if has_inputs else None
    lanes = 0
    for step in flow:
        target = nodes[step["index"] + 1]
        for need in step["needs"]:
            source = nodes[need + 1]
            x1, y1, x2, y2 = source.x + NODE_WIDTH / 2, source.y + NODE_HEIGHT, target.x + NODE_WIDTH / 2, target.y
            if target.level - source.level > 1:
                # Past a row in between: down a lane right of the nodes, never through a node.
                path = _lane(x1, y1, x2, y2, width + LANE_GAP * lanes + LANE_GAP // 2)
                lanes += 1
            else:
                path = _curve(x1, y1, x2, y2)
            edges.append(Edge(source.step, target.step, _edge_kind(step["reads"], flow[need]["output_key"]), path))
        # Only the first row hangs from the inputs: a line to a lower row would cross the rows above it.
        if inputs and step["level"] == 0 and any(read["source"] == "input" for read in step["reads"]):
            edges.append(Edge(0, target.step, "input", _curve(target.x + NODE_WIDTH / 2, PAD + INPUTS_HEIGHT,
                                                              target.x + NODE_WIDTH / 2, target.y)))
    rows = len(by_level)
    height = top + rows * NODE_HEIGHT + max(rows - 1, 0) * GAP_Y + PAD
    return Diagram(width=width + LANE_GAP * lanes, height=height, nodes=[nodes[n] for n in sorted(nodes)], edges=edges, inputs=inputs,
                   rows=rows)
