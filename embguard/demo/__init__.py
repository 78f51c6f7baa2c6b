"""``embguard demo``: the whole loop offline on the embedded default, and the simulated traffic it drives."""
