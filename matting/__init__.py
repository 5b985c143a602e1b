"""The inference pipeline and the CLI: video I/O, per-frame inference, association, matting,
export (docs/architecture.md). Import-light: heavy modules are imported where they are used."""
