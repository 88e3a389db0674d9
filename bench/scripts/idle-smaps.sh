#!/bin/bash
# idle-smaps.sh: which mappings of a server process grow when its idle
# connections each receive one message. It runs the harness's own server
# and load-generator roles by hand: N (default 10000) idle connections,
# /proc/PID/smaps at idle, 1.5 s after every connection got one 4 KiB
# message and 1.5 s later, then the mappings whose resident kB changed.
# Usage (in bench/): go build -o /tmp/zbx ./cmd/zciobench && N=2000 scripts/idle-smaps.sh zcio-uring-handler
# (ZBX names another binary).
set -u
c=${1:-zcio-uring-handler}
ZBX=${ZBX:-/tmp/zbx}
d=$(mktemp -d); mkfifo $d/sin $d/lin
ZCIOBENCH_ROLE=serve "$ZBX" -contender $c -scenario idle < $d/sin > $d/sout 2>$d/serr &
sp=$!
exec 3>$d/sin
for i in $(seq 1 100); do grep -q READY $d/sout 2>/dev/null && break; sleep 0.05; done
addr=$(grep READY $d/sout | awk '{print $2}')
ZCIOBENCH_ROLE=load "$ZBX" -scenario idle -addr $addr -conns ${N:-10000} -size 4096 -timeout 2m < $d/lin > $d/lout 2>$d/lerr &
lp=$!
exec 4>$d/lin
for i in $(seq 1 400); do grep -q CONNECTED $d/lout 2>/dev/null && break; sleep 0.05; done
snap() { awk '/^[0-9a-f]+-[0-9a-f]+ / {key=$1; name=$6} /^Rss:/ {print key, $2, name}' /proc/$sp/smaps > $d/$1; grep VmRSS /proc/$sp/status | sed "s/^/$1 /"; }
sleep 2; snap idle
echo send >&4
for i in $(seq 1 400); do grep -q SENT $d/lout 2>/dev/null && break; sleep 0.05; done
sleep 1.5; snap after
sleep 1.5; snap settled
echo "diff idle -> settled (kB):"
awk 'NR==FNR {a[$1]=$2; n[$1]=$3; next} {if (a[$1]!=$2) print $1, $3, a[$1]+0, "->", $2; seen[$1]=1} END {for (k in a) if (!seen[k]) print k, n[k], a[k], "-> gone"}' $d/idle $d/settled
exec 4>&-; wait $lp
echo quit >&3; exec 3>&-; wait $sp
rm -rf $d
