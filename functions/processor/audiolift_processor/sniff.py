"""Identify an upload's container from its first bytes.

The declared content type and the filename are not trusted: what the bytes say decides
which decoder runs, and a file that is plainly not audio (a PDF, a zip, a text file
renamed ``.wav``) fails at once with a message that says what it looks like instead.
"""

from __future__ import annotations

from audiolift_core.errors import UnsupportedFormat

# How many leading bytes `sniff` wants to see; fewer work for short files.
SNIFF_BYTES = 4096

# Containers libsndfile decodes, by the name `sniff` returns.
AUDIO_CONTAINERS = frozenset(
    {"wav", "rf64", "w64", "flac", "ogg", "mp3", "aiff", "aifc", "caf", "au"}
)

_W64_RIFF_GUID = bytes.fromhex("72696666 2e91cf11 a5d628db 04c10000".replace(" ", ""))
_W64_WAVE_GUID = bytes.fromhex("77617665 f3acd311 8cd100c0 4f8edb8a".replace(" ", ""))
_ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")

# Recognised, but not audio we can decode: (magic at offset 0, what it is).
_KNOWN_OTHERS: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (b"PK\x05\x06", "an empty ZIP archive"),
    (b"\x1f\x8b", "a gzip-compressed file"),
    (b"BZh", "a bzip2-compressed file"),
    (b"\xfd7zXZ\x00", "an xz-compressed file"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"\x7fELF", "an executable program"),
    (b"MZ", "a Windows executable"),
    (b"\x1aE\xdf\xa3", "a Matroska/WebM file (not supported: extract the audio as WAV or FLAC)"),
    (_ASF_GUID, "a Windows Media (WMA/ASF) file, which is not supported"),
    (b"MThd", "a MIDI file (notes, not recorded audio)"),
    (b"\x00\x00\x01\xba", "an MPEG video stream"),
    (b"\x00\x00\x01\xb3", "an MPEG video stream"),
    (b"#!AMR", "an AMR voice recording, which is not supported"),
    (b"wvpk", "a WavPack file, which is not supported"),
    (b"MAC ", "a Monkey's Audio (APE) file, which is not supported"),
)


def sniff(head: bytes) -> str:
    """Return the container name for these leading bytes, or raise UnsupportedFormat.

    ``head`` should be the first `SNIFF_BYTES` bytes of the file (or all of it if shorter).
    """
    if not head:
        raise UnsupportedFormat("The file is empty (0 bytes): there is no audio to analyse.")

    riff = _riff_family(head)
    if riff is not None:
        return riff
    if head.startswith(_W64_RIFF_GUID) and head[24:40] == _W64_WAVE_GUID:
        return "w64"
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"FORM") and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff" if head[8:12] == b"AIFF" else "aifc"
    if head.startswith(b"caff"):
        return "caf"
    if head.startswith(b".snd"):
        return "au"
    if head.startswith(b"ID3"):
        return _after_id3(head)
    if head[4:8] == b"ftyp":
        raise UnsupportedFormat(
            "The file is an MP4/M4A container (AAC or ALAC audio, or video), which is not "
            "supported; convert it to WAV, FLAC, Ogg or MP3."
        )
    if _is_adts_aac(head):
        raise UnsupportedFormat(
            "The file is raw AAC (ADTS), which is not supported; convert it to WAV, FLAC, "
            "Ogg or MP3."
        )
    if _is_mpeg_audio_frame(head, 0):
        return "mp3"
    for magic, what in _KNOWN_OTHERS:
        if head.startswith(magic):
            raise UnsupportedFormat(f"The file is {what}, not an audio recording.")
    if _looks_like_text(head):
        raise UnsupportedFormat(
            "The file contains text, not audio (it may have been renamed to look like a "
            "sound file)."
        )
    raise UnsupportedFormat(
        "The file is not in an audio format we recognise (supported: WAV, RF64, W64, FLAC, "
        "Ogg Vorbis/Opus, MP3, AIFF, CAF, AU)."
    )


def _riff_family(head: bytes) -> str | None:
    tag, form = head[:4], head[8:12]
    if tag in (b"RIFF", b"RIFX"):
        if form == b"WAVE":
            return "wav"
        raise UnsupportedFormat(
            f"The file is a RIFF {form.decode('latin-1')!r} file (for example video or an "
            "image), not a WAV recording."
        )
    if tag in (b"RF64", b"BW64") and form == b"WAVE":
        return "rf64"
    return None


def _after_id3(head: bytes) -> str:
    """An ID3v2 tag usually precedes MP3 frames; occasionally FLAC or AAC. Look past it
    when the tag ends inside the bytes we have, else trust the common case."""
    if len(head) < 10:
        return "mp3"
    size = 0
    for byte in head[6:10]:  # "syncsafe" integer: 7 bits per byte
        size = (size << 7) | (byte & 0x7F)
    end = 10 + size + (10 if head[5] & 0x10 else 0)  # footer flag
    if end + 4 <= len(head):
        following = head[end:]
        if following.startswith(b"fLaC"):
            return "flac"
        if _is_adts_aac(following):
            raise UnsupportedFormat(
                "The file is raw AAC (ADTS) with an ID3 tag, which is not supported; convert "
                "it to WAV, FLAC, Ogg or MP3."
            )
    return "mp3"


def _is_mpeg_audio_frame(head: bytes, at: int) -> bool:
    """An MPEG-1/2/2.5 audio frame header: 11 sync bits, a valid version, layer, bitrate
    and sample-rate index."""
    if len(head) < at + 4:
        return False
    b1, b2, b3 = head[at + 1], head[at + 2], head[at + 3]
    if head[at] != 0xFF or (b1 & 0xE0) != 0xE0:
        return False
    version = (b1 >> 3) & 0x3
    layer = (b1 >> 1) & 0x3
    bitrate_index = (b2 >> 4) & 0xF
    rate_index = (b2 >> 2) & 0x3
    emphasis = b3 & 0x3
    return (
        version != 0b01 and layer != 0 and bitrate_index != 0xF and rate_index != 3
    ) and emphasis != 0b10


def _is_adts_aac(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xF6) == 0xF0


def _looks_like_text(head: bytes) -> bool:
    sample = head[:SNIFF_BYTES]
    if sample.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        return True  # a Unicode byte-order mark
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(sample) - 3:  # not just a character cut at the end
            return False
        text = sample[: error.start].decode("utf-8")
    if not text:
        return False
    printable = sum(1 for ch in text if ch.isprintable() or ch in "\r\n\t\f")
    return printable / len(text) > 0.95
