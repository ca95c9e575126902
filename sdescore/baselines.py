"""Normalizing-flow baselines from normflows: ``fit_flow`` trains a ``FlowModel`` by maximum
likelihood with the same data preparation, engine and budget rules as ``sdescore.fit``, so
that the two compare on equal terms (``sdescore.compare``)."""
from .models.flow import FLOWS, FlowModel, build_flow
from .training.fits import fit_flow

__all__ = ["FLOWS", "FlowModel", "build_flow", "fit_flow"]
