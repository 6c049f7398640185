"""Time and energy accounting in joules and seconds (method.md section 8): the circuit's
power from its node voltages (`power`), its settling in time (`settling`), the circuit
programmed with the weights (`programming`), its training step and generated samples
(`analog`), the digital ways' FLOP counts (`flops`) priced on a GPU and timed on this CPU
(`baselines`), each way's `Estimate`, and the report of `analogep energy` that sets them
side by side (`report`). "Energy" elsewhere in analogep means E(s), the model's energy
function."""
