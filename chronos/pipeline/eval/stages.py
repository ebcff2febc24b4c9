"""The pipeline stages chronos.pipeline.eval owns (LOKO, report), bundled for the runner."""

from __future__ import annotations

from chronos.pipeline.eval.loko import loko, run_loko
from chronos.pipeline.eval.report import write_report
from chronos.pipeline.stages import EvalStages

EVAL_STAGES = EvalStages(loko=loko, run_loko=run_loko, write_report=write_report)
