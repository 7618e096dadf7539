package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/shiftgate/shiftgate/proxy/gateway"
)

// cmdServe runs the gateway until SIGINT or SIGTERM.
func cmdServe(args []string, stderr io.Writer) int {
	fs := newFlags("serve", stderr)
	path := fs.String("config", "", "config file (YAML)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if code, ok := parseFlags(fs, args, 0, 0); !ok {
		return code
	}
	if *path == "" {
		fmt.Fprintln(stderr, "shiftgate serve: -config FILE is required")
		return exitUsage
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "shiftgate serve: -log-level: %v\n", err)
		return exitUsage
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	if err := gateway.Run(context.Background(), gateway.Options{ConfigPath: *path, Logger: log, Signals: true}, nil); err != nil {
		log.Error("shiftgate stopped", "err", err)
		return 1
	}
	return 0
}
