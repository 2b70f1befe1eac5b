"""The glute activation circuit: the steps the device cues and the dashboard shows."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DrillStep:
    key: str
    title: str
    how: str
    reps: str
    off_seat: bool = True  # done on the floor or standing: the seat must be empty


CIRCUIT: tuple[DrillStep, ...] = (
    DrillStep(
        "setup",
        "Bands on",
        "One band around the lower thighs, one around the ankles. Keep the legs apart so "
        "the bands stay under tension.",
        "",
        off_seat=False,
    ),
    DrillStep(
        "glute_bridge",
        "Glute bridges",
        "On your back, drive the pelvis up and squeeze the glutes hard at the top. "
        "Do not arch the lower back.",
        "5-10 reps",
    ),
    DrillStep(
        "clams",
        "Clams",
        "On your side, knees apart, ankles together. Feel it in the outer glute.",
        "5-10 reps per side",
    ),
    DrillStep(
        "reverse_clams",
        "Reverse clams",
        "On your side, knees together, ankles apart.",
        "5-10 reps per side",
    ),
    DrillStep(
        "athletic_stance",
        "Athletic stance",
        "Stand with the pelvis neutral, legs apart against the bands, knees not collapsing in.",
        "",
    ),
    DrillStep(
        "band_walks",
        "Band walks",
        "Small steps: 5 to one side, 5 back, then 5 forwards and 5 backwards.",
        "5 steps each way",
    ),
)
