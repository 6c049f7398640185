"""The device model (method.md section 7, 'Devices'): how weights map onto conductances
(`mapping`), the non-ideal crossbar devices and their writes (`crossbar`; the stuck
devices a March test finds and the mapping around them, `faults`; PCM drift and 1/f noise
after programming, `drift`), the periphery
that reads them (`periphery`: read noise, ADC, DAC), line resistance (`wires`), the KCL of
a circuit without an energy (`realised`) and what one programming draws (`programmed`).
Both backends use it: the numpy solvers through `realised`, the SPICE decks through
`programmed`."""
