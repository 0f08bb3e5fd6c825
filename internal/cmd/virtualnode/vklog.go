package virtualnodecmd

import (
	"context"
	"fmt"
	"log/slog"

	vklog "github.com/virtual-kubelet/virtual-kubelet/log"
)

// vkLogger is virtual-kubelet's log.Logger on slog. The library's own
// adapter (log/slog in v1.13.0) asserts that the first argument of Info,
// Error, ... is a string and panics when virtual-kubelet logs an error
// value, which it does when Skiff is unreachable at start; this one formats
// its arguments as fmt.Sprint does.
type vkLogger struct{ l *slog.Logger }

var _ vklog.Logger = vkLogger{}

func (v vkLogger) Debug(a ...any)            { v.l.Debug(fmt.Sprint(a...)) }
func (v vkLogger) Debugf(f string, a ...any) { v.l.Debug(fmt.Sprintf(f, a...)) }
func (v vkLogger) Info(a ...any)             { v.l.Info(fmt.Sprint(a...)) }
func (v vkLogger) Infof(f string, a ...any)  { v.l.Info(fmt.Sprintf(f, a...)) }
func (v vkLogger) Warn(a ...any)             { v.l.Warn(fmt.Sprint(a...)) }
func (v vkLogger) Warnf(f string, a ...any)  { v.l.Warn(fmt.Sprintf(f, a...)) }
func (v vkLogger) Error(a ...any)            { v.l.Error(fmt.Sprint(a...)) }
func (v vkLogger) Errorf(f string, a ...any) { v.l.Error(fmt.Sprintf(f, a...)) }

// Fatal and Fatalf log at error level; virtual-kubelet does not expect
// them to exit.
func (v vkLogger) Fatal(a ...any) { v.l.Log(context.Background(), slog.LevelError+4, fmt.Sprint(a...)) }
func (v vkLogger) Fatalf(f string, a ...any) {
	v.l.Log(context.Background(), slog.LevelError+4, fmt.Sprintf(f, a...))
}

func (v vkLogger) WithField(k string, val any) vklog.Logger { return vkLogger{v.l.With(k, val)} }
func (v vkLogger) WithError(err error) vklog.Logger         { return vkLogger{v.l.With("error", err)} }
func (v vkLogger) WithFields(f vklog.Fields) vklog.Logger {
	l := v.l
	for k, val := range f {
		l = l.With(k, val)
	}
	return vkLogger{l}
}
