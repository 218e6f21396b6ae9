"""Array shape aliases used in signatures (jaxtyping)."""

from jaxtyping import Array, Float, PyTree

Inputs = Float[Array, "n d_in"]
Targets = Float[Array, "n d_out"]
Outputs = Float[Array, "n d_out"]
Matrix = Float[Array, "rows cols"]
Scalar = Float[Array, ""]
Times = Float[Array, " t"]

__all__ = ["Array", "Float", "PyTree", "Inputs", "Targets", "Outputs", "Matrix", "Scalar", "Times"]
