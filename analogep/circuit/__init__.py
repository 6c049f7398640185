"""The analog circuit (method.md section 7): the device model (parameters to conductances),
circuit objects and their SPICE text, the compiler, the reviewed decks, the graph check,
and running ngspice (engines, runner registry, worker pool)."""
