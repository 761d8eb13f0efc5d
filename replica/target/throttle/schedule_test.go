package throttle

import (
	"testing"
	"time"
)

func TestScheduleRate(t *testing.T) {
	loc := time.FixedZone("site", 2*3600)
	at := func(day, h, m int) time.Time { return time.Date(2025, 3, day, h, m, 0, 0, loc) } // 3 March 2025 is a Monday
	day := Schedule{WorkHours: 10, OtherHours: 100, WorkStart: 8 * time.Hour, WorkEnd: 18 * time.Hour}
	night := Schedule{WorkHours: 10, OtherHours: 100, WorkStart: 22 * time.Hour, WorkEnd: 6 * time.Hour}
	none := Schedule{WorkHours: 10, OtherHours: 100, WorkStart: 8 * time.Hour, WorkEnd: 8 * time.Hour}
	for _, c := range []struct {
		s    Schedule
		now  time.Time
		want int64
	}{
		{day, at(3, 8, 0), 10},    // Monday, start is inside
		{day, at(3, 7, 59), 100},  // before
		{day, at(7, 17, 59), 10},  // Friday afternoon
		{day, at(7, 18, 0), 100},  // end is outside
		{day, at(8, 12, 0), 100},  // Saturday
		{day, at(9, 12, 0), 100},  // Sunday
		{night, at(3, 23, 0), 10}, // Monday night
		{night, at(4, 5, 0), 10},  // Tuesday early: Monday's window
		{night, at(3, 5, 0), 100}, // Monday early: Sunday had none
		{night, at(8, 5, 0), 10},  // Saturday early: Friday's window
		{night, at(8, 23, 0), 100},
		{night, at(4, 12, 0), 100},
		{none, at(3, 8, 0), 100},
		{day, at(3, 12, 0).UTC(), 10}, // 10:00 UTC is read as 10:00
	} {
		if got := c.s.Rate(c.now); got != c.want {
			t.Errorf("%+v.Rate(%v) = %d, want %d", c.s, c.now, got, c.want)
		}
	}
}
