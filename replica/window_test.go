package replica

import (
	"testing"
	"time"
)

func TestWindow(t *testing.T) {
	day := func(hh, mm int) time.Time { return time.Date(2026, 12, 3, hh, mm, 0, 0, time.Local) }
	cases := []struct {
		window string
		at     time.Time
		in     bool
		next   time.Time
	}{
		{"18:30-06:00", day(12, 0), false, day(18, 30)},
		{"18:30-06:00", day(18, 29), false, day(18, 30)},
		{"18:30-06:00", day(18, 30), true, day(18, 30)},
		{"18:30-06:00", day(23, 59), true, day(23, 59)},
		{"18:30-06:00", day(5, 59), true, day(5, 59)},
		{"18:30-06:00", day(6, 0), false, day(18, 30)},
		{"01:00-03:00", day(4, 0), false, day(1, 0).AddDate(0, 0, 1)},
		{"01:00-03:00", day(0, 30), false, day(1, 0)},
		{"01:00-03:00", day(2, 0), true, day(2, 0)},
		{"00:00-00:00", day(12, 0), true, day(12, 0)},
	}
	for _, c := range cases {
		w, err := parseWindow(c.window)
		if err != nil {
			t.Fatal(err)
		}
		if got := w.contains(c.at); got != c.in {
			t.Errorf("%s contains %s = %v, want %v", c.window, c.at.Format(time.Kitchen), got, c.in)
		}
		if got := w.next(c.at); !got.Equal(c.next) {
			t.Errorf("%s next after %s = %s, want %s", c.window, c.at, got, c.next)
		}
	}
	for _, bad := range []string{"", "18:30", "24:00-01:00", "18:60-06:00", "6:00-7:00", "18:30-06:00 "} {
		if _, err := parseWindow(bad); err == nil {
			t.Errorf("window %q accepted", bad)
		}
	}
}
