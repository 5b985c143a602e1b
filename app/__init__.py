"""The PySide6 desktop application: views, view models and worker threads. No ML code."""
