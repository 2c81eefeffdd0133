"""The fine-tuning loop: DAIN on triplets of the user's clips, in the precision policy of inference.

    settings = FinetuneSettings(clips=(...), weights=..., output=..., steps=1000)
    summary = train(settings, rank=0, world=1, reporter=Reporter())

One step (as the original `train.py` trains, at t = 0.5):
  * a global batch of `batch` random triplets is drawn from one seeded sampler that every process
    shares (a process of a distributed run takes its slice, so N processes see the same global batch
    as one); `accumulate` such batches per step with their gradients summed;
  * the forward runs under `PrecisionPolicy.compute()` (fp16 autocast on CUDA, bf16 autocast or
    float32 on the CPU), with the policy's float32 regions as at inference, float32 master weights;
  * loss: Charbonnier `mean(sqrt((out - mid)^2 + eps^2))` on the rectified frame (the original's
    alpha = [0, 1]);
  * fp16: `torch.amp.GradScaler` (dynamic loss scaling; steps whose gradients overflow are skipped and
    the scale backs off, counted as `skipped_steps` / `scale_backoffs`; `scale_growths` counts raises);
  * gradient clipping on the global norm (`grad_clip`; 0 turns it off; a non-finite norm skips the
    step in every precision);
  * Adamax with per-sub-network learning-rate factors (`LR_FACTORS`, the original fine-tuning's:
    PWC-Net 0.01, MegaDepth 0.001, the rest 1), lowered by `PLATEAU_FACTOR` after `PLATEAU_PATIENCE`
    validations without a better validation loss.
Only the sub-networks in `train` learn (default: all but PWC-Net and MegaDepth, as the original
fine-tuning); the others are frozen in eval mode (their BatchNorm statistics do not move).

Checkpoints (`checkpoint.CheckpointFolder`) every `checkpoint_every` steps, at the end and on Ctrl-C or
SIGTERM (between steps: the signal is noted and the step in progress finishes first; a second one
stops at once). A resumed run restores weights, optimiser, schedule, scaler and random states, so it
continues with the losses the uninterrupted run has.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from dainctl.errors import StoppedWithCheckpoint, UsageError
from dainctl.finetune import distributed
from dainctl.finetune.checkpoint import CheckpointFolder, weights_of
from dainctl.finetune.data import ClipTriplets, TripletSampler, check_clips, read_clip, validation_items
from dainctl.models.dain import DAIN
from dainctl.models.padding import crop_padding, pad_frames, padding_for
from dainctl.models.weights import load_dain_weights, load_into_model, sha256_of_file
from dainctl.precision import PrecisionPolicy

# --train names -> the checkpoint's sub-network prefixes.
SUBNETWORKS = {
    "pwc": ("flownets",),
    "depth": ("depthNet",),
    "kernel": ("initScaleNets_filter", "initScaleNets_filter1", "initScaleNets_filter2"),
    "context": ("ctxNet",),
    "rectifier": ("rectifyNet",),
}
LR_FACTORS = {"pwc": 0.01, "depth": 0.001, "kernel": 1.0, "context": 1.0, "rectifier": 1.0}
DEFAULT_TRAIN = ("kernel", "context", "rectifier")
DEFAULT_LR = 5e-4  # the original's fine-tuning command (lr and rectify_lr 0.0005)
CHARBONNIER_EPS = 1e-6
PLATEAU_FACTOR = 0.2
PLATEAU_PATIENCE = 4
TIME = 0.5


def parse_train(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [name for name in names if name not in SUBNETWORKS]
    if unknown or not names:
        raise UsageError(f"--train takes a comma-separated list of {', '.join(SUBNETWORKS)}; got {text!r}")
    return tuple(name for name in SUBNETWORKS if name in names)


def charbonnier(output: torch.Tensor, target: torch.Tensor, eps: float = CHARBONNIER_EPS) -> torch.Tensor:
    """mean(sqrt((output - target)^2 + eps^2)), computed in float32."""
    diff = output.float() - target.float()
    return torch.sqrt(diff * diff + eps * eps).mean()


def psnr(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per item PSNR in dB of frames in [0, 1] (output clipped), float32."""
    mse = (output.float().clamp(0, 1) - target.float()).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(1.0 / mse.clamp_min(1e-12))


