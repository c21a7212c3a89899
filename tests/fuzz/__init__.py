"""Property-based fuzz (hypothesis) of what the CCM reads: XO bodies, SSE frames, Nodes."""
