package loadtest

import "io"

func benchMain(args []string, stdout, stderr io.Writer) int { return 2 }
