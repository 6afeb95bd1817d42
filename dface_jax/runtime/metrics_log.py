"""Training metrics: ``WORKDIR/metrics.jsonl`` (one JSON object a line) and TensorBoard events.

The JSONL file is the record the analysis code and tests read; TensorBoard events
(``WORKDIR/tensorboard/``, written by tensorboardX, which needs no TensorFlow) are for
watching a run, and are written for local workdirs only (tensorboardX's ``gs://`` writer
re-uploads a growing object with the google-cloud-storage client; metrics.jsonl holds the
same scalars). Only process 0 writes, so a multi-host job logs once.

Resume and kills. Lines are appended and flushed one at a time, so a kill loses at most the
line being written; :func:`read_metrics` skips a torn last line (and only the last).
On resume, the lines of steps beyond the restored checkpoint (logged by the interrupted run
after its last save, and about to be logged again) are dropped by writing the kept lines
to a new file that replaces the old one atomically, never by truncating it in place.
Values are strict JSON: NaN and infinities are written as the strings "nan", "inf", "-inf".
On object storage, where an object cannot be appended to, the whole file is rewritten
(one upload) at every record; metrics files are small.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Mapping

import jax

from data_pipelines import storage

METRICS_FILE = "metrics.jsonl"
logger = logging.getLogger(__name__)


def _parse(lines: list[str], path) -> list[dict]:
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            if number == len(lines):  # the line a killed run was writing
                logger.warning("%s, line %d: torn last line dropped", path, number)
                break
            raise ValueError(f"{path}, line {number}: not a JSON object ({err})") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path}, line {number}: expected a JSON object, got {record!r}")
        records.append(record)
    return records


def read_metrics(workdir: str | os.PathLike) -> list[dict]:
    """All records of ``WORKDIR/metrics.jsonl``, in order ([] if there is none)."""
    path = storage.as_path(workdir) / METRICS_FILE
    if not path.exists():
        return []
    return _parse(path.read_text().splitlines(), path)


class MetricsWriter:
    """Appends ``{"step": step, **scalars}`` to metrics.jsonl and to TensorBoard.

    Args:
      workdir: the run's directory.
      resume_step: when resuming from a checkpoint at this step, lines with ``step >
        resume_step`` are dropped (see the module docstring); None starts a new file.
      tensorboard: also write TensorBoard events (local workdirs only).
    """

    def __init__(self, workdir: str | os.PathLike, *, resume_step: int | None = None,
                 tensorboard: bool = True):
        self.workdir = storage.as_path(workdir)
        self.enabled = jax.process_index() == 0
        self.path = self.workdir / METRICS_FILE
        self._tb = None
        if not self.enabled:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._lines = [storage.dumps_json(r) + "\n" for r in read_metrics(self.workdir)
                       if resume_step is not None and r.get("step", 0) <= resume_step]
        storage.write_text_atomic(self.path, "".join(self._lines))
        if tensorboard and storage.is_local(self.workdir):
            from tensorboardX import SummaryWriter  # imported lazily: it is slow to import
            self._tb = SummaryWriter(str(self.workdir / "tensorboard"), purge_step=resume_step)
        self._file = self.path.open("a") if storage.is_local(self.path) else None

    def write(self, step: int, scalars: Mapping[str, float]) -> dict:
        """Logs one record; values become Python numbers (non-finite ones strings). Returns
        the record."""
        record = {"step": int(step)}
        for name, value in scalars.items():
            record[name] = value if isinstance(value, (int, str)) else float(value)
        record = storage.json_safe(record)
        if self.enabled:
            line = storage.dumps_json(record) + "\n"
            if self._file is not None:
                self._file.write(line)
                self._file.flush()
            else:
                self._lines.append(line)
                storage.write_text_atomic(self.path, "".join(self._lines))
            if self._tb is not None:
                for name, value in record.items():
                    if name != "step" and isinstance(value, (int, float)):
                        self._tb.add_scalar(name, value, int(step))
        return record

    def close(self) -> None:
        if self.enabled:
            if self._file is not None:
                self._file.close()
            if self._tb is not None:
                self._tb.close()
