"""Stopping a sweep on SIGINT (Ctrl-C) or SIGTERM (a cluster's job stop), and saying so.

Ray Tune stops an experiment gracefully on SIGINT and returns from `fit()` as if it had ended: the sweep would
print that every trial finished and exit 0. A Guard takes both signals for the whole run instead. While Tune
runs, the first one is passed on to Tune's own graceful stop (its SIGUSR1 handler: the trials are stopped, the
experiment state is saved, a re-run resumes them); at any other moment (the results being checked, a dependent
stage being prepared) it is noted and the run stops at the next safe point (`check()`). Either way the runner
then ends with `Interrupted`, and the CLI counts the finished trials from the results and exits 128 + the
signal's number (130 for SIGINT, 143 for SIGTERM). While Ray starts, or when a graceful stop cannot be or takes
too long (Guard.GRACE_S), the process ends from a watching thread, counting and saying the same; a second
signal stops at once (Interrupted raised where the program is).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator

from cluster.local import stop_embedded

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_TUNE_SIGINT = "TUNE_DISABLE_SIGINT_HANDLER"


class Interrupted(Exception):
    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_code(signum: int) -> int:
    return 128 + signum


class Guard:
    """Holds SIGINT and SIGTERM from `__enter__` to `__exit__` (main thread only; elsewhere it does nothing).

    A stop that does not end within GRACE_S seconds, or at once while Ray starts (`starting`) or when the embedded
    Ray's own processes have ended (a signal to the whole process group reaches them: Ray calls would then wait
    a minute for them), ends the process: `last_words(signum)` is called (from another thread), the embedded Ray's processes are killed, and
    the process exits with 128 + the signal's number. What a trial wrote is whole (files are replaced by rename);
    a re-run restores the experiment's last saved state, and trials whose rows say they finished are not re-run.
    """

    GRACE_S = 15.0  # within the usual grace before SIGKILL (Kubernetes and Slurm: 30 s)

    def __init__(self, last_words: Callable[[int], None] | None = None, lost: Callable[[], bool] = lambda: False):
        self.signum: int | None = None
        self.last_words, self.lost = last_words, lost
        self._saved: dict[int, object] = {}
        self._in_tune = False
        self._forwarder: threading.Thread | None = None
        self._over = threading.Event()
        self._arrived: int | None = None  # the first signal, as the wakeup pipe told (even with Python blocked)
        self._lock = threading.Lock()
        self._firing = False
        self.starting = False  # set while Ray starts: a stop then ends the process at once (nothing to save)
        self._pipe: tuple[int, int] | None = None
        self._wakeup = -1

    def __enter__(self) -> Guard:
        if threading.current_thread() is threading.main_thread():
            for sig in (*SIGNALS, signal.SIGUSR1):
                self._saved[sig] = signal.getsignal(sig)
            self.take()
            # A Python handler runs only when the main thread is back in the interpreter: a call blocked in C
            # (a Ray call waiting for a GCS that died with the process group) would delay it for good. The
            # C-level handler also writes the signal's number to this pipe, which a thread reads at once.
            self._pipe = os.pipe()
            os.set_blocking(self._pipe[1], False)
            self._wakeup = signal.set_wakeup_fd(self._pipe[1], warn_on_full_buffer=False)
            threading.Thread(target=self._listen, name="sparsity-signals", daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        with self._lock:
            self._over.set()
            firing = self._firing
        if firing:  # the deadline passed meanwhile: the process ends from the watching thread
            threading.Event().wait()
        self._join()
        if self._pipe is not None:
            signal.set_wakeup_fd(self._wakeup)
            os.write(self._pipe[1], b"\0")  # ends the listening thread, which closes the pipe
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)

    def _listen(self) -> None:
        read, write = self._pipe
        try:
            while not self._over.is_set():
                for number in os.read(read, 64):
                    if number in SIGNALS:
                        self._arrival(number)
        finally:
            os.close(read)
            os.close(write)

    def _arrival(self, signum: int) -> None:
        with self._lock:
            if self._arrived is not None:
                return
            self._arrived = signum
        threading.Thread(target=self._watch, name="sparsity-deadline", daemon=True).start()

    def take(self) -> None:
        """(Re)install the handlers: ray.init installs its own SIGTERM handler (sys.exit) in the driver."""
        if self._saved:
            for sig in SIGNALS:
                signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame) -> None:
        if self.signum is not None:  # a second signal: stop now
            raise Interrupted(self.signum)
        self.signum = signum
        self._arrival(signum)  # (the wakeup pipe has usually told already)
        if self._in_tune:
            self._forwarder = threading.Thread(target=self._forward, name="sparsity-stop", daemon=True)
            self._forwarder.start()

    def check(self) -> None:
        """At a safe point: end the run if a signal came."""
        if self.signum is not None:
            raise Interrupted(self.signum)

    @contextlib.contextmanager
    def tune(self) -> Iterator[None]:
        """Around `tuner.fit()`: a signal stops the experiment as Tune's own SIGINT handling would."""
        if not self._saved:
            yield
            return
        self.check()
        before = os.environ.get(_TUNE_SIGINT)
        os.environ[_TUNE_SIGINT] = "1"  # SIGINT stays ours; Tune stops on the SIGUSR1 we send
        signal.signal(signal.SIGUSR1, _ignore)  # until fit() installs Tune's handler (a stray one is harmless)
        self._in_tune = True
        try:
            yield
        finally:
            self._in_tune = False
            self._join()
            if before is None:
                os.environ.pop(_TUNE_SIGINT, None)
            else:
                os.environ[_TUNE_SIGINT] = before

    def _forward(self) -> None:
        """Wait until fit() has installed its SIGUSR1 handler (it does so early, but after setting up the
        experiment), then send SIGUSR1 to this process: Tune stops gracefully."""
        while self._in_tune:
            if signal.getsignal(signal.SIGUSR1) is not _ignore:
                os.kill(os.getpid(), signal.SIGUSR1)
                return
            time.sleep(0.05)

    def _watch(self) -> None:
        deadline = time.monotonic() + self.GRACE_S
        while time.monotonic() < deadline and not (self.starting or self.lost()):
            if self._over.wait(0.2):
                return
        with self._lock:
            if self._over.is_set():
                return
            self._firing = True
        signum = self.signum or self._arrived
        try:
            if self.last_words is not None:
                self.last_words(signum)
        finally:
            stop_embedded()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(exit_code(signum))

    def _join(self) -> None:
        if self._forwarder is not None and self._forwarder is not threading.current_thread():
            self._forwarder.join()
        self._forwarder = None


def _ignore(signum, frame) -> None:
    pass
