"""A PNG of a fine-tuning run's curves (drawn with OpenCV, a dependency already): training loss per
step (log scale, with a running mean) on the left, validation PSNR on the right."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from dainctl.models.weights import write_file_atomically

PANEL_W, PANEL_H, MARGIN = 520, 360, 56
WHITE, GREY, BLACK = (255, 255, 255), (200, 200, 200), (30, 30, 30)
BLUE, ORANGE, GREEN = (200, 110, 30), (40, 140, 250), (60, 160, 60)


def _running_mean(values: list[float], width: int) -> list[float]:
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= width:
            total -= values[i - width]
        out.append(total / min(i + 1, width))
    return out


def _panel(title: str, xs: list[float], series: list[tuple[list[float], tuple]], log_scale: bool, unit: str) -> np.ndarray:
    image = np.full((PANEL_H, PANEL_W, 3), WHITE, np.uint8)
    cv2.putText(image, title, (MARGIN, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.55, BLACK, 1, cv2.LINE_AA)
    left, top, right, bottom = MARGIN, 40, PANEL_W - 16, PANEL_H - 36
    cv2.rectangle(image, (left, top), (right, bottom), GREY, 1)
    values = [v for ys, _ in series for v in ys if v is not None and math.isfinite(v) and (v > 0 or not log_scale)]
    if not xs or not values:
        cv2.putText(image, "no data", (left + 10, top + 30), cv2.FONT_HERSHEY_SIMPLEX, 0.5, BLACK, 1, cv2.LINE_AA)
        return image
    transform = math.log10 if log_scale else (lambda v: v)
    low, high = transform(min(values)), transform(max(values))
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    x_low, x_high = min(xs), max(xs)
    x_span = max(x_high - x_low, 1e-9)

    def point(x, y):
        px = left + (x - x_low) / x_span * (right - left)
        py = bottom - (transform(y) - low) / (high - low) * (bottom - top)
        return int(round(px)), int(round(py))

    for ys, colour in series:
        points = [point(x, y) for x, y in zip(xs, ys) if y is not None and math.isfinite(y) and (y > 0 or not log_scale)]
        if len(points) == 1:
            cv2.circle(image, points[0], 3, colour, -1, cv2.LINE_AA)
        elif points:
            cv2.polylines(image, [np.array(points, np.int32)], False, colour, 1, cv2.LINE_AA)
            for p in points if len(points) <= 40 else []:
                cv2.circle(image, p, 2, colour, -1, cv2.LINE_AA)
    for value, y in ((max(values), top), (min(values), bottom)):
        cv2.putText(image, f"{value:.4g}{unit}", (4, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.38, BLACK, 1, cv2.LINE_AA)
    for value, x in ((x_low, left), (x_high, right - 40)):
        cv2.putText(image, f"step {value:g}", (x, bottom + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.38, BLACK, 1, cv2.LINE_AA)
    return image


def plot_curves(history: list[dict], start_val_psnr: float, destination: Path) -> None:
    """Write the two panels side by side to `destination` (PNG, atomically)."""
    steps = [r["step"] for r in history]
    losses = [r["loss"] for r in history]
    loss_panel = _panel("training loss (Charbonnier, log scale)", steps,
                        [(losses, BLUE), (_running_mean(losses, 20), ORANGE)], True, "")
    val = [(0, start_val_psnr)] + [(r["step"], r["val_psnr"]) for r in history if "val_psnr" in r]
    val_panel = _panel("validation PSNR (held-out triplets)", [s for s, _ in val], [([v for _, v in val], GREEN)],
                       False, " dB")
    ok, encoded = cv2.imencode(".png", np.concatenate((loss_panel, val_panel), axis=1))
    if ok:
        write_file_atomically(encoded.tobytes(), destination)