@dataclass(frozen=True)
class FinetuneSettings:
    clips: tuple[Path, ...]
    weights: Path
    output: Path
    steps: int = 1000
    batch: int = 4
    crop: int = 256
    lr: float = DEFAULT_LR
    precision: str = "fp32"  # resolved: what the policy runs
    device: str = "cpu"  # resolved
    train: tuple[str, ...] = DEFAULT_TRAIN
    val_every: int = 100
    val_items: int = 16
    checkpoint_every: int = 100
    accumulate: int = 1
    grad_clip: float = 1.0
    seed: int = 0
    world: int = 1
    scene_threshold: float | None = 0.3
    dedup_threshold: float = 8.0

    def identity(self) -> dict:
        """What decides the run's trajectory: a resumed run must match it (steps and the checkpoint
        interval may change)."""
        data = asdict(self)
        for name in ("steps", "checkpoint_every", "output"):
            data.pop(name)
        data["clips"] = [_file_identity(path) for path in self.clips]
        data["weights"] = [str(self.weights), sha256_of_file(self.weights)]
        data["device"] = torch.device(self.device).type
        data["train"] = list(self.train)
        return data


def _file_identity(path: Path) -> list:
    path = Path(path).resolve()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file())
        return [str(path), len(files), sum(p.stat().st_size for p in files)]
    stat = path.stat()
    return [str(path), stat.st_size, stat.st_mtime_ns]


def digest_of(identity: dict) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


def describe_difference(current: dict, saved: dict) -> str:
    names = sorted(key for key in set(current) | set(saved) if current.get(key) != saved.get(key))
    return "differs in " + ", ".join(names) if names else "unknown settings"


class Reporter:
    """What the CLI sees of a run (rank 0 only); the methods do nothing here. `step`'s record has step,
    loss, lr, loss_scale (None without loss scaling), steps_per_second, and val_psnr / val_loss on
    validation steps."""

    def clips(self, clips: list[ClipTriplets]) -> None:
        pass

    def start(self, step: int, steps: int) -> None:
        """Training begins at `step` (0, or where a resumed run stopped) of `steps`."""

    def step(self, record: dict) -> None:
        pass

    def close(self) -> None:
        """The run ended (finished, failed or stopped)."""


@dataclass
class Counters:
    skipped_steps: int = 0
    scale_growths: int = 0
    scale_backoffs: int = 0


@dataclass
class Summary:
    output: Path
    checkpoint_folder: Path
    steps: int
    resumed_from: int | None
    start_val_psnr: float
    final_val_psnr: float
    start_val_loss: float
    final_val_loss: float
    final_loss: float | None
    elapsed_seconds: float
    precision: str
    device: str
    world: int
    train: tuple[str, ...]
    counters: dict
    clips: list[dict]
    history: list[dict] = field(repr=False, default_factory=list)


class _StopRequest:
    """Ctrl-C / SIGTERM noted between steps; a second signal raises at once. (A worker of `--nproc` may
    get the same Ctrl-C twice, from the terminal and from its parent, moments apart: a repeat within
    `REPEAT_SECONDS` counts as the first.)"""

    REPEAT_SECONDS = 2.0

    def __init__(self):
        self.requested: int | None = None
        self._at = 0.0

    @contextlib.contextmanager
    def installed(self):
        import threading

        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

        def note(signum, frame):
            if self.requested is not None:
                if time.monotonic() - self._at > self.REPEAT_SECONDS:
                    raise KeyboardInterrupt()
                return
            self.requested = signum
            self._at = time.monotonic()

        for sig in previous:
            if previous[sig] != signal.SIG_IGN:
                signal.signal(sig, note)
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def build_model(settings: FinetuneSettings, policy: PrecisionPolicy) -> DAIN:
    """DAIN with the starting weights, float32 master weights on the device; only `train` learns."""
    model = DAIN()
    load_into_model(model, load_dain_weights(settings.weights).state_dict)
    model = policy.prepare(model.to(settings.device))
    for name, prefixes in SUBNETWORKS.items():
        for prefix in prefixes:
            getattr(model, prefix).requires_grad_(name in settings.train)
    _frozen_modes(model, settings)
    return model


def _parameter_groups(model: DAIN, settings: FinetuneSettings) -> list[dict]:
    groups = []
    for name in settings.train:
        params = [p for prefix in SUBNETWORKS[name] for p in getattr(model, prefix).parameters()]
        groups.append({"params": params, "lr": settings.lr * LR_FACTORS[name], "name": name})
    return groups


def _frozen_modes(model: DAIN, settings: FinetuneSettings) -> None:
    """Train mode for the sub-networks that learn, eval mode (BatchNorm statistics fixed) for the rest."""
    for name, prefixes in SUBNETWORKS.items():
        for prefix in prefixes:
            getattr(model, prefix).train(name in settings.train)


