"""Runs a command under a pseudo-terminal, as a person at a terminal would, for tests of
interactive prompts. Usage: pty_run.py PROMPT ANSWER COMMAND [ARGS...]: waits for PROMPT in
the command's output, types ANSWER and Enter, and prints everything the command wrote as
JSON {"output": ..., "status": exit code}."""

import json
import os
import pty
import select
import sys
import time

prompt, answer, argv = sys.argv[1].encode(), sys.argv[2].encode(), sys.argv[3:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)
output, answered, deadline = b"", False, time.time() + 120
while time.time() < deadline:
    ready, _, _ = select.select([fd], [], [], 0.1)
    if ready:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    if not answered and prompt in output:
        os.write(fd, answer + b"\n")
        answered = True
_, status = os.waitpid(pid, 0)
print(json.dumps({"output": output.decode(errors="replace"), "answered": answered,
                  "status": os.waitstatus_to_exitcode(status)}))
