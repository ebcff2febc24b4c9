"""Per-epoch metrics to CSV (one file per stream) and TensorBoard, resumable.

Metric names follow CleanRL's grouping (`charts/*`, `losses/*`, `perf/*`, `monitors/*`).
On resume, rows past the checkpoint's epoch are dropped from the CSVs and TensorBoard purges
its events from that step, so re-run epochs are not plotted twice.
"""

from __future__ import annotations

import csv
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter


class MetricsLogger:
    """`log("train", epoch, {...})` appends a row to `train.csv` and scalars to TensorBoard."""

    def __init__(
        self, run_dir: str | Path, resume_after: int | None = None, tensorboard: bool = True
    ):
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._columns: dict[str, list[str]] = {}
        if resume_after is not None:
            for path in self.dir.glob("*.csv"):
                self._truncate(path, resume_after)
        purge = resume_after + 1 if resume_after is not None else None
        self.writer = SummaryWriter(str(self.dir / "tb"), purge_step=purge) if tensorboard else None

    def csv_path(self, stream: str) -> Path:
        return self.dir / f"{stream}.csv"

    @staticmethod
    def _truncate(path: Path, after: int) -> None:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
            header = rows[0].keys() if rows else None
        if header is None:
            return
        keep = [r for r in rows if int(float(r["epoch"])) <= after]
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(header))
            w.writeheader()
            w.writerows(keep)

    def _header(self, stream: str) -> list[str] | None:
        if stream not in self._columns:
            path = self.csv_path(stream)
            if path.exists() and path.stat().st_size:
                with path.open(newline="") as f:
                    self._columns[stream] = next(csv.reader(f))
        return self._columns.get(stream)

    def log(self, stream: str, epoch: int, metrics: dict[str, float]) -> None:
        row = {"epoch": epoch, **metrics}
        path = self.csv_path(stream)
        header = self._header(stream)
        if header is None or not set(row) <= set(header):
            known = header or ["epoch"]
            self._rewrite(stream, [*known, *(k for k in row if k not in known)])
            header = self._columns[stream]
        with path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=header).writerow(row)
        if self.writer is not None:
            for k, v in metrics.items():
                self.writer.add_scalar(k if "/" in k else f"{stream}/{k}", float(v), epoch)

    def _rewrite(self, stream: str, header: list[str]) -> None:
        """Widen a CSV's header (a metric appeared later in the run); old rows keep blanks."""
        path = self.csv_path(stream)
        rows: list[dict[str, str]] = []
        if path.exists() and path.stat().st_size:
            with path.open(newline="") as f:
                rows = list(csv.DictReader(f))
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=header)
            w.writeheader()
            w.writerows(rows)
        self._columns[stream] = header

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_csv(path: str | Path) -> list[dict[str, float]]:
    """A metrics CSV as a list of rows of floats (blank cells dropped)."""
    with Path(path).open(newline="") as f:
        return [
            {k: float(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(f)
        ]
