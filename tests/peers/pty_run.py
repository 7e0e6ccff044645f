"""Runs a command under a pseudo-terminal, as a person at a terminal would, for tests of
interactive prompts. Usage: pty_run.py PROMPT ANSWER COMMAND [ARGS...]: waits for PROMPT in
the command's output, types ANSWER and Enter; or pty_run.py --script JSON COMMAND [ARGS...]
with JSON a list of [PROMPT, ANSWER] pairs, answered in order (each PROMPT looked for after the
previous one). Prints everything the command wrote as JSON {"output": ..., "answered": all
answered, "status": exit code}."""

import json
import os
import pty
import select
import sys
import time

if sys.argv[1] == "--script":
    pairs = [(p.encode(), a.encode()) for p, a in json.loads(sys.argv[2])]
    argv = sys.argv[3:]
else:
    pairs, argv = [(sys.argv[1].encode(), sys.argv[2].encode())], sys.argv[3:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)
output, step, searched, deadline = b"", 0, 0, time.time() + 120
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
    while step < len(pairs):
        found = output.find(pairs[step][0], searched)
        if found < 0:
            break
        os.write(fd, pairs[step][1] + b"\n")
        searched = found + len(pairs[step][0])
        step += 1
_, status = os.waitpid(pid, 0)
print(json.dumps({"output": output.decode(errors="replace"), "answered": step == len(pairs),
                  "status": os.waitstatus_to_exitcode(status)}))
