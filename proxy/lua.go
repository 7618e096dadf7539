package proxy

import (
	"context"
	"errors"

	"github.com/shiftgate/shiftgate/fallback"
)

type luaRequest struct {
	Method, Path, Query, Key, Region string
	Headers                          [][2]string
	Cached                           *fallback.Entry
}

type luaResponse struct {
	Status  int
	Headers [][2]string
	Body    []byte
}

type luaScript interface {
	Run(context.Context, luaRequest) (luaResponse, error)
}

func compileLua(name, code string) (luaScript, error) {
	return nil, errors.New("lua fallback: not built yet")
}
