"""analogep: train energy-based generative models with Gradient Equilibrium Propagation.

The science follows FlowEqProp (Gower, ICONS 2026, arXiv 2604.08150) and symmetric
equilibrium propagation (Scellier & Bengio 2017; Laborieux et al. 2020). Data flows
one way: model.yaml -> Spec -> energy -> equilibrium (numpy or ngspice) ->
measurement -> update.
"""

__version__ = "0.1.0"
