"""File formats: the CRTrack text layout (``crtrack``) and Parquet tables."""
