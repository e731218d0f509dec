"""Streaming, NaN-safe audio analysis: levels, loudness (BS.1770-4 / EBU R128), loudness
range, true peak, silence and a waveform overview, block by block.

Clipping: a sample at the largest code its encoding can hold (or beyond) counts as
clipped, whatever the encoding: 32767/32768 for 16-bit PCM, 127/128 for 8-bit, u-law's
32124/32768, A-law's 32256/32768, 1.0 for float and the lossy codecs.

The document `StreamingAnalyzer.finish` returns (schema_version 1; `decode.analyze_stream`
adds the container fields to "format"). Levels are dBFS relative to full scale 1.0;
every value that would be -inf (digital silence) or undefined is ``null``; the whole
document passes ``json.dumps(..., allow_nan=False)``::

    {
      "schema_version": 1,
      "format": {
        "sample_rate": int, "channels": int, "frames": int (decoded),
        "duration_seconds": float,
        "channel_layout": {
          "name": str ("stereo", "5.1", "6.0", "quad", ... or "<n> channels"),
          "positions": [str|null, ...] (WAVE speaker names: FL FR FC LFE BL BR ... SL SR,
                        null where the file does not say),
          "declared": bool (false: none in the file, the WAVE default was assumed),
          "source": str (e.g. "WAVE_FORMAT_EXTENSIBLE channel mask 0x707",
                    "none declared; assumed 5.1 in WAVE order (FL FR FC LFE BL BR)")
        },
        "container": "wav"|"rf64"|"w64"|"flac"|"ogg"|"mp3"|"aiff"|"aifc"|"caf"|"au",
        "subtype": str (libsndfile's, e.g. "PCM_16", "FLOAT", "VORBIS"),
        "frames_expected": int|null (what the header promised), "file_bytes": int|null
      },
      "peak_dbfs": float|null,                  # loudest sample of any channel
      "channels": [{
        "index": int, "peak_dbfs": float|null, "rms_dbfs": float|null,
        "dc_offset": float|null (mean, linear), "clipped_samples": int,
        "nan_samples": int, "inf_samples": int,
        "overflow_samples": int,                # finite but beyond 1e100: unusable
        "finite_samples": int,                  # the samples measured (all the others)
        "position": str|null,                   # from channel_layout
        "true_peak_dbtp": float|null            # only when true peak is on
      }, ...],
      "loudness": {
        "integrated_lufs": float|null, "loudness_range_lu": float|null,
        "lra_low_lufs": float|null, "lra_high_lufs": float|null,
        "momentary_max_lufs": float|null, "short_term_max_lufs": float|null,
        "true_peak_dbtp": float|null,           # null when true peak is off
        "gated_blocks": int, "blocks": int,     # 400 ms blocks: passing the gates / all
        "channel_weights": [float, ...],        # BS.1770 by position: surrounds 1.41,
                                                # LFE 0, the rest 1.0
        "method": str
      },
      "silence": {
        "threshold_dbfs": float, "window_seconds": float, "silent_seconds": float,
        "ratio": float|null (null for an empty file), "longest_seconds": float,
        "non_finite_seconds": float             # time where a channel held NaN/Inf or
                                                # an overflowing value: never silence
      },
      "waveform": {
        "buckets": int (<= the requested count; fewer only for very short files),
        "frames_per_bucket": float|null,
        "channels": [{"min": [float|null, ...], "max": [float|null, ...]}, ...]
      }
    }
"""

from .analyzer import (
    SCHEMA_VERSION,
    AnalysisOptions,
    StreamingAnalyzer,
    channel_weights,
    part_alignment,
)
from .summary import summarize

__all__ = [
    "SCHEMA_VERSION",
    "AnalysisOptions",
    "StreamingAnalyzer",
    "channel_weights",
    "part_alignment",
    "summarize",
]
