"""The pipeline stages chronos.eval owns (LOKO, report), bundled for `chronos.pipeline.run`."""

from __future__ import annotations

from chronos.eval.loko import loko, run_loko
from chronos.eval.report import write_report
from chronos.pipeline import EvalStages

EVAL_STAGES = EvalStages(loko=loko, run_loko=run_loko, write_report=write_report)
