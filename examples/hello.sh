#!/bin/sh
# A small child for herd to supervise:
#   cargo run --release -- run -- sh examples/hello.sh
# (add -v after `run` to see herd spawn it and reap the orphaned sleep).
# It exits 0 on its own after about a second; send herd SIGTERM before that
# and herd forwards it here.

trap 'echo "hello.sh: got SIGTERM, goodbye"; exit 0' TERM

echo "hello.sh: hello from pid $$; my parent is herd, pid $PPID"

# The subshell starts a sleep and exits at once, so the sleep is orphaned:
# the kernel hands it to herd (a child subreaper), which reaps it when it ends.
orphan=$(sleep 0.3 >/dev/null 2>&1 & echo $!)
echo "hello.sh: left an orphaned sleep behind: pid $orphan"

# Sleep in the background and wait for it, so that SIGTERM is handled at once.
sleep 1 &
wait $!

if kill -0 "$orphan" 2>/dev/null; then
    echo "hello.sh: pid $orphan is still there (a zombie nobody reaped?)"
else
    echo "hello.sh: pid $orphan is gone: it exited and was reaped"
fi
echo "hello.sh: done, exiting 0"
exit 0
