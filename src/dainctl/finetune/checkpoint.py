"""The checkpoint folder of a fine-tuning run: `OUT.dainctl-finetune/` beside the output.

    step-0000200.safetensors   the weights at step 200 (float32 master weights; `interpolate --engine
                               dain --weights` and `convert` read it as they read the final output)
    step-0000200.state.pt      optimiser, LR schedule, loss scaler, step, random states, history
    latest.json                {"step": 200, "weights": ..., "state": ..., "settings_digest": ...}

Every file is written beside its name and renamed into place, and `latest.json` is renamed last, so a
crash, `kill -9` or a full disk at any moment leaves the previous checkpoint intact and named by
`latest.json`; files of older steps are removed only after it names the new ones.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from dainctl import __version__
from dainctl.errors import UsageError, WeightsError
from dainctl.models.weights import ARCHITECTURE_ID, write_file_atomically, write_weights_file

SUFFIX = ".dainctl-finetune"
LATEST = "latest.json"


def job_folder_for(output: Path) -> Path:
    return output.with_name(output.name + SUFFIX)


def weights_metadata(step: int, settings_digest: str, source: str) -> dict[str, str]:
    return {"format": "dainctl-weights", "architecture": ARCHITECTURE_ID, "dtype": "fp32",
            "dainctl_version": __version__, "finetune_step": str(step), "finetune_settings": settings_digest,
            "source_name": source}


def weights_of(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The module's state_dict as contiguous CPU tensors (float32 master weights, buffers as they are)."""
    return {name: tensor.detach().to("cpu").contiguous() for name, tensor in module.state_dict().items()}


@dataclass
class Checkpoint:
    step: int
    weights: Path
    state: dict


class CheckpointFolder:
    def __init__(self, output: Path):
        self.path = job_folder_for(output)

    def exists(self) -> bool:
        return (self.path / LATEST).exists()

    def save(self, step: int, weights: dict[str, torch.Tensor], state: dict, settings_digest: str, source: str) -> Path:
        """Write the checkpoint of `step`; returns its weights file."""
        self.path.mkdir(parents=True, exist_ok=True)
        stem = f"step-{step:07d}"
        weights_path = self.path / f"{stem}.safetensors"
        state_path = self.path / f"{stem}.state.pt"
        write_weights_file(weights, weights_metadata(step, settings_digest, source), weights_path)
        buffer = io.BytesIO()
        torch.save(state, buffer)
        write_file_atomically(buffer.getvalue(), state_path)
        latest = {"step": step, "weights": weights_path.name, "state": state_path.name,
                  "settings_digest": settings_digest}
        write_file_atomically(json.dumps(latest, indent=1).encode(), self.path / LATEST)
        for old in self.path.glob("step-*"):
            if old.name not in (weights_path.name, state_path.name):
                old.unlink(missing_ok=True)
        return weights_path

    def latest_weights(self) -> Path:
        """The weights file `latest.json` names."""
        return self.path / json.loads((self.path / LATEST).read_text())["weights"]

    def load(self, settings_digest: str, describe_difference) -> Checkpoint:
        """The latest checkpoint. Raises `UsageError` when it was made with other settings
        (`describe_difference(saved_settings)` names what differs) and `WeightsError` when damaged."""
        try:
            latest = json.loads((self.path / LATEST).read_text())
            state = torch.load(self.path / latest["state"], map_location="cpu", weights_only=True)
        except (OSError, ValueError, KeyError, RuntimeError) as error:
            raise WeightsError(f"the checkpoint in {self.path} is damaged ({error}); use --overwrite to start over") from None
        if state.get("settings_digest") != settings_digest or latest.get("settings_digest") != settings_digest:
            raise UsageError(
                f"the checkpoint in {self.path} was made with other settings ({describe_difference(state.get('settings', {}))}); "
                "run with the same options to resume it, or with --overwrite to start over"
            )
        return Checkpoint(int(latest["step"]), self.path / latest["weights"], state)
