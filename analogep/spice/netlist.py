"""Circuits as objects: elements, sections, analysis, and `render`, the one place that
turns a circuit into SPICE text (a deck a designer can review: header, .include of the
cell library, .params, one element per line, .control)."""

from __future__ import annotations

from dataclasses import dataclass, field

from analogep.spice.library import LIBRARY, library_text


def fmt(v: float) -> str:
    """A number as SPICE reads it, exact to 12 significant digits."""
    return f"{float(v):.12g}"


@dataclass(frozen=True)
class Element:
    """One SPICE element line: name (its first letter is its kind), nodes, value or model."""

    name: str
    nodes: tuple[str, ...]
    value: str

    def line(self) -> str:
        return f"{self.name} {' '.join(self.nodes)} {self.value}"


@dataclass
class Netlist:
    """A deck as objects; `render` is the only place that turns it into text."""

    title: str
    header: list[str]
    params: dict[str, float]
    sections: list[tuple[str, list[Element]]]
    analysis: str
    options: dict[str, str | None] = field(default_factory=dict)
    nodeset: dict[str, float] = field(default_factory=dict)
    ic: dict[str, float] = field(default_factory=dict)  # transient start (.ic), node -> volts
    saves: list[str] = field(default_factory=list)
    control: list[str] = field(default_factory=list)
    # Libraries besides `library` the deck's cells come from (drivers.lib: non-ideal drivers).
    extra_libraries: tuple[str, ...] = ()
    # The cell library (circuits/): analogep.lib, or a family's own (physical.lib).
    library: str = LIBRARY

    @property
    def elements(self) -> list[Element]:
        return [e for _, elements in self.sections for e in elements]

    def counts(self) -> dict[str, int]:
        """Top-level elements by kind (X = library neuron cells)."""
        out: dict[str, int] = {}
        for e in self.elements:
            out[e.name[0].upper()] = out.get(e.name[0].upper(), 0) + 1
        return dict(sorted(out.items()))


def _wrap(prefix: str, items: list[str], per_line: int = 8) -> list[str]:
    """prefix item item ... with + continuation lines."""
    lines = []
    for k in range(0, len(items), per_line):
        lines.append(("+ " if k else prefix + " ") + " ".join(items[k : k + per_line]))
    return lines


def render(net: Netlist, include: str | None = LIBRARY) -> str:
    """SPICE text of a Netlist: header, library, params, options, elements, analysis, control.

    `include`: the subcircuit library's file name as the deck names it (the compiled
    decks sit beside a copy of it; a family's own library is named as it is); None embeds
    the library's text, so the deck is self-contained and runs on any host (the backend's
    decks).
    """
    if include == LIBRARY:
        include = net.library
    out = [net.title]
    out += [f"* {h}" if h else "*" for h in net.header]
    if include is None:
        for lib in (net.library, *net.extra_libraries):
            out += ["* --- cell library (" + lib + ")", library_text(lib).rstrip(), "* --- end of cell library"]
    else:
        out.append(f".include {include}")
        out += [f".include {lib}" for lib in net.extra_libraries]
    if net.params:
        out.append("")
        out += _wrap(".param", [f"{k}={fmt(v)}" for k, v in net.params.items()], per_line=4)
    opts = [k if v is None else f"{k}={v}" for k, v in net.options.items()]
    if opts:
        out.append(".options " + " ".join(opts))
    for title, elements in net.sections:
        out.append("")
        out.append(f"* --- {title}")
        out += [e.line() for e in elements]
    if net.nodeset:
        out.append("")
        out += _wrap(".nodeset", [f"v({k})={v:.6g}" for k, v in net.nodeset.items()], per_line=6)
    if net.ic:
        out.append("")
        out += _wrap(".ic", [f"v({k})={fmt(v)}" for k, v in net.ic.items()], per_line=6)
    out.append("")
    if net.saves:
        out += _wrap(".save", net.saves, per_line=10)
    out.append(net.analysis)
    if net.control:
        out += [".control", *net.control, ".endc"]
    out.append(".end")
    return "\n".join(out) + "\n"
