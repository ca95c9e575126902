"""Solvers: the one adapter to torchsde and torchdiffeq, the samplers (``SAMPLERS``), the
likelihood methods (``LIKELIHOODS``), the exponential integrator and the time schedules."""
