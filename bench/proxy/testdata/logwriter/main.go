// Command logwriter writes n access log lines to its standard output, as
// berth proxy does (in 64 KiB writes), then creates the file done and
// sleeps, so that the container and its shim stay up while the bench reads
// their CPU time.
//
//	logwriter <n> <done>
package main

import (
	"bufio"
	"os"
	"strconv"
	"time"
)

const line = `{"time":"2030-01-02T03:04:05.678Z","level":"INFO","msg":"access","client":"10.0.0.2","host":"bench.test",` +
	`"method":"GET","path":"/","status":200,"bytes":1187,"duration_ms":0,"backend":"be_app_bench","server":"bench-r1-1","termination":"----"}` + "\n"

func main() {
	n, err := strconv.Atoi(os.Args[1])
	if err != nil {
		os.Exit(2)
	}
	w := bufio.NewWriterSize(os.Stdout, 64<<10)
	for range n {
		w.WriteString(line)
	}
	if w.Flush() != nil || os.WriteFile(os.Args[2], nil, 0o644) != nil {
		os.Exit(1)
	}
	time.Sleep(time.Hour)
}
