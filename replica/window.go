package replica

import (
	"fmt"
	"regexp"
	"strconv"
	"time"
)

var windowRE = regexp.MustCompile(`^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$`)

// window is a daily span of local time, such as a policy's resync window
// 18:30-06:00. A window whose end is before its start runs past midnight;
// equal ends mean all day.
type window struct{ from, to time.Duration } // since local midnight

func parseWindow(s string) (window, error) {
	m := windowRE.FindStringSubmatch(s)
	if m == nil {
		return window{}, fmt.Errorf("resync window %q: use HH:MM-HH:MM (local time; 00:00-00:00 is all day): %w", s, ErrInvalid)
	}
	at := func(h, min string) time.Duration {
		hh, _ := strconv.Atoi(h)
		mm, _ := strconv.Atoi(min)
		return time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute
	}
	return window{at(m[1], m[2]), at(m[3], m[4])}, nil
}

// sinceMidnight is how far into its local day t is.
func sinceMidnight(t time.Time) time.Duration {
	t = t.Local()
	y, mo, d := t.Date()
	return t.Sub(time.Date(y, mo, d, 0, 0, 0, 0, time.Local))
}

// contains says whether t falls inside the window.
func (w window) contains(t time.Time) bool {
	s := sinceMidnight(t)
	switch {
	case w.from == w.to:
		return true
	case w.from < w.to:
		return s >= w.from && s < w.to
	}
	return s >= w.from || s < w.to
}

// next is t when t is inside the window, else the window's next start.
func (w window) next(t time.Time) time.Time {
	if w.contains(t) {
		return t
	}
	start := t.Local().Add(w.from - sinceMidnight(t))
	if start.Before(t) {
		start = start.AddDate(0, 0, 1)
	}
	return start
}
