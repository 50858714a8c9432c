"""Multi-view fusion (issue 44): the views of one instant, filmed by several calibrated cameras, fused into
triangulated 3D labels. `triangulation`: the maths (pure functions, tested with known answers)."""
