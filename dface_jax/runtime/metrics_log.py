"""Training metrics: ``WORKDIR/metrics.jsonl`` (one JSON object a line) and TensorBoard events.

The JSONL file is the record the analysis code and tests read; TensorBoard events
(``WORKDIR/tensorboard/``, written by tensorboardX, which needs no TensorFlow) are for
watching a run. Only process 0 writes, so a multi-host job logs once. On resume the file is
appended to, after dropping lines of steps beyond the restored step (those steps are re-run).
"""

from __future__ import annotations

import json
import math
import pathlib
from typing import Mapping

import jax

METRICS_FILE = "metrics.jsonl"


def _to_python(value):
    value = float(value) if not isinstance(value, (int, str)) else value
    return value


def read_metrics(workdir: str | pathlib.Path) -> list[dict]:
    """All records of ``WORKDIR/metrics.jsonl``, in order."""
    path = pathlib.Path(workdir) / METRICS_FILE
    records = []
    for line_number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}, line {line_number}: not a JSON object ({err})") from None
    return records


class MetricsWriter:
    """Appends ``{"step": step, **scalars}`` to metrics.jsonl and to TensorBoard.

    Args:
      workdir: the run's directory.
      resume_step: when resuming from a checkpoint at this step, lines with ``step >
        resume_step`` (logged after that checkpoint by the interrupted run) are removed.
      tensorboard: also write TensorBoard events.
    """

    def __init__(self, workdir: str | pathlib.Path, *, resume_step: int | None = None,
                 tensorboard: bool = True):
        self.workdir = pathlib.Path(workdir)
        self.enabled = jax.process_index() == 0
        self.path = self.workdir / METRICS_FILE
        self._tb = None
        if not self.enabled:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            kept = [r for r in read_metrics(self.workdir)
                    if resume_step is not None and r.get("step", 0) <= resume_step]
            self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        if tensorboard:
            from tensorboardX import SummaryWriter  # imported lazily: it is slow to import
            self._tb = SummaryWriter(str(self.workdir / "tensorboard"), purge_step=resume_step)
        self._file = self.path.open("a")

    def write(self, step: int, scalars: Mapping[str, float]) -> dict:
        """Logs one record; values become Python floats (NaN is written as the string "nan",
        since JSON has no NaN). Returns the record."""
        record = {"step": int(step)}
        for name, value in scalars.items():
            value = _to_python(value)
            record[name] = "nan" if isinstance(value, float) and math.isnan(value) else value
        if self.enabled:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
            if self._tb is not None:
                for name, value in record.items():
                    if name != "step" and isinstance(value, (int, float)):
                        self._tb.add_scalar(name, value, int(step))
        return record

    def close(self) -> None:
        if self.enabled:
            self._file.close()
            if self._tb is not None:
                self._tb.close()
