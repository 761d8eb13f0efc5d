package cmd

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/lipgloss/table"

	"github.com/asr-project/asr/replica"
	"github.com/asr-project/asr/replica/host"
	"github.com/asr-project/asr/replica/target"
	"github.com/asr-project/asr/vault"
)

func (g *globals) json() bool { return g.Output == "json" }

// printJSON writes v as indented JSON; a nil list is [], never null.
func (g *globals) printJSON(v any) error {
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Slice && rv.IsNil() {
		v = []struct{}{}
	}
	enc := json.NewEncoder(g.io.Out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// say prints a line for people; quiet and JSON output suppress it.
func (g *globals) say(format string, args ...any) {
	if !g.Quiet && !g.json() {
		fmt.Fprintf(g.io.Out, format+"\n", args...)
	}
}

var (
	headStyle = lipgloss.NewStyle().Bold(true).Padding(0, 1)
	cellStyle = lipgloss.NewStyle().Padding(0, 1)
)

// table prints rows under headers: a lipgloss table on a terminal, plain
// aligned columns otherwise (cron, pipes).
func (g *globals) table(headers []string, rows [][]string) {
	if g.io.TTY {
		t := table.New().Headers(headers...).Rows(rows...).
			Border(lipgloss.RoundedBorder()).
			StyleFunc(func(row, _ int) lipgloss.Style {
				if row == table.HeaderRow {
					return headStyle
				}
				return cellStyle
			})
		fmt.Fprintln(g.io.Out, t.Render())
		return
	}
	w := tabwriter.NewWriter(g.io.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, strings.Join(headers, "\t"))
	for _, r := range rows {
		fmt.Fprintln(w, strings.Join(r, "\t"))
	}
	w.Flush()
}

// events renders engine events: a progress bar on a terminal, one line per
// event otherwise.
type events struct {
	g    *globals
	mu   sync.Mutex
	last time.Time
	bar  bool
}

func (e *events) Progress(vm, step string, done, total int64) {
	g := e.g
	if !g.io.TTY || g.Quiet || g.json() || total <= 0 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if done < total && time.Since(e.last) < 100*time.Millisecond {
		return
	}
	e.last = time.Now()
	const width = 30
	fill := int(done * width / total)
	fmt.Fprintf(g.io.Err, "\r%s %s [%s%s] %3d%% %s/%s", vm, step,
		strings.Repeat("█", fill), strings.Repeat("░", width-fill), done*100/total, bytesString(done), bytesString(total))
	e.bar = true
}

func (e *events) Warning(vm, msg string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.bar {
		fmt.Fprintln(e.g.io.Err)
		e.bar = false
	}
	fmt.Fprintf(e.g.io.Err, "asr: warning: %s: %s\n", vm, oneLine(msg))
}

func (e *events) Event(vm, msg string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.bar {
		fmt.Fprintln(e.g.io.Err)
		e.bar = false
	}
	e.g.say("%s: %s", vm, msg)
}

// engine builds the replication engine on this site's state file.
func (g *globals) engine() (*replica.Engine, error) {
	v, err := g.openVault()
	if err != nil {
		return nil, err
	}
	return &replica.Engine{Vault: v, OpenTarget: g.openTarget, Events: &events{g: g}, HookTimeout: g.HostTimeout,
		Host: func(it vault.Item) (host.Host, error) { h, _, err := g.itemHost(it); return h, err }}, nil
}

// openVault opens the site's state file; a rolled-back transaction
// (a damaged meta page) is reported on stderr, once.
func (g *globals) openVault() (*vault.Vault, error) {
	v, err := vault.Open(g.State, g.Timeout)
	if err != nil {
		return nil, err
	}
	v.Warn = func(msg string) { fmt.Fprintf(g.io.Err, "asr: warning: %s\n", oneLine(msg)) }
	return v, nil
}

func (g *globals) openTarget(ctx context.Context, url string) (target.Target, error) {
	return target.Open(ctx, url, target.Config{Lookup: g.lookup})
}

func bytesString(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func ago(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return now.Sub(t).Round(time.Second).String() + " ago"
}
