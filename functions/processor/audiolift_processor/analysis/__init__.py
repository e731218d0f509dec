"""Streaming, NaN-safe audio analysis: levels, loudness (BS.1770-4 / EBU R128), loudness
range, true peak, silence and a waveform overview, block by block.

The document `StreamingAnalyzer.finish` returns (schema_version 1; `decode.analyze_stream`
adds the container fields to "format"). Levels are dBFS relative to full scale 1.0;
every value that would be -inf (digital silence) or undefined is ``null``; the whole
document passes ``json.dumps(..., allow_nan=False)``::

    {
      "schema_version": 1,
      "format": {
        "sample_rate": int, "channels": int, "frames": int (decoded),
        "duration_seconds": float,
        "container": "wav"|"rf64"|"w64"|"flac"|"ogg"|"mp3"|"aiff"|"aifc"|"caf"|"au",
        "subtype": str (libsndfile's, e.g. "PCM_16", "FLOAT", "VORBIS"),
        "frames_expected": int|null (what the header promised), "file_bytes": int|null
      },
      "peak_dbfs": float|null,                  # loudest sample of any channel
      "channels": [{
        "index": int, "peak_dbfs": float|null, "rms_dbfs": float|null,
        "dc_offset": float|null (mean, linear), "clipped_samples": int,
        "nan_samples": int, "inf_samples": int, "finite_samples": int,
        "true_peak_dbtp": float|null            # only when true peak is on
      }, ...],
      "loudness": {
        "integrated_lufs": float|null, "loudness_range_lu": float|null,
        "lra_low_lufs": float|null, "lra_high_lufs": float|null,
        "momentary_max_lufs": float|null, "short_term_max_lufs": float|null,
        "true_peak_dbtp": float|null,           # null when true peak is off
        "gated_blocks": int, "blocks": int,     # 400 ms blocks: passing the gates / all
        "channel_weights": [float, ...], "method": str
      },
      "silence": {
        "threshold_dbfs": float, "window_seconds": float, "silent_seconds": float,
        "ratio": float|null (null for an empty file), "longest_seconds": float
      },
      "waveform": {
        "buckets": int (<= the requested count; fewer only for very short files),
        "frames_per_bucket": float|null,
        "channels": [{"min": [float|null, ...], "max": [float|null, ...]}, ...]
      }
    }
"""

from .analyzer import SCHEMA_VERSION, AnalysisOptions, StreamingAnalyzer, channel_weights
from .summary import summarize

__all__ = [
    "SCHEMA_VERSION",
    "AnalysisOptions",
    "StreamingAnalyzer",
    "channel_weights",
    "summarize",
]
