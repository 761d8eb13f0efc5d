// Command asr protects virtual machines against the loss of a site.
package main

import (
	"os"

	"github.com/asr-project/asr/cmd"
)

func main() { os.Exit(cmd.Execute()) }
