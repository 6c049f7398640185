"""Time and energy accounting in joules and seconds (method.md section 8): the circuit's
power from its node voltages (`power`), its settling time (`settling`), and the report of
`analogep energy` against GPU and CPU baselines (`report`). "Energy" elsewhere in
analogep means E(s), the model's energy function."""
