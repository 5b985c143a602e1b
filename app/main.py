"""`vidmatte`: the desktop application.

    vidmatte [VIDEO] [--teacher-dir DIR] [--device cpu] [--max-frames N] [--process]

`--help` and `--version` answer without a display and without importing torch or Qt.
`--smoke-test PNG` opens the real window, draws it, grabs the screen into PNG and exits
(0 when the grab shows a drawn window) — what CI runs under Xvfb.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vidmatte.models import __version__

PROG = "vidmatte"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Desktop app: find every person in a video, fix who is who, export "
        "one alpha matte per person.",
    )
    p.add_argument("video", nargs="?", help="video file or image folder to open")
    p.add_argument("--version", action="version", version=f"vidmatte {__version__}")
    p.add_argument("--teacher-dir", help="teacher files folder (saved in the settings)")
    p.add_argument("--weights", help="trimap network model folder (saved in the settings)")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (saved in the settings)")
    p.add_argument("--max-frames", type=int, help="process at most N frames (0 = all)")
    p.add_argument("--process", action="store_true", help="start processing once opened")
    p.add_argument("--settings", type=Path, help="keep settings in this INI file")
    p.add_argument("--smoke-test", type=Path, metavar="PNG", help=argparse.SUPPRESS)
    return p


def _run(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    from vidmatte.models.errors import UsageError

    if args.max_frames is not None and args.max_frames < 0:
        raise UsageError("--max-frames must be 0 (all) or more")
    if args.video and not Path(args.video).expanduser().exists():
        raise UsageError(f"{args.video}: no such file or folder")

    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([PROG])
    app.setApplicationName("vidmatte")
    app.setOrganizationName("vidmatte")
    from vidmatte.app.main_window import MainWindow

    store = QSettings(str(args.settings), QSettings.Format.IniFormat) if args.settings else None
    window = MainWindow(store)
    s = window.settings
    if args.teacher_dir is not None:
        s = s.with_model(teacher_dir=str(Path(args.teacher_dir).expanduser().resolve()))
    if args.weights is not None:
        s = s.with_model(weights=str(Path(args.weights).expanduser().resolve()))
    if args.device is not None:
        s = s.with_model(device=args.device)
    if args.max_frames is not None:
        s.max_frames = args.max_frames
    window.apply_settings(s)
    window.show()
    if args.video:
        window.open_video(args.video)
        if args.process:
            window.start_processing()
    if args.smoke_test:
        return _smoke_test(app, window, args.smoke_test)
    QTimer.singleShot(0, window.raise_)
    return int(app.exec())


def _smoke_test(app, window, out: Path) -> int:
    """Draw the window, grab the whole screen, and check something was drawn."""
    import time

    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.02)
    screen = app.primaryScreen()
    pixmap = screen.grabWindow(0)
    out.parent.mkdir(parents=True, exist_ok=True)
    ok = pixmap.save(str(out))
    img = pixmap.toImage()
    colours = {img.pixel(x, y) for x in range(0, img.width(), 7) for y in range(0, img.height(), 7)}
    title = window.windowTitle()
    window.close()
    print(f"{PROG}: smoke test: {img.width()}x{img.height()} screen, {len(colours)} colours, "
          f"platform {app.platformName()}, window {title!r}, saved {out}")  # fmt: skip
    return 0 if ok and len(colours) > 8 else 1


def main(argv: list[str] | None = None) -> int:
    from vidmatte.models.errors import guarded_main

    return guarded_main(PROG, _run, argv)


if __name__ == "__main__":
    sys.exit(main())
