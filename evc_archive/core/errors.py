"""The errors a user can cause. Each carries one sentence that says what is wrong and, where it can,
how to fix it; the CLI prints `str(error)` and exits 1."""


class EVCError(Exception):
    """Base of every error that is the input's fault rather than a bug."""


class BitstreamError(EVCError):
    """The stream is damaged, truncated or not an evc stream at all."""


class UnsupportedVersionError(BitstreamError):
    """The stream was written by a format version this build cannot read."""


class ModelMismatchError(EVCError):
    """A model the stream names is missing, or its content differs from the one used to encode."""


class VideoError(EVCError):
    """A video cannot be read or written (not a video, no video stream, zero frames, ...)."""
