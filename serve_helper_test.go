package main

import (
	"context"
	"log/slog"

	"github.com/shiftgate/shiftgate/proxy"
	"github.com/shiftgate/shiftgate/proxy/gateway"
)

// serve runs the gateway assembly of `shiftgate serve` from the file at path until
// ctx ends; ready, when not nil, receives the server once it listens.
func serve(ctx context.Context, path string, log *slog.Logger, ready chan<- *proxy.Server) error {
	return gateway.Run(ctx, gateway.Options{ConfigPath: path, Logger: log}, func(g *gateway.Gateway) {
		if ready != nil {
			ready <- g.Server
		}
	})
}
