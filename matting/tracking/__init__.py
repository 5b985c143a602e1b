"""Who is who across frames: association, the track store, smoothing, identity metrics."""
