"""Join the saved states of consecutive parts of one recording into the state a single
analysis straight through would have reached: the fan-out's merge.

Each part was analysed on its own from its ``start_frame``, after a warm-up that gave
its filters the state they have there in a straight-through run (``warm_up``), and the
parts start on multiples of the 100 ms gating sub-block and of the silence window, so no
window straddles two parts. Then, per part in order:

- the K-weighted sub-block powers are concatenated (gating and LRA then run on the whole
  list, as straight through);
- counters are added, extremes and true peaks maximised;
- silence: the run a part starts with continues the previous part's trailing run;
- waveform: the parts' buckets lie on the recording's grid; a bucket cut by a part's
  start is joined (min of mins, max of maxes) with the previous part's last one.

Pure: plain state dicts in, a state dict out (``StreamingAnalyzer.restore`` takes it).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

# What every part must share with the others, as saved in its state.
_SAME = ("version", "samplerate", "channels", "expected_frames", "clip_level", "options", "layout")
_SUMMED = ("nan", "inf", "overflow", "samples", "clipped", "sum")


def merge_states(states: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The state of the parts ``states`` (in recording order) analysed as one."""
    if not states:
        raise ValueError("nothing to merge")
    _check_parts(states)
    channels = int(states[0]["channels"])
    merged = dict(states[-1])  # what carries on past the end is the last part's
    merged["start_frame"] = int(states[0].get("start_frame", 0))
    merged["frames"] = sum(int(state["frames"]) for state in states)
    merged["subblock_power"] = np.concatenate(
        [np.asarray(state["subblock_power"], dtype=np.float64) for state in states]
    )
    merged["silence_runs"], merged["leading_silence"] = _join_silence(states)
    starts = [int(state.get("start_frame", 0)) for state in states]
    merged["channel_states"] = [
        _join_channel([state["channel_states"][index] for state in states], starts)
        for index in range(channels)
    ]
    return merged


def _check_parts(states: Sequence[dict[str, Any]]) -> None:
    first = states[0]
    for previous, state in itertools.pairwise(states):
        for name in _SAME:
            if state.get(name) != first.get(name):
                raise ValueError(f"the parts differ in {name}")
        if int(state.get("start_frame", 0)) != int(previous.get("start_frame", 0)) + int(
            previous["frames"]
        ):
            raise ValueError("the parts are not consecutive")
        for channel in previous["channel_states"]:
            if channel["silence"]["fill"] or channel["subblocks"]["fill"]:
                raise ValueError("a part ends inside a silence window or a gating sub-block")


def _join_silence(states: Sequence[dict[str, Any]]) -> tuple[list[int], list[Any]]:
    silent = windows = unusable = longest = open_run = 0
    leading, leading_open = 0, True
    for state in states:
        part_silent, part_run, part_longest, part_windows, part_unusable = (
            int(value) for value in state["silence_runs"]
        )
        part_leading, part_leading_open = state.get("leading_silence", (0, False))
        silent += part_silent
        windows += part_windows
        unusable += part_unusable
        if part_leading_open:  # silent from its start to its end: the run goes on
            open_run += int(part_leading)
            longest = max(longest, open_run)
        else:
            longest = max(longest, open_run + int(part_leading), part_longest)
            open_run = part_run
        if leading_open:
            leading += int(part_leading)
            leading_open = bool(part_leading_open)
    return [silent, open_run, longest, windows, unusable], [leading, leading_open]


def _join_channel(parts: Sequence[dict[str, Any]], starts: Sequence[int]) -> dict[str, Any]:
    last = parts[-1]
    joined = dict(last)  # filter states, history, the open windows: the last part's
    for name in _SUMMED:
        joined[name] = sum(type(last[name])(part[name]) for part in parts)
    joined["low"] = min(float(part["low"]) for part in parts)
    joined["high"] = max(float(part["high"]) for part in parts)
    joined["true_peak"] = max(float(part["true_peak"]) for part in parts)
    for window in ("silence", "subblocks"):
        joined[window] = {
            **last[window],
            "total": sum(float(part[window]["total"]) for part in parts),
        }
    joined["waveform"] = _join_waveforms([part["waveform"] for part in parts], starts)
    return joined


def _join_waveforms(parts: Sequence[dict[str, Any]], starts: Sequence[int]) -> dict[str, Any]:
    span = int(parts[0]["span"])
    if any(int(part["span"]) != span for part in parts):
        raise ValueError("the parts' waveforms have different bucket sizes")
    mins: list[float] = []
    maxs: list[float] = []
    for part, start in zip(parts, starts, strict=True):
        part_mins = [float(value) for value in np.asarray(part["mins"])]
        part_maxs = [float(value) for value in np.asarray(part["maxs"])]
        if start % span and mins and part_mins:
            # the bucket this part starts inside began in the previous part
            mins[-1] = min(mins[-1], part_mins.pop(0))
            maxs[-1] = max(maxs[-1], part_maxs.pop(0))
        mins.extend(part_mins)
        maxs.extend(part_maxs)
    return {
        **parts[-1],
        "count": len(mins),
        "mins": np.asarray(mins, dtype=np.float64),
        "maxs": np.asarray(maxs, dtype=np.float64),
    }
