package cache

import (
	"context"
	"errors"
	"log/slog"
)

// ErrSourceNotFound is what a Source's error wraps when the source says
// the blob does not exist (an upstream 404). Such a fill failure is an
// ordinary miss, not something an operator must act on, so it is logged
// at debug level; the request that asked logs its own line.
var ErrSourceNotFound = errors.New("the source does not have the blob")

// fillFailureLevel is the level a fill failure is logged at: a miss or a
// store closing is routine; anything else (a broken or corrupt upstream
// transfer, a disk error) is a warning.
func fillFailureLevel(err error) slog.Level {
	if errors.Is(err, ErrSourceNotFound) || errors.Is(err, errClosing) || errors.Is(err, context.Canceled) {
		return slog.LevelDebug
	}
	return failureLevelWarn
}

const failureLevelWarn = slog.LevelWarn
