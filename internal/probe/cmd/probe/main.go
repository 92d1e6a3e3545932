// Command probe is the health probe alone, for tests and for images that want
// it without the berth binary. Berth itself runs it as `berth probe …`.
package main

import (
	"os"

	"github.com/berthpaas/berth/internal/probe"
)

func main() {
	os.Exit(probe.Main(os.Args[1:]))
}
