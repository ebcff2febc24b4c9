"""Launch conditions every measurement path shares: the GPU harness, the backends, the cost model.

A module of constants with no imports, so that the cost model (chronos.measure.costmodel) and the
harness (chronos.measure.harness) both import it downward instead of one importing the other.
"""

L2_MODES = ("cold", "hot")
"""The L2 state before each timed launch: flushed ("cold", a write of twice the L2 size) or left
as the previous launch of the same kernel left it ("hot")."""
