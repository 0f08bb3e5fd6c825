// Command skiff is Skiff's single binary: server, CLI and helpers.
package main

import (
	"os"

	"github.com/skiff-sh/skiff/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
