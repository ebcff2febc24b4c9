"""`python -m chronos.eval +exp=loko`: runs chronos.pipeline.eval (the same configs as train)."""

from chronos.pipeline.eval import main

if __name__ == "__main__":
    main()
