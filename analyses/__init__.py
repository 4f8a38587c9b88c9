"""The analysis commands (`python -m analyses.<name>`): thin shells over `interference.studies`."""

from interference.io.errors import exit_quietly_on_interrupt, started_as_command

if started_as_command("analyses"):  # Ctrl-C while a command's imports run: one line, exit 130
    exit_quietly_on_interrupt()
