"""Evaluation: sample quality, EP-vs-exact gradient checks, the SPICE cross-check, run
comparison and the plots. Everything here reads results; nothing trains."""
