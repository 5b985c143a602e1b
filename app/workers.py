"""Generator workers: long jobs run in a QThread and report back through signals.

Modelled on superqt's (formerly napari's) `thread_worker` and named as it names its
signals: the job is a plain generator function, so it can be tested without Qt or a screen
(just iterate it). The worker runs it in its own QThread and turns what it yields into
signals delivered in the GUI thread (queued connections):

    started()            the job began (in the worker thread)
    progress(Progress)   a `vidmatte.matting.progress.Progress` the job yielded (ours)
    yielded(object)      anything else the job yielded (e.g. a processed frame)
    returned(object)     the generator's return value; the job completed
    errored(object)      the exception (a VidmatteError carries the one-line message)
    aborted()            the job was cancelled (abort() or a `Cancelled` raised inside)
    finished()           always last, whatever happened

Exactly one of returned / errored / aborted is emitted, then `finished()`. Abort is
cooperative: a `cancel` keyword (threading.Event) is passed to jobs that take one, so a
job blocked inside a long step (the pipeline's batch) stops at its next check; the worker
also stops between yields.
"""

from __future__ import annotations

import inspect
import sys
import threading
import traceback
from collections.abc import Callable, Generator
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal


class _Thread(QThread):
    def __init__(self, worker: GeneratorWorker) -> None:
        super().__init__()
        self._worker = worker

    def run(self) -> None:  # runs in the new thread
        self._worker.run()


class GeneratorWorker(QObject):
    """Run `func(*args, **kwargs)` (a generator function) in a QThread."""

    started = Signal()
    progress = Signal(object)
    yielded = Signal(object)
    returned = Signal(object)
    errored = Signal(object)
    aborted = Signal()
    finished = Signal()

    def __init__(self, func: Callable[..., Generator], *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.cancel = threading.Event()
        if "cancel" in inspect.signature(func).parameters and "cancel" not in kwargs:
            kwargs["cancel"] = self.cancel
        self._func, self._args, self._kwargs = func, args, kwargs
        self._thread: _Thread | None = None
        self.outcome: str | None = None  # "returned" | "errored" | "aborted" once finished

    # -- control (GUI thread) ----------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("a worker runs once")
        self._thread = _Thread(self)
        self._thread.start()

    def abort(self) -> None:
        """Ask the job to stop; `aborted` follows once it has."""
        self.cancel.set()

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.isRunning()

    def wait(self, ms: int = 30000) -> bool:
        """Block until the thread has ended (tests, shutdown)."""
        return True if self._thread is None else bool(self._thread.wait(ms))

    # -- body (worker thread, or called directly for a synchronous run) ------------------
    def run(self) -> None:
        from vidmatte.matting.progress import Progress
        from vidmatte.models.errors import Cancelled

        self.started.emit()
        try:
            gen = self._func(*self._args, **self._kwargs)
            result = None
            while True:
                if self.cancel.is_set():
                    gen.close()
                    raise Cancelled("cancelled")
                try:
                    item = next(gen)
                except StopIteration as stop:
                    result = stop.value
                    break
                if isinstance(item, Progress):
                    self.progress.emit(item)
                else:
                    self.yielded.emit(item)
        except Cancelled:
            self.outcome = "aborted"
            self.aborted.emit()
        except Exception as e:  # reported to the GUI, never raised into Qt
            from vidmatte.models.errors import VidmatteError

            if not isinstance(e, VidmatteError):
                traceback.print_exc(file=sys.stderr)  # a bug: keep the trace for the log
            self.outcome = "errored"
            self.errored.emit(e)
        else:
            self.outcome = "returned"
            self.returned.emit(result)
        self.finished.emit()


def error_message(e: BaseException) -> str:
    """One line for a dialog: a VidmatteError's own message, else the type and text."""
    from vidmatte.models.errors import VidmatteError

    if isinstance(e, VidmatteError):
        return str(e)
    text = str(e).splitlines()[0] if str(e) else ""
    return f"internal error: {type(e).__name__}: {text}".rstrip(": ")
