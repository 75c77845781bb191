"""Mutation testing of WHAGO's hot modules (``python -m tests.mutation run MODULE...``).

Not collected by pytest (pyproject's norecursedirs): it plants one small bug at a time in a module,
runs the few test files that cover it, and reports the mutants no test noticed.
"""
