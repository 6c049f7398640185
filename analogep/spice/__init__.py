"""The circuit as SPICE text (method.md section 7): circuit objects and their rendering
(`netlist`), the cell library (`library`, the top-level circuits/ folder), the compiler,
the reviewed decks, the graph check and the transient decks. Running ngspice is
`analogep.spice.run`."""
