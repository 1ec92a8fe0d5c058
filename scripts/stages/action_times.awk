# Molecule's output, with each action's time: "[scenario > action] Executing"
# starts it, "[scenario > action] Executed: ..." ends it and gets "(N s)";
# the last line lists them all ("action times: converge 120 s, ...").
# POSIX awk has no clock but srand(), which returns the previous seed: after
# one srand(), the next returns the time of day in seconds.
match($0, / > [a-z_]+\] Execut/) {
  action = substr($0, RSTART + 3, RLENGTH - 11)
  srand()
  now = srand()
  if ($0 ~ /\] Executing/) {
    began[action] = now
  } else if (action in began) {
    $0 = $0 " (" now - began[action] " s)"
    times = times " " action " " now - began[action] " s,"
    delete began[action]
  }
}
{ print; fflush() }
END { sub(/,$/, "", times); print "action times:" times }
