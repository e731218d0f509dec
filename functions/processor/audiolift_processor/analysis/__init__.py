"""Streaming, NaN-safe audio analysis: levels, loudness (BS.1770-4 / EBU R128), loudness
range, true peak, silence and a waveform overview, block by block."""

from .analyzer import SCHEMA_VERSION, AnalysisOptions, StreamingAnalyzer, channel_weights
from .summary import summarize

__all__ = [
    "SCHEMA_VERSION",
    "AnalysisOptions",
    "StreamingAnalyzer",
    "channel_weights",
    "summarize",
]
