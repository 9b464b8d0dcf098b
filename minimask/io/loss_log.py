"""``read_loss_log``: the records of a training log, from its JSON-lines file or a list.

The trainer appends one JSON object per step to RUN/metrics.jsonl ("step", "lr", "loss",
the loss terms, ...). Plotting it (``minimask.viz.draw_loss_curves``) or inspecting it in
a lesson starts here, from the file or from records already in memory.
"""

import json
import os


def read_loss_log(log):
    """The records of a training log: ``log`` a path to a JSON-lines file (one dict per
    line; blank lines skipped) or an iterable of dicts. Returns a list of dicts.

    A line that is not JSON raises a ValueError naming the file and the line number."""
    if isinstance(log, (str, os.PathLike)):
        records = []
        with open(log, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{log}: line {number} is not JSON: {e}") from e
        return records
    return [dict(r) for r in log]
