package deployment

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/skiff-sh/skiff/api"
)

// progressView draws a deployment's progress on a terminal: one line per
// resource operation, redrawn in place as its state changes (as `skiff
// image pull` draws layers).
type progressView struct {
	w     io.Writer
	order []string          // operation ids, as they appeared
	lines map[string]string // by operation id
	drawn int
}

func newProgressView(w io.Writer) *progressView {
	return &progressView{w: w, lines: map[string]string{}}
}

// update shows the operations as they are now; it redraws only when a line
// changed.
func (v *progressView) update(ops []api.DeploymentOperation) {
	changed := false
	for _, op := range ops {
		line := operationLine(op)
		if _, ok := v.lines[op.OperationID]; !ok {
			v.order = append(v.order, op.OperationID)
		}
		if v.lines[op.OperationID] != line {
			v.lines[op.OperationID], changed = line, true
		}
	}
	if changed {
		v.redraw()
	}
}

// operationLine is one operation: what is done to which resource, its
// state, how long it took and, if it failed, why.
func operationLine(op api.DeploymentOperation) string {
	p := op.Properties
	target := "?"
	if t := p.TargetResource; t != nil {
		typ := t.ResourceType
		if i := strings.Index(typ, "/"); i >= 0 {
			typ = typ[i+1:]
		}
		target = fmt.Sprintf("%s (%s)", t.ResourceName, typ)
	}
	line := fmt.Sprintf("%-6s %-48s %s", p.ProvisioningOperation, target, p.ProvisioningState)
	if d, err := time.ParseDuration(strings.ToLower(strings.TrimPrefix(p.Duration, "PT"))); err == nil && p.ProvisioningState != api.DeploymentRunning {
		line += fmt.Sprintf(" in %s", d.Round(100*time.Millisecond))
	}
	if m := p.StatusMessage; m != nil && m.Error != nil {
		line += fmt.Sprintf(": (%s) %s", m.Error.Code, m.Error.Message)
	}
	return line
}

func (v *progressView) redraw() {
	var b strings.Builder
	if v.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", v.drawn)
	}
	for _, id := range v.order {
		b.WriteString("\r\x1b[K" + v.lines[id] + "\n")
	}
	v.drawn = len(v.order)
	io.WriteString(v.w, b.String())
}
