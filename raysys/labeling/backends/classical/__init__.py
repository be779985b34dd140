"""The classical concept tracker's parts: background model, detector, association."""
