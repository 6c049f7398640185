"""Energy families, one module each; registered in analogep.registry.FAMILIES."""