class _Padded:
    """Pads crops to what DAIN needs (multiples of 64, compact: nothing for 64-multiples) and crops back."""

    def __init__(self, crop: int):
        self.padding = padding_for(crop, crop, "compact")

    def __call__(self, network, frame0: torch.Tensor, frame1: torch.Tensor) -> torch.Tensor:
        out = network(pad_frames(frame0, self.padding), pad_frames(frame1, self.padding), [TIME])[0]
        return crop_padding(out, self.padding)


class Learner:
    """The model, optimiser, LR schedule and loss scaler of a run, and one optimiser step.

    network: `model`, or its DistributedDataParallel wrapper in a distributed run.
    """

    def __init__(self, settings: FinetuneSettings, policy: PrecisionPolicy, model: DAIN | None = None):
        self.settings = settings
        self.policy = policy
        self.model = model if model is not None else build_model(settings, policy)
        self.network = self.model
        if settings.world > 1:
            devices = [torch.cuda.current_device()] if policy.device_type == "cuda" else None
            self.network = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=devices, broadcast_buffers=False)
        self.padded = _Padded(settings.crop)
        self.optimizer = torch.optim.Adamax(_parameter_groups(self.model, settings), lr=settings.lr, betas=(0.9, 0.999), eps=1e-8)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, mode="min", factor=PLATEAU_FACTOR,
                                                                    patience=PLATEAU_PATIENCE)
        self.scaler = torch.amp.GradScaler(policy.device_type, enabled=policy.name == "fp16")
        self.counters = Counters()
        self.trainable = [p for group in self.optimizer.param_groups for p in group["params"]]

    def forward(self, network, frame0: torch.Tensor, frame1: torch.Tensor) -> torch.Tensor:
        with self.policy.compute():
            return self.padded(network, frame0, frame1)

    def step(self, batches: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> float:
        """One optimiser step over `batches` (the gradient-accumulation batches of this process, each
        (frame0, middle, frame1) on the device); returns this process's mean loss."""
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for index, (frame0, middle, frame1) in enumerate(batches):
            last = index == len(batches) - 1
            sync = contextlib.nullcontext() if self.network is self.model or last else self.network.no_sync()
            with sync:
                loss = charbonnier(self.forward(self.network, frame0, frame1), middle)
                self.scaler.scale(loss / len(batches)).backward()
            total += float(loss.detach())
        self.scaler.unscale_(self.optimizer)
        clip = self.settings.grad_clip if self.settings.grad_clip > 0 else math.inf
        norm = torch.nn.utils.clip_grad_norm_(self.trainable, clip)
        before = self.scaler.get_scale()
        if self.scaler.is_enabled() or bool(torch.isfinite(norm)):
            self.scaler.step(self.optimizer)  # the scaler itself skips a step whose gradients overflowed
        else:
            self.counters.skipped_steps += 1
        self.scaler.update()
        after = self.scaler.get_scale()
        if after < before:
            self.counters.skipped_steps += 1
            self.counters.scale_backoffs += 1
        elif after > before:
            self.counters.scale_growths += 1
        return total / len(batches)

    @property
    def loss_scale(self) -> float | None:
        return self.scaler.get_scale() if self.scaler.is_enabled() else None

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(), "counters": asdict(self.counters)}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.counters = Counters(**state["counters"])


def train(settings: FinetuneSettings, *, rank: int = 0, reporter: Reporter | None = None,
          resume: bool = False) -> Summary | None:
    """Run (or resume) fine-tuning; returns the summary on rank 0 (None elsewhere). Raises
    `StoppedWithCheckpoint` on Ctrl-C / SIGTERM after saving, and `DainctlError`s for bad input."""
    reporter = reporter or Reporter()
    try:
        return _train(settings, rank, reporter, resume)
    finally:
        if rank == 0:
            reporter.close()


