"""An analysis that outlasts one invocation: its checkpoints, and the message that hands
it on.

A checkpoint is one S3 object, ``checkpoints/<job id>/<sequence number>``: the analysis
state, the frame the decoder continues at (with a fingerprint of the frames there), and
the running SHA-256 of the object's prefix read so far, as an ``.npz`` archive (no
pickle; ``analysis.state``). The job record names the latest one under the lease; the
sequence number there decides which messages are stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .s3reader import HashState

if TYPE_CHECKING:
    from .decode import Resume

# numpy and the decoder are imported when a checkpoint is made or read, not on import:
# the handler imports this module, and an event without work should not pay for them.

CHECKPOINT_PREFIX = "checkpoints/"
FORMAT_VERSION = 1


def checkpoint_key(job_id: str, seq: int) -> str:
    return f"{CHECKPOINT_PREFIX}{job_id}/{seq:08d}"


class UnusableCheckpoint(ValueError):
    """Not a checkpoint of this version, object or chunk size."""


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    etag: str  # the object version it belongs to
    chunk_size: int  # the reader's: the saved hash covers whole chunks of it
    resume: Resume | None  # None: only the hash (the hash part of a fanned-out analysis)
    hashed: HashState

    def encode(self) -> bytes:
        import numpy as np

        from .analysis.state import dumps

        return dumps(
            {
                "version": FORMAT_VERSION,
                "seq": self.seq,
                "etag": self.etag,
                "chunk_size": self.chunk_size,
                "frames": None if self.resume is None else self.resume.frames,
                "fingerprint": None if self.resume is None else self.resume.fingerprint,
                "analysis": None if self.resume is None else self.resume.analysis,
                "hashed_bytes": self.hashed.hashed_bytes,
                "hash_context": np.frombuffer(self.hashed.context, dtype=np.uint8),
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> Checkpoint:
        import numpy as np

        from .analysis.state import loads
        from .decode import Resume

        try:
            saved = loads(data)
            if saved.get("version") != FORMAT_VERSION:
                raise UnusableCheckpoint("a checkpoint of another format version")
            return cls(
                seq=int(saved["seq"]),
                etag=str(saved["etag"]),
                chunk_size=int(saved["chunk_size"]),
                resume=None
                if saved["frames"] is None
                else Resume(
                    frames=int(saved["frames"]),
                    analysis=saved["analysis"],
                    fingerprint=str(saved["fingerprint"]),
                ),
                hashed=HashState(
                    int(saved["hashed_bytes"]),
                    np.asarray(saved["hash_context"], dtype=np.uint8).tobytes(),
                ),
            )
        except UnusableCheckpoint:
            raise
        except (ValueError, KeyError, TypeError, OSError) as error:
            raise UnusableCheckpoint(f"an unreadable checkpoint: {error}") from error


def record_of(checkpoint: Checkpoint, key: str) -> dict[str, Any]:
    """What the job record says about its latest checkpoint."""
    resume = checkpoint.resume
    frames = resume.frames if resume is not None else None
    return {"key": key, "seq": checkpoint.seq, "frames": frames}
