"""Files in and out: video reading, alpha and composite writers, export, manifest, atomic writes."""
