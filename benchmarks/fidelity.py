"""How well the `emulated` cost model ranks what a GPU measured: the model's fidelity check.

    python benchmarks/fidelity.py --store PATH [--arch sm_89] [--depth 2] [--backend cupy]

The code is chronos.pipeline.validate.fidelity (the validation run's `fidelity` step runs it
too); see its docstring for what is printed.
"""

from chronos.pipeline.validate.fidelity import main

if __name__ == "__main__":
    main()
