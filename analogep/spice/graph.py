"""Check a deck's graph before ngspice sees it (networkx).

Two defects make the modified-nodal-analysis matrix singular, and ngspice reports them
only as "singular matrix" (or a timestep/gmin failure) far from the cause:

- a node with no DC path to ground (reached only through capacitors, current sources
  or controlled-source outputs);
- a loop of voltage-defining elements (V, E, H, L, and B with V=): the loop's branch
  currents are undetermined.

The check reads the rendered text (what ngspice will read), expands library
subcircuits, and fails with a message naming the nodes or elements at fault.
"""

from __future__ import annotations

import networkx as nx

from analogep.spice.library import all_cells_text
from analogep.errors import CircuitError

GROUND = "0"


_VOLTAGE_KINDS = set("VEHL")


_TWO_NODE = set("RCLVIBD")


_FOUR_NODE = set("EG")


_CONTROLLED_BY_SOURCE = set("FH")


def _logical_lines(text: str) -> list[str]:
    """Lines with '+' continuations joined; comments, blanks and .control blocks dropped."""
    lines: list[str] = []
    in_control = False
    for raw in text.splitlines()[1:]:  # the first line of a deck is its title
        line = raw.strip()
        low = line.lower()
        if low.startswith(".control"):
            in_control = True
            continue
        if low.startswith(".endc"):
            in_control = False
            continue
        if in_control or not line or line.startswith("*"):
            continue
        if line.startswith("+") and lines:
            lines[-1] += " " + line[1:].strip()
        else:
            lines.append(line)
    return lines


def _element(tokens: list[str]) -> tuple[str, list[str], str]:
    """(kind, nodes, subcircuit name or '') of one element line."""
    name = tokens[0]
    kind = name[0].upper()
    if kind in _TWO_NODE or kind in _CONTROLLED_BY_SOURCE:
        return kind, tokens[1:3], ""
    if kind in _FOUR_NODE:
        return kind, tokens[1:5], ""
    if kind == "X":
        args = [t for t in tokens[1:] if "=" not in t and t.lower() != "params:"]
        return kind, args[:-1], args[-1].lower()
    raise CircuitError(f"element {name}: kind {kind!r} is not supported by the graph check")


class _Parsed:
    def __init__(self) -> None:
        self.subckts: dict[str, tuple[list[str], list[list[str]]]] = {}
        self.top: list[list[str]] = []
        self.globals: set[str] = set()  # .global nodes: the same node in every subcircuit


def _parse(text: str, parsed: _Parsed) -> None:
    current: tuple[list[str], list[list[str]]] | None = None
    for line in _logical_lines("title\n" + text):
        tokens = line.split()
        head = tokens[0].lower()
        if head == ".subckt":
            ports = [t for t in tokens[2:] if "=" not in t and t.lower() != "params:"]
            current = (ports, [])
            parsed.subckts[tokens[1].lower()] = current
        elif head == ".global":
            parsed.globals.update(n.lower() for n in tokens[1:])
        elif head == ".ends":
            current = None
        elif head.startswith("."):
            continue
        else:
            (current[1] if current is not None else parsed.top).append(tokens)


def _expand(parsed: _Parsed, lines: list[list[str]], prefix: str, mapping: dict[str, str], out: list, depth: int = 0):
    for tokens in lines:
        kind, nodes, sub = _element(tokens)
        nodes = [n if n == GROUND or n.lower() in parsed.globals else mapping.get(n, prefix + n) for n in nodes]
        name = prefix + tokens[0]
        if kind == "X":
            if sub not in parsed.subckts or depth > 20:
                raise CircuitError(f"element {name}: unknown subcircuit {sub!r}")
            ports, body = parsed.subckts[sub]
            if len(ports) != len(nodes):
                raise CircuitError(f"element {name}: {len(nodes)} nodes for subcircuit {sub} with {len(ports)} ports")
            _expand(parsed, body, name + ".", dict(zip(ports, nodes)), out, depth + 1)
        else:
            volt_b = kind == "B" and " ".join(tokens[3:]).lower().replace(" ", "").startswith("v=")
            out.append((name, kind, nodes, volt_b))


def flatten(deck: str, library: str | None = None) -> list[tuple[str, str, list[str], bool]]:
    """Elements of the deck with subcircuits expanded: (name, kind, nodes, is_voltage_B)."""
    parsed = _Parsed()
    _parse(library if library is not None else all_cells_text(), parsed)
    deck_parsed = _Parsed()
    _parse("\n".join(deck.splitlines()[1:]), deck_parsed)
    parsed.subckts.update(deck_parsed.subckts)
    parsed.globals |= deck_parsed.globals
    out: list = []
    _expand(parsed, deck_parsed.top, "", {}, out)
    return out


def check_graph(deck: str, where: str, library: str | None = None) -> int:
    """Raise CircuitError if a node has no DC path to ground or voltage sources form a loop.

    Returns the number of flattened elements. `where` names the deck in messages.
    """
    elements = flatten(deck, library)
    dc = nx.Graph()
    volt = nx.MultiGraph()
    dc.add_node(GROUND)
    for name, kind, nodes, volt_b in elements:
        dc.add_nodes_from(nodes)
        if kind == "F" or kind == "G" or kind == "I" or kind == "C" or (kind == "B" and not volt_b):
            continue  # current outputs and capacitors are open at DC
        a, b = nodes[0], nodes[1]
        dc.add_edge(a, b)
        if kind in _VOLTAGE_KINDS or volt_b:
            volt.add_edge(a, b, name=name)
    floating = sorted(set(dc.nodes) - nx.node_connected_component(dc, GROUND))
    if floating:
        shown = ", ".join(floating[:5]) + (f" and {len(floating) - 5} more" if len(floating) > 5 else "")
        raise CircuitError(f"{where}: node(s) {shown} have no DC path to ground (only capacitors or current sources reach them)")
    try:
        cycle = nx.find_cycle(volt)
    except nx.NetworkXNoCycle:
        return len(elements)
    loop = [volt.edges[e]["name"] for e in cycle]
    raise CircuitError(f"{where}: voltage sources form a loop ({' -> '.join(loop)}); their currents are undetermined")
