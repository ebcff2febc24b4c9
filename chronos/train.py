"""`python -m chronos.train`: runs chronos.pipeline.train (`--help` lists the options)."""

from chronos.pipeline.train import main

if __name__ == "__main__":
    main()
