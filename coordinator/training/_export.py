"""Write a stored model in Accord's portable format, ``accord-model/1``.

The file is a ZIP archive (readable with any zip tool and numpy alone):

- ``model.json`` -- UTF-8 JSON: ``format`` (``"accord-model/1"``), ``job_id``,
  ``app`` (``name``, ``digest``), ``dataset``, ``features``, ``label``,
  ``input_names`` (the model's inputs after encoding, in order: a numeric
  feature scaled from its declared bounds to [-1, 1], ``column=value`` one-hot
  columns of declared categories, booleans as 0/1), ``arrays`` (``name``,
  ``dtype``, ``shape``, ``file`` of each parameter array, in order), and the
  provenance: ``federation``, ``strategy``, ``rounds``, ``train_config``,
  ``privacy_requested``, ``secure_aggregation``, ``nodes`` (per node: rounds
  contributed, zCDP ``rho`` charged, ``epsilon`` at the node's ``delta``, the
  noise multiplier and clipping norm it applied, the digest of the policy that
  allowed it), ``final_metrics``, ``created_at``, ``finished_at``;
- ``arrays/<name>.npy`` -- each parameter array in NumPy's ``.npy`` format
  (version 1.0, no pickles).

For the built-in logistic regression, ``p = 1 / (1 + exp(-(x . weights + bias)))``
with ``x`` encoded as ``input_names`` say.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from coordinator.training._store import ModelRecord
from coordinator.training._trainer import MODEL_FORMAT, arrays_from_npz


def export_model(model: ModelRecord, path: Path) -> dict[str, Any]:
    """Write ``model`` to ``path`` (``accord-model/1``); return its ``model.json``."""
    arrays = arrays_from_npz(model.arrays)
    manifest: dict[str, Any] = {
        **model.provenance,
        "format": MODEL_FORMAT,
        "arrays": [
            {
                "name": name,
                "dtype": str(array.dtype),
                "shape": list(array.shape),
                "file": f"arrays/{name}.npy",
            }
            for name, array in arrays.items()
        ],
    }
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "model.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n"
        )
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.save(buffer, array, allow_pickle=False)
            archive.writestr(f"arrays/{name}.npy", buffer.getvalue())
    tmp.replace(path)
    return manifest


def read_model(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray[Any, Any]]]:
    """Read an ``accord-model/1`` file: its ``model.json`` and arrays by name."""
    with zipfile.ZipFile(path) as archive:
        manifest: dict[str, Any] = json.loads(archive.read("model.json"))
        if manifest.get("format") != MODEL_FORMAT:
            raise ValueError(f"{path} is not an {MODEL_FORMAT} file")
        arrays = {
            entry["name"]: np.load(
                io.BytesIO(archive.read(entry["file"])), allow_pickle=False
            )
            for entry in manifest["arrays"]
        }
    return manifest, arrays
