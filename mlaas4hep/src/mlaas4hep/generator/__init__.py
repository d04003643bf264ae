"""Training-ready chunks mixing all input files."""

from mlaas4hep.generator.chunks import Chunk, ChunkGenerator

__all__ = ["Chunk", "ChunkGenerator"]