def _train(settings: FinetuneSettings, rank: int, reporter: Reporter, resume: bool) -> Summary | None:
    world = settings.world
    lead = rank == 0
    began = time.perf_counter()
    policy = PrecisionPolicy(settings.precision, torch.device(settings.device).type)
    identity = settings.identity()
    digest = digest_of(identity)
    folder = CheckpointFolder(settings.output)
    checkpoint = folder.load(digest, lambda saved: describe_difference(identity, saved)) if resume and folder.exists() else None

    clips = [read_clip(path, crop=settings.crop, scene_threshold=settings.scene_threshold,
                       dedup_threshold=settings.dedup_threshold) for path in settings.clips]
    check_clips(clips)
    if lead:
        reporter.clips(clips)
    sampler = TripletSampler(clips, settings.crop, seed=settings.seed)
    validation = validation_items(clips, settings.crop, settings.val_items)

    torch.manual_seed(settings.seed)
    learner = Learner(settings, policy)
    model = learner.model
    history: list[dict] = []
    step = 0
    start_val: dict | None = None
    if checkpoint is not None:
        load_into_model(model, load_dain_weights(checkpoint.weights).state_dict)
        state = checkpoint.state
        learner.load_state_dict(state["learner"])
        sampler.set_state(state["sampler"])
        torch.set_rng_state(state["torch_rng"])
        history = list(state["history"])
        start_val = state["start_validation"]
        step = checkpoint.step
    per_rank = settings.batch // world

    def validate() -> dict:
        model.eval()
        sums = torch.zeros(3, dtype=torch.float64)
        with torch.no_grad():
            for frame0, middle, frame1 in validation[rank::world]:
                out = learner.forward(model, frame0.to(settings.device), frame1.to(settings.device))
                target = middle.to(settings.device)
                sums += torch.tensor([float(psnr(out, target).sum()), float(charbonnier(out, target)), 1.0],
                                     dtype=torch.float64)
        _frozen_modes(model, settings)
        sums = distributed.all_reduce_sum(sums)
        return {"val_psnr": float(sums[0] / sums[2]), "val_loss": float(sums[1] / sums[2])}

    def save(at: int) -> None:
        if lead:
            state = {"step": at, "settings_digest": digest, "settings": identity, "learner": learner.state_dict(),
                     "sampler": sampler.state, "torch_rng": torch.get_rng_state(), "history": history,
                     "start_validation": start_val}
            folder.save(at, weights_of(model), state, digest, Path(settings.weights).name)
        distributed.barrier()

    if start_val is None:
        start_val = validate()
    if lead:
        reporter.start(step, settings.steps)
    stop = _StopRequest()
    last_saved = step if checkpoint is not None else None
    window_start, window_steps = time.perf_counter(), 0
    with stop.installed():
        while step < settings.steps:
            if distributed.any_flag(stop.requested is not None):
                save(step)
                where = folder.path
                raise StoppedWithCheckpoint(
                    f"{'terminated' if stop.requested == signal.SIGTERM else 'interrupted'} after step {step}; "
                    f"checkpoint saved in {where}; run the same command with --resume to continue")
            part = slice(rank * per_rank, (rank + 1) * per_rank)
            batches = [tuple(t[part].to(settings.device) for t in sampler.batch(settings.batch))
                       for _ in range(settings.accumulate)]
            loss_sum = torch.tensor(learner.step(batches), dtype=torch.float64)
            step += 1
            window_steps += 1
            loss_value = float(distributed.all_reduce_sum(loss_sum) / world)
            now = time.perf_counter()
            record = {"step": step, "loss": loss_value, "lr": learner.optimizer.param_groups[0]["lr"],
                      "loss_scale": learner.loss_scale,
                      "steps_per_second": window_steps / max(now - window_start, 1e-9)}
            if step % settings.val_every == 0 or step == settings.steps:
                record.update(validate())
                learner.scheduler.step(record["val_loss"])
            history.append(record)
            if lead:
                reporter.step(record)
            if step % settings.checkpoint_every == 0 or step == settings.steps:
                save(step)
                last_saved = step
    if last_saved != step:
        save(step)
    final_val = next((r for r in reversed(history) if "val_psnr" in r), None) or validate()
    if not lead:
        return None
    losses = [r["loss"] for r in history]
    return Summary(
        output=settings.output, checkpoint_folder=folder.path, steps=step,
        resumed_from=checkpoint.step if checkpoint is not None else None,
        start_val_psnr=start_val["val_psnr"], final_val_psnr=final_val["val_psnr"],
        start_val_loss=start_val["val_loss"], final_val_loss=final_val["val_loss"],
        final_loss=losses[-1] if losses else None, elapsed_seconds=time.perf_counter() - began,
        precision=policy.name, device=str(settings.device), world=world, train=settings.train,
        counters=asdict(learner.counters), clips=[clip.summary() for clip in clips], history=history,
    )


def configure_threads(world: int) -> int:
    threads = max(1, (os.cpu_count() or 1) // world)
    torch.set_num_threads(threads)
    return threads
