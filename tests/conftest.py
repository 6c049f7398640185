"""Test-session set-up shared by every module."""

import signal

# A shell starts background jobs with SIGINT ignored, and that disposition is inherited
# across exec: pytest (and every `analogep` subprocess a test starts) would then never see
# the Ctrl-C that the interrupt tests send. Restore Python's own handler so they test the
# code, not how the suite was launched.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
